"""Modbus servers (pymodbus 3.16.1) serving register images: over TCP and RTU on a pty.

:class:`DeviceServer` serves a set of devices (unit id -> register image), all on
one TCP port and, optionally, on one RTU line through a :class:`PtyBridge`. Each
device is a pymodbus ``SimDevice`` whose ``action`` hook fills the requested
registers from our image at request time, so ``update()`` takes effect on the
next request without touching pymodbus's internals.

Like the real devices, a server refuses what they refuse: addresses outside the
vendor's tables (exception 02), reads touching a range its register map lists as
unreadable (exception 02, :attr:`drivers.profile.RegisterMap.holes`: a Tracer
refuses 0x3100 x 19) and requests longer than a device's documented limit
(exception 03: the Eastron meters take 80 registers at most). A device may also
answer sparsely (``DeviceSpec.undefined``): inside a read, the addresses its
image lacks read as that word, and a read that covers none of its addresses is
refused with exception 02, as an SMA inverter does (SMA Modbus TI 3.5.5). A unit id that is
not on the bus gets no answer, as on a real RS485 line; such reads (a scan)
are logged as one line per unit at most once a minute, instead of pymodbus's
traceback and frame dump for a device its datastore does not have. Behind a
gateway (``absent_unit_code``) such a read gets that exception code instead, as
a Victron GX answers 0x0A "gateway path unavailable" for a unit id with no service.
:meth:`DeviceSpec.for_map` takes the limits from the map the image was encoded with.

Faults for tests and demos (:class:`Fault`), per unit: silence, an exception
code, garbage bytes, or an answer carrying another unit id. They are applied to
the outgoing bytes (``trace_packet``), the one place where both framers meet.

Two behaviours of a TCP endpoint, for devices whose vendors warn about them
(see each profile's notes): ``clients`` (:class:`ClientPolicy`) serves one
client at a time, either refusing a second connection (closed as soon as it is
accepted) or letting the newcomer replace the connection before it, and
``settle_s`` leaves every request unanswered that comes sooner than that after
its connection opened, as a device still busy with a new connection does. Both
apply to TCP only: an RS485 device cannot tell when its master opened the port.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Final, Self

from pymodbus.constants import ExcCodes
from pymodbus.framer import FramerType
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.server.requesthandler import ServerRequestHandler
from pymodbus.simulator import DataType, SimData, SimDevice

from drivers.planner import Hole
from drivers.profile import RegisterImage, RegisterMap, register_address, wire_address
from drivers.registers import RegisterType
from simulation.pty_bridge import PtyBridge

logger = logging.getLogger(__name__)

_FUNCTION_TABLE: Final = {
    1: RegisterType.COIL,
    2: RegisterType.DISCRETE,
    3: RegisterType.HOLDING,
    4: RegisterType.INPUT,
}
_WRITE_FUNCTIONS: Final = frozenset({5, 6, 15, 16})
# Bytes that never form a valid RTU frame or MBAP header (no CRC, protocol id 0xAAAA).
GARBAGE: Final = bytes.fromhex("aa aa 55 55 aa aa 55 00 ff 13")


class FaultKind(enum.Enum):
    NONE = "none"
    SILENT = "silent"  # the device stops answering
    EXCEPTION = "exception"  # it answers every read with an exception code
    GARBAGE = "garbage"  # noise on the line instead of its answer
    WRONG_UNIT = "wrong_unit"  # its answer carries another unit id


@dataclass(frozen=True)
class Fault:
    kind: FaultKind = FaultKind.NONE
    code: int = ExcCodes.DEVICE_FAILURE  # for EXCEPTION
    other_unit: int = 0  # for WRONG_UNIT


NO_FAULT: Final = Fault()


class ClientPolicy(enum.Enum):
    """How a TCP endpoint treats a client connecting while another is connected."""

    MANY = "many"  # every connection is served (pymodbus's own behaviour)
    REFUSE_NEW = "refuse_new"  # one at a time: a second connection is closed at once
    REPLACE_OLD = "replace_old"  # one at a time: a new connection closes the one before it


# A read for an absent unit is logged at most this often per unit.
ABSENT_UNIT_LOG_EVERY_S: Final = 60.0


class _AbsentUnitFilter(logging.Filter):
    """Drops pymodbus's error (traceback and frame dump) for a unit its datastore lacks.

    pymodbus 3.16.1 answers a request for a device it does not have by falling
    back to device 0, which raises ``KeyError`` in ``__get_device``; it logs that
    with a traceback. The server logs one short line per unit instead (and the
    answer is dropped, as silence).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not ("Datastore unable to fulfill request" in message and "__get_device" in message)


class _StartFailure(logging.Filter):
    """Takes pymodbus's warning for a server that could not start, to raise it instead.

    pymodbus 3.16.1 logs the reason (``[Errno 98] ... address already in use``)
    as a WARNING and then raises a ``RuntimeError`` without it; the server
    raises one ``OSError`` carrying the reason, so a command prints one line.
    """

    def __init__(self) -> None:
        super().__init__()
        self.reasons: list[str] = []

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message.startswith("Failed to start server"):
            self.reasons.append(message.removeprefix("Failed to start server").strip())
            return False
        return True


_PYMODBUS_LOGGER: Final = logging.getLogger("pymodbus.logging")
_ABSENT_FILTER: Final = _AbsentUnitFilter()


@dataclass(frozen=True)
class DeviceSpec:
    """A device on the server: its unit id, its tables' extents and its read limits."""

    unit: int
    image: RegisterImage
    max_count: int = 125
    holes: tuple[Hole, ...] = ()  # refused with exception 02, like the device
    # None: an address inside the table's extent that the image lacks reads 0. A word:
    # it reads as that word ("NaN"), and a read covering no address of the image is
    # refused with exception 02.
    undefined: int | None = None
    # Tables addressed in bytes (RegisterMap.byte_tables): the image holds registers
    # ``base + offset / 2``; a read at ``base + offset`` answers the words from there.
    byte_tables: tuple[int, ...] = ()
    # Holding registers (first, last inclusive) that accept FC 6 and 16 and keep what
    # is written; everywhere else a write gets exception 01, as a read-only device.
    writable: tuple[tuple[int, int], ...] = ()

    @classmethod
    def for_map(
        cls,
        unit: int,
        image: RegisterImage,
        reg_map: RegisterMap,
        undefined: int | None = None,
    ) -> DeviceSpec:
        """``image`` served with the read limits ``reg_map`` documents for its device."""
        return cls(unit, image, reg_map.max_count, reg_map.holes, undefined, reg_map.byte_tables)


def _crc16(data: bytes) -> bytes:
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc.to_bytes(2, "little")


class _Device:
    """Live registers of one unit and the pymodbus hook that serves them."""

    def __init__(self, spec: DeviceSpec, server: DeviceServer) -> None:
        self.unit = spec.unit
        self.max_count = spec.max_count
        self.holes = spec.holes
        self.undefined = spec.undefined
        self.byte_tables = spec.byte_tables
        self.writable = spec.writable
        self.writes = 0
        self.image: RegisterImage = {t: dict(v) for t, v in spec.image.items()}
        self._server = server

    def _wire_extent(self, table: RegisterType) -> list[int]:
        """The first and last address a client may ask for in ``table`` (sorted, or [])."""
        addresses = sorted(self.image.get(table, {}))
        if not addresses or not self.byte_tables:
            return addresses
        # A register at base + offset / 2 covers the wire addresses base + offset and + 1.
        first = wire_address(self.byte_tables, addresses[0])
        return [first, wire_address(self.byte_tables, addresses[-1]) + 1]

    def _word(self, values: dict[int, int], wire: int, fill: int) -> int:
        """The word a read starting at ``wire`` gives first (byte-addressed tables: any byte)."""
        register, low_byte = register_address(self.byte_tables, wire)
        if not low_byte:
            return values.get(register, fill)
        high = values.get(register, fill) & 0xFF
        return (high << 8) | (values.get(register + 1, fill) >> 8)

    def sim_device(self) -> SimDevice:
        blocks: list[list[SimData]] = []
        for table in (RegisterType.COIL, RegisterType.DISCRETE):
            addresses = sorted(self.image.get(table, {}))
            if addresses:
                span = addresses[-1] - addresses[0] + 1
                blocks.append(
                    [SimData(addresses[0], values=[False] * span, datatype=DataType.BITS)]
                )
            else:
                # pymodbus needs a block per table; an unused bit at 0 stands in.
                blocks.append([SimData(0, values=False, datatype=DataType.BITS)])
        for table in (RegisterType.HOLDING, RegisterType.INPUT):
            addresses = self._wire_extent(table)
            if addresses:
                span = addresses[-1] - addresses[0] + 1
                blocks.append(
                    [SimData(addresses[0], values=[0] * span, datatype=DataType.REGISTERS)]
                )
            else:
                blocks.append([SimData(0, datatype=DataType.INVALID)])
        return SimDevice(
            self.unit,
            simdata=(blocks[0], blocks[1], blocks[2], blocks[3]),
            use_bit_addressing=True,
            action=self.action,
        )

    async def action(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        fault = self._server.fault(self.unit)
        if fault.kind is FaultKind.EXCEPTION:
            return ExcCodes(fault.code)
        if set_values is not None:
            return self._write(address, [int(v) for v in set_values])
        if function_code in _WRITE_FUNCTIONS:
            # pymodbus 3.16.1 calls the action a second time for a write, without the
            # values, as it builds the echo: the write was judged on the first call.
            return None if self._writable(address, count) else ExcCodes.ILLEGAL_FUNCTION
        table = _FUNCTION_TABLE.get(function_code)
        if table is None:
            return ExcCodes.ILLEGAL_FUNCTION
        if count > self.max_count:
            return ExcCodes.ILLEGAL_VALUE
        if any(hole.touches(table, address, count) for hole in self.holes):
            return ExcCodes.ILLEGAL_ADDRESS  # as the device answers (see its profile)
        if table.is_bit:
            return None  # no simulated device exposes bits beyond their defaults
        values = self.image.get(table, {})
        fill = 0 if self.undefined is None else self.undefined
        if self.undefined is not None and not any(address + i in values for i in range(count)):
            return ExcCodes.ILLEGAL_ADDRESS  # nothing defined in the block (sparse device)
        if self.byte_tables:
            # Word i of the answer starts 2 i bytes after the requested byte address.
            first = register_address(self.byte_tables, address)
            for i in range(count):
                wire = wire_address(self.byte_tables, first[0] + i) + first[1]
                registers[address - start_address + i] = self._word(values, wire, fill)
            return None
        for i in range(count):
            registers[address - start_address + i] = values.get(address + i, fill)
        return None

    def _writable(self, address: int, count: int) -> bool:
        last = address + count - 1
        return any(first <= address and last <= end for first, end in self.writable)

    def _write(self, address: int, values: list[int]) -> ExcCodes | None:
        """A write (FC 6 or 16): kept when every register is writable, else exception 01."""
        if not self._writable(address, len(values)):
            return ExcCodes.ILLEGAL_FUNCTION  # read-only there, as the device
        table = self.image.setdefault(RegisterType.HOLDING, {})
        for offset, value in enumerate(values):
            table[address + offset] = value
        self.writes += 1
        return None


class _Connection(ServerRequestHandler):
    """One accepted TCP connection: knows its age, and tells the server it came and went."""

    def __init__(self, listener: _TcpServer, server: DeviceServer) -> None:
        self._server = server
        self.opened_at = asyncio.get_running_loop().time()
        self.requests = 0
        super().__init__(  # type: ignore[no-untyped-call]  # pymodbus leaves it untyped
            listener, self._trace, listener.trace_pdu, listener.trace_connect
        )

    def age(self) -> float:
        return asyncio.get_running_loop().time() - self.opened_at

    def _trace(self, sending: bool, data: bytes) -> bytes:
        if not sending:
            if self.requests == 0:
                self._server.first_request_ages.append(self.age())
            self.requests += 1
            return data
        if self.age() < self._server.settle_s:
            self._server.unanswered_early += 1
            return b""  # too soon after the connect: the device does not answer yet
        return self._server._trace_tcp(sending, data)

    def callback_connected(self) -> None:
        super().callback_connected()
        self._server._connected(self)

    def callback_disconnected(self, exc: Exception | None) -> None:
        super().callback_disconnected(exc)
        self._server._disconnected(self)


class _TcpServer(ModbusTcpServer):
    """pymodbus's TCP server, with our :class:`_Connection` per client."""

    def __init__(
        self, server: DeviceServer, devices: list[SimDevice], address: tuple[str, int]
    ) -> None:
        self._device_server = server
        super().__init__(
            devices, address=address, framer=FramerType.SOCKET, trace_packet=server._trace_tcp
        )

    def callback_new_connection(self) -> _Connection:
        return _Connection(self, self._device_server)


class DeviceServer:
    """Devices served over TCP (and RTU on a pty): ``async with DeviceServer(...)``."""

    def __init__(
        self,
        devices: list[DeviceSpec],
        *,
        tcp: tuple[str, int] | None = ("127.0.0.1", 0),
        rtu: bool = False,
        baudrate: int = 115200,
        paced: bool = False,
        clients: ClientPolicy = ClientPolicy.MANY,
        settle_s: float = 0.0,
        absent_unit_code: int | None = None,
        absent_unit_addresses: int = 0x10000,
    ) -> None:
        """``paced``: the RTU line carries bytes at ``baudrate``, not at memory speed.

        ``absent_unit_code``: the exception code a request for a unit id that has no
        device gets (a gateway's answer) at addresses below ``absent_unit_addresses``
        (those it knows; beyond them exception 02); None: no answer, as on a real line.
        """
        if settle_s < 0:
            raise ValueError("settle_s must be >= 0")
        if absent_unit_code is not None and any(spec.unit == 0 for spec in devices):
            # pymodbus routes a request for an unknown unit to device 0: the gateway's.
            raise ValueError("a gateway (absent_unit_code) cannot also serve unit 0")
        self.absent_unit_code = absent_unit_code
        self.absent_unit_addresses = absent_unit_addresses
        self._devices = {spec.unit: _Device(spec, self) for spec in devices}
        self.clients = clients
        self.settle_s = settle_s
        self._connections: list[_Connection] = []
        # What tests measure: each connection's age at its first request, and how
        # many answers were withheld because they came within ``settle_s``.
        self.first_request_ages: list[float] = []
        self.unanswered_early = 0
        self.refused_clients = 0
        self._tcp_address = tcp
        self._rtu = rtu
        self._baudrate = baudrate
        self._paced = paced
        self._faults: dict[int, Fault] = {}
        self._absent_logged: dict[int, float] = {}
        self._servers: list[ModbusTcpServer | ModbusSerialServer] = []
        self._bridge: PtyBridge | None = None
        self.tcp_port = 0
        self.rtu_path = ""

    # -- faults --------------------------------------------------------------
    def fault(self, unit: int) -> Fault:
        return self._faults.get(unit, NO_FAULT)

    def set_fault(self, unit: int, fault: Fault) -> None:
        if fault.kind is FaultKind.NONE:
            self._faults.pop(unit, None)
        else:
            self._faults[unit] = fault
        logger.info("unit %d: fault %s", unit, fault.kind.value)

    def _absent(self, unit: int) -> None:
        now = asyncio.get_running_loop().time()
        last = self._absent_logged.get(unit)
        if last is None or now - last >= ABSENT_UNIT_LOG_EVERY_S:
            self._absent_logged[unit] = now
            logger.info(
                "read for unit %d, which is not on this bus: no answer, as on a real line "
                "(logged once a minute per unit)",
                unit,
            )

    def _outgoing(self, unit: int, packet: bytes, *, rtu: bool) -> bytes:
        if unit not in self._devices:
            if self.absent_unit_code is not None:
                return packet  # the gateway's exception (its device 0)
            self._absent(unit)
            return b""  # nobody at that address on a real line: silence
        fault = self.fault(unit)
        match fault.kind:
            case FaultKind.SILENT:
                return b""
            case FaultKind.GARBAGE:
                return GARBAGE
            case FaultKind.WRONG_UNIT if rtu:
                body = bytes([fault.other_unit]) + packet[1:-2]
                return body + _crc16(body)
            case FaultKind.WRONG_UNIT:
                return packet[:6] + bytes([fault.other_unit]) + packet[7:]
        return packet

    def _trace_tcp(self, sending: bool, data: bytes) -> bytes:
        if not sending or len(data) < 7:
            return data
        return self._outgoing(data[6], data, rtu=False)  # MBAP byte 6: unit id

    def _trace_rtu(self, sending: bool, data: bytes) -> bytes:
        if not sending or not data:
            return data
        return self._outgoing(data[0], data, rtu=True)

    # -- TCP clients ---------------------------------------------------------
    @property
    def tcp_clients(self) -> int:
        """TCP connections open now."""
        return len(self._connections)

    def _connected(self, connection: _Connection) -> None:
        others = list(self._connections)
        self._connections.append(connection)
        if not others or self.clients is ClientPolicy.MANY:
            return
        if self.clients is ClientPolicy.REFUSE_NEW:
            self.refused_clients += 1
            logger.info("a second Modbus TCP client: closed, as the device serves one at a time")
            connection.close()
            self._disconnected(connection)
            return
        logger.info("a new Modbus TCP client: the one before it is closed, as the device does")
        for other in others:
            other.close()
            self._disconnected(other)

    def _disconnected(self, connection: _Connection) -> None:
        if connection in self._connections:
            self._connections.remove(connection)

    # -- registers -----------------------------------------------------------
    def update(self, images: Mapping[int, RegisterImage]) -> None:
        """New register values; the next request sees them (one event-loop step, atomic)."""
        for unit, image in images.items():
            device = self._devices.get(unit)
            if device is None:
                continue
            for table, values in image.items():
                device.image.setdefault(table, {}).update(values)

    def holding(self, unit: int, address: int) -> int | None:
        """A holding register of ``unit`` as served now (None: not in its image)."""
        return self._devices[unit].image.get(RegisterType.HOLDING, {}).get(address)

    def writes(self, unit: int) -> int:
        """Writes ``unit`` has kept (``DeviceSpec.writable``)."""
        return self._devices[unit].writes

    def _sim_devices(self) -> list[SimDevice]:
        devices = [d.sim_device() for d in self._devices.values()]
        if self.absent_unit_code is not None:
            devices.append(
                self._gateway(ExcCodes(self.absent_unit_code), self.absent_unit_addresses)
            )
        return devices

    @staticmethod
    def _gateway(code: ExcCodes, addresses: int) -> SimDevice:
        """Device 0, where pymodbus sends requests for unknown units: answers ``code``."""

        async def refuse(*_: object) -> ExcCodes:
            return code

        # Bit tables: one unused bit (a bit read for an unknown unit gets exception 02).
        bits = [SimData(0, values=False, datatype=DataType.BITS)]
        registers = [SimData(0, values=[0] * addresses, datatype=DataType.REGISTERS)]
        return SimDevice(
            0,
            simdata=(bits, bits, registers, registers),
            use_bit_addressing=True,
            action=refuse,
        )

    # -- lifecycle -----------------------------------------------------------
    async def __aenter__(self) -> Self:
        _PYMODBUS_LOGGER.addFilter(_ABSENT_FILTER)  # idempotent: one filter object
        sim_devices = self._sim_devices()
        try:
            if self._tcp_address is not None:
                tcp = _TcpServer(self, sim_devices, self._tcp_address)
                self._servers.append(tcp)
                start_failure = _StartFailure()
                _PYMODBUS_LOGGER.addFilter(start_failure)
                try:
                    await tcp.serve_forever(background=True)
                except RuntimeError as err:  # pymodbus: "Could not start listen"
                    host, port = self._tcp_address
                    reason = start_failure.reasons[-1] if start_failure.reasons else str(err)
                    raise OSError(f"cannot listen on {host}:{port}: {reason}") from err
                finally:
                    _PYMODBUS_LOGGER.removeFilter(start_failure)
                sockets = getattr(tcp.transport, "sockets", None) or []
                self.tcp_port = sockets[0].getsockname()[1] if sockets else self._tcp_address[1]
            if self._rtu:
                self._bridge = PtyBridge(baudrate=self._baudrate if self._paced else None)
                await self._bridge.__aenter__()
                rtu = ModbusSerialServer(
                    self._sim_devices(),
                    framer=FramerType.RTU,
                    port=self._bridge.server_path,
                    baudrate=self._baudrate,
                    trace_packet=self._trace_rtu,
                )
                self._servers.append(rtu)
                try:
                    await rtu.serve_forever(background=True)
                except RuntimeError as err:
                    raise OSError(f"cannot open {self._bridge.server_path}: {err}") from err
                self.rtu_path = self._bridge.client_path
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for server in self._servers:
            with contextlib.suppress(Exception):
                await server.shutdown()  # type: ignore[no-untyped-call]
        self._servers.clear()
        if self._bridge is not None:
            await self._bridge.__aexit__(None, None, None)
            self._bridge = None
        await asyncio.sleep(0)
