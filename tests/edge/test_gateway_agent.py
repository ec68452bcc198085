"""The gateway in a real agent polling the real simulator, read by real Modbus clients.

The agent polls the simulated site (SunSpec inverter, SDM630, Tracer, Seplos) over
loopback Modbus TCP; pymodbus clients and pysunspec2 (a third-party SunSpec reader)
read those devices through the agent's gateway. No hub is needed: the uplink keeps
retrying a port nothing listens on, as it does while a hub is away.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import random
import re
import socket
import struct
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException
from pymodbus.pdu import ModbusPDU
from sunspec2.modbus.client import SunSpecModbusClientDeviceTCP

from drivers.registers import RegisterType
from edge.agent import Agent, AgentError
from edge.config import parse_config
from edge.gateway_cache import CacheKey
from edge.health import DeviceState
from simulation import solaredge_site
from simulation.default_site import INVERTER_CHAIN, REGISTER_MAPS, Unit, encode_site
from simulation.modbus_server import DeviceServer, DeviceSpec, Fault, FaultKind
from simulation.plant import Plant
from simulation.runner import SimulatedSite
from tests.edge.agent_site import OPTIONS, START, site_config
from tests.support.polling import until
from tests.support.ports import free_port

MODELS = {model.model_id: model for model in INVERTER_CHAIN.models}
MODEL_103 = MODELS[103].address
MODEL_124 = MODELS[124].address
# json/model_124.json: OutWRte (12), InWRte (13), their window, revert and ramp times.
WRITABLE = (MODEL_124 + 12, MODEL_124 + 16)
ALLOWED = (MODEL_124 + 12, MODEL_124 + 13)  # what [gateway] lets clients write
# Model 103's points (after its ID and L): read by every poll, in the agent's one request.
POLLED = (MODEL_103 + 2, 50)
# The common model's DA and pad (json/model_1.json offsets 66 and 67): neither the
# agent's plan nor its identity read (offsets 2-65, drivers/identity.py) reads them.
COMMON_TAIL = (MODELS[1].address + 66, 2)
COMMON_TAIL_WORDS = [1, 0x8000]  # DA 1; the pad's "not implemented"


@pytest.fixture
async def served() -> AsyncIterator[DeviceServer]:
    sections = Plant("sunny", seed=1, start=START).state.sections()
    images = encode_site(sections)
    specs = [
        DeviceSpec(
            int(unit),
            images[unit],
            REGISTER_MAPS[unit].max_count,
            writable=(WRITABLE,) if unit is Unit.INVERTER else (),
        )
        for unit in Unit
    ]
    async with DeviceServer(specs, tcp=("127.0.0.1", 0)) as server:
        yield server


@asynccontextmanager
async def agent_with_gateway(
    tmp_path: Path, served: DeviceServer, gateway: str, *, interval_s: float = 0.2
) -> AsyncIterator[Agent]:
    """An agent polling ``served`` with ``[gateway]`` = ``gateway``, every device read once."""
    text = site_config(tmp_path, f"ws://127.0.0.1:{free_port()}", served.tcp_port, "gw")
    text = text.replace("interval_s = 0.2", f"interval_s = {interval_s}")
    async with running(tmp_path, text + "\n[gateway]\nport = 0\n" + gateway) as agent:
        yield agent


@asynccontextmanager
async def running(tmp_path: Path, text: str) -> AsyncIterator[Agent]:
    """An agent with the config ``text`` running for the block, every device read once."""
    config = parse_config(text, base_dir=tmp_path)
    agent = Agent(config, token="unused", options=OPTIONS)
    task = asyncio.create_task(agent.run(), name="test.agent")
    try:
        await until(
            lambda: (
                agent.gateway is not None
                and agent.gateway.listening.is_set()
                and all(h.state is DeviceState.OK for h in agent.health.values())
            )
        )
        yield agent
    finally:
        agent.stop()
        async with asyncio.timeout(15):
            await task


@asynccontextmanager
async def client(agent: Agent) -> AsyncIterator[AsyncModbusTcpClient]:
    assert agent.gateway is not None
    modbus = AsyncModbusTcpClient("127.0.0.1", port=agent.gateway.port, timeout=5, retries=0)
    assert await modbus.connect()
    try:
        yield modbus
    finally:
        modbus.close()


async def direct(served: DeviceServer, address: int, count: int, unit: int = 1) -> list[int]:
    """Registers read from the simulator itself, past the agent."""
    modbus = AsyncModbusTcpClient("127.0.0.1", port=served.tcp_port, timeout=5, retries=0)
    assert await modbus.connect()
    try:
        answer = await modbus.read_holding_registers(address, count=count, device_id=unit)
    finally:
        modbus.close()
    assert not answer.isError()
    return list(answer.registers)


def exception_code(answer: ModbusPDU) -> int:
    assert answer.isError()
    return int(answer.exception_code)


def bus(agent: Agent) -> tuple[int, int]:
    """The bus's transactions so far: the poller's and the gateway's."""
    shared = agent.shared_buses["sim"]
    return shared.poll_transactions, shared.guest_transactions


async def test_polled_registers_come_from_the_last_poll_with_no_bus_traffic(
    tmp_path: Path, served: DeviceServer
) -> None:
    async with agent_with_gateway(tmp_path, served, "max_age_s = 5\n") as agent:
        assert agent.gateway is not None
        expected = await direct(served, *POLLED)
        meter_key = CacheKey("sim", int(Unit.GRID_METER), RegisterType.INPUT)
        assert agent.gateway.cache.registers(meter_key) > 0
        _, guest_before = bus(agent)
        async with client(agent) as modbus:
            for _ in range(20):
                answer = await modbus.read_holding_registers(POLLED[0], count=50, device_id=1)
                assert list(answer.registers) == expected
            # The meter's voltages (SDM630 input registers 0-5, floats): polled too.
            meter = await modbus.read_input_registers(0, count=6, device_id=2)
            assert not meter.isError()
            assert len(meter.registers) == 6
        assert agent.gateway.stats.cached_reads == 21
        assert agent.gateway.stats.bus_reads == 0
        assert bus(agent)[1] == guest_before == 0  # not one transaction for the gateway


async def test_other_reads_go_to_the_device_between_polls(
    tmp_path: Path, served: DeviceServer
) -> None:
    async with agent_with_gateway(tmp_path, served, "") as agent:
        assert agent.gateway is not None
        address, count = COMMON_TAIL
        key = CacheKey("sim", 1, RegisterType.HOLDING)
        assert agent.gateway.cache.lookup(key, address, count, now=0.0, max_age_s=1e9) is None
        expected = await direct(served, address, count)
        assert expected == COMMON_TAIL_WORDS
        async with client(agent) as modbus:
            answer = await modbus.read_holding_registers(address, count=count, device_id=1)
            assert list(answer.registers) == expected
            assert bus(agent)[1] == 1
            # Just read: the same range is now answered from that answer.
            again = await modbus.read_holding_registers(address, count=count, device_id=1)
            assert list(again.registers) == expected
            assert bus(agent)[1] == 1
            # The device's own refusal comes back as it is: nothing at address 0.
            refused = await modbus.read_holding_registers(0, count=2, device_id=1)
            assert exception_code(refused) == 2
            # Coils (FC 1) pass through too: the simulator's one unused coil.
            coils = await modbus.read_coils(0, count=1, device_id=1)
            assert coils.bits[:1] == [False]
            # A unit id no device has: the gateway has no path to it.
            nobody = await modbus.read_holding_registers(MODEL_103, count=2, device_id=9)
            assert exception_code(nobody) == 0x0A
            # Read-only by default: every write is refused with 01 and reaches nothing.
            write = await modbus.write_register(ALLOWED[0], 7, device_id=1)
            assert exception_code(write) == 1
        stats = agent.gateway.stats
        assert (stats.cached_reads, stats.bus_reads, stats.refused_writes) == (1, 3, 1)
        assert bus(agent)[1] == 3
        assert served.writes(1) == 0


async def test_writes_are_refused_unless_allowed_and_allowed_ones_reach_the_device(
    tmp_path: Path, served: DeviceServer, caplog: pytest.LogCaptureFixture
) -> None:
    gateway = (
        "read_only = false\n"
        f'[[gateway.write]]\ndevice = "inverter"\nfirst = {ALLOWED[0]}\nlast = {ALLOWED[1]}\n'
    )
    caplog.set_level(logging.INFO, logger="edge.gateway")
    before = served.holding(1, WRITABLE[0] + 2)
    async with agent_with_gateway(tmp_path, served, gateway) as agent, client(agent) as modbus:
        assert agent.gateway is not None
        # The device would take it, [gateway] does not allow it: refused, not sent.
        outside = await modbus.write_register(WRITABLE[0] + 2, 99, device_id=1)
        assert exception_code(outside) == 1
        across = await modbus.write_registers(ALLOWED[1], [1, 2], device_id=1)
        assert exception_code(across) == 1  # reaches one past the allowed range
        meter = await modbus.write_register(0, 1, device_id=2)
        assert exception_code(meter) == 1
        assert served.writes(1) == 0
        assert served.holding(1, WRITABLE[0] + 2) == before
        # Allowed: FC 6, then FC 16; the device keeps them.
        single = await modbus.write_register(ALLOWED[0], 250, device_id=1)
        assert not single.isError()
        assert served.holding(1, ALLOWED[0]) == 250
        several = await modbus.write_registers(ALLOWED[0], [400, 0xFF38], device_id=1)
        assert not several.isError()
        assert (served.holding(1, ALLOWED[0]), served.holding(1, ALLOWED[1])) == (400, 0xFF38)
        assert served.writes(1) == 2
        # The cache forgot them: a read now gives the device's new values.
        answer = await modbus.read_holding_registers(ALLOWED[0], count=2, device_id=1)
        assert list(answer.registers) == [400, 0xFF38]
        stats = agent.gateway.stats
        assert (stats.writes, stats.refused_writes) == (2, 3)
    written = [r.getMessage() for r in caplog.records if " wrote " in r.getMessage()]
    assert len(written) == 2
    assert re.fullmatch(
        rf"gateway: 127\.0\.0\.1:\d+ wrote inverter holding {ALLOWED[0]}\+1 = \[250\]",
        written[0],
    )
    assert written[1].endswith(f"wrote inverter holding {ALLOWED[0]}+2 = [400, 65336]")


async def test_clients_not_allowed_or_beyond_the_limit_are_closed_at_once(
    tmp_path: Path, served: DeviceServer
) -> None:
    gateway = 'allow = ["127.0.0.1/32"]\nmax_clients = 2\n'
    async with agent_with_gateway(tmp_path, served, gateway) as agent:
        assert agent.gateway is not None
        port = agent.gateway.port
        # Linux routes all of 127/8 to loopback: 127.0.0.2 is another, unlisted, address.
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, local_addr=("127.0.0.2", 0)
        )
        async with asyncio.timeout(5):
            assert await reader.read() == b""
        writer.close()
        async with client(agent) as first, client(agent) as second:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            async with asyncio.timeout(5):
                assert await reader.read() == b""  # the third
            writer.close()
            for modbus in (first, second):
                answer = await modbus.read_holding_registers(MODEL_103, count=2, device_id=1)
                assert not answer.isError()
        async with client(agent) as third:  # the others are gone: served again
            answer = await third.read_holding_registers(MODEL_103, count=2, device_id=1)
            assert not answer.isError()
        assert agent.gateway.stats.refused_connections == 2


async def test_pysunspec2_scans_the_inverter_through_the_gateway_while_the_agent_polls(
    tmp_path: Path, served: DeviceServer
) -> None:
    async with agent_with_gateway(tmp_path, served, "") as agent:
        assert agent.gateway is not None
        poll_before, _ = bus(agent)
        scans = 0
        # Scan again and again until the agent has polled a few more cycles meanwhile.
        while bus(agent)[0] < poll_before + 30:
            device = SunSpecModbusClientDeviceTCP(
                slave_id=1, ipaddr="127.0.0.1", ipport=agent.gateway.port, timeout=5
            )
            await asyncio.to_thread(device.scan)
            scans += 1
            assert {1, 103, 124} <= set(device.models)
            assert device.models[1][0].Mn.value.startswith("EMS")
            snapshot = agent.health["inverter"].snapshot
            assert snapshot is not None
            polled = snapshot.sections["inverter"]["ac_power_w"]
            assert device.models[103][0].W.cvalue == pytest.approx(polled, abs=1.0)
        stats = agent.gateway.stats
        # Every request it sent was answered, none with an exception.
        assert stats.requests == stats.cached_reads + stats.bus_reads
        assert stats.exceptions == 0
        # The models the agent polls came from the cache, every scan.
        assert stats.cached_reads >= 2 * scans
        assert bus(agent)[1] == stats.bus_reads  # one transaction per read passed through
        assert all(h.state is DeviceState.OK for h in agent.health.values())


def deviations(starts: list[float], interval_s: float) -> list[float]:
    """How far each poll cycle started from one interval after the one before."""
    return sorted(abs(b - a - interval_s) for a, b in itertools.pairwise(starts))


def median(values: list[float]) -> float:
    return values[len(values) // 2]


async def test_hostile_clients_do_not_delay_polling(tmp_path: Path, served: DeviceServer) -> None:
    interval = 0.1
    # The default limits; cached answers age out at once, so the flood reaches the bus too.
    gateway = "max_age_s = 0.05\n"
    async with agent_with_gateway(tmp_path, served, gateway, interval_s=interval) as agent:
        assert agent.gateway is not None
        arbiter = agent.shared_buses["sim"].arbiter
        mark = len(arbiter.poll_starts)
        await asyncio.sleep(4.0)
        quiet = list(arbiter.poll_starts)[mark:]
        mark = len(arbiter.poll_starts)
        args = [agent.gateway.port, 4.0, 1, *POLLED, *COMMON_TAIL]
        attacker = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.edge.gateway_attack",
            *(str(a) for a in args),
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await attacker.communicate()
        counts = json.loads(out)
        attacked = list(arbiter.poll_starts)[mark:]
        stats = agent.gateway.stats
        assert counts["garbage_connections"] >= 1
        assert stats.closed_bad_frames >= 10
        assert stats.refused_connections > 0  # the garbage loop, blocked at accept
        assert counts["flood_requests"] > 0
        assert stats.cached_reads > 0
        assert stats.bus_reads > 0
        assert all(h.state is DeviceState.OK for h in agent.health.values())
    # The cadence held: as many cycles as in the quiet phase, starting as punctually
    # (the median: a machine shared with other work stalls a cycle now and then either
    # way; docs/benchmarks.md, "Gateway", has the tails, measured apart).
    assert len(attacked) >= 0.9 * len(quiet)
    assert median(deviations(attacked, interval)) <= median(deviations(quiet, interval)) + 0.01


async def test_a_client_is_paced_across_its_connections(
    tmp_path: Path, served: DeviceServer
) -> None:
    async with agent_with_gateway(tmp_path, served, "requests_per_s = 2\n") as agent:
        loop = asyncio.get_running_loop()
        async with client(agent) as modbus:
            began = loop.time()
            for _ in range(2):  # the burst
                answer = await modbus.read_holding_registers(MODEL_103, count=2, device_id=1)
                assert not answer.isError()
            assert loop.time() - began < 0.4
        # A new connection from the same address buys no new burst: its first waits.
        async with client(agent) as modbus:
            began = loop.time()
            for _ in range(2):
                answer = await modbus.read_holding_registers(MODEL_103, count=2, device_id=1)
                assert not answer.isError()
            assert loop.time() - began >= 0.7  # two requests at 2 a second


async def test_an_rtu_line_through_minimalmodbus_is_shared_too(tmp_path: Path) -> None:
    sections = Plant("sunny", seed=1, start=START).state.sections()
    images = encode_site(sections)
    specs = [
        DeviceSpec(1, images[Unit.INVERTER], writable=(WRITABLE,)),
        DeviceSpec(2, images[Unit.GRID_METER], REGISTER_MAPS[Unit.GRID_METER].max_count),
    ]
    async with DeviceServer(specs, tcp=None, rtu=True, baudrate=115200) as line:
        text = (
            f'device_id = "gw_rtu"\n[hub]\nurl = "ws://127.0.0.1:{free_port()}"\n'
            f'[buffer]\npath = "{tmp_path / "buffer.db"}"\n[sampling]\ninterval_s = 0.2\n'
            "[clock]\nrequire_sync = false\n"
            f'[[bus]]\nname = "line"\ntype = "rtu"\ndevice = "{line.rtu_path}"\n'
            'baudrate = 115200\nbackend = "minimalmodbus"\n'
            '[[device]]\nname = "inverter"\nrole = "inverter"\nprofile = "sunspec"\n'
            'bus = "line"\nunit = 1\n'
            '[[device]]\nname = "meter"\nrole = "grid"\nprofile = "eastron_sdm630"\n'
            'bus = "line"\nunit = 2\n'
            "[gateway]\nport = 0\nread_only = false\nunits = { inverter = 11 }\n"
            f'[[gateway.write]]\ndevice = "inverter"\nfirst = {ALLOWED[0]}\nlast = {ALLOWED[1]}\n'
        )
        async with running(tmp_path, text) as agent, client(agent) as modbus:
            shared = agent.shared_buses["line"]
            polled = await modbus.read_holding_registers(POLLED[0], count=50, device_id=11)
            assert not polled.isError()
            assert shared.guest_transactions == 0
            # Unit 11 for the gateway's clients is unit 1 on the line.
            address, count = COMMON_TAIL
            tail = await modbus.read_holding_registers(address, count=count, device_id=11)
            assert list(tail.registers) == COMMON_TAIL_WORDS
            nobody = await modbus.read_holding_registers(MODEL_103, count=2, device_id=1)
            assert exception_code(nobody) == 0x0A
            written = await modbus.write_registers(ALLOWED[0], [300, 301], device_id=11)
            assert not written.isError()
            assert (line.holding(1, ALLOWED[0]), line.holding(1, ALLOWED[1])) == (300, 301)
            assert shared.guest_transactions == 2
            meter = await modbus.write_register(0, 1, device_id=2)
            assert exception_code(meter) == 1
            assert all(h.state is DeviceState.OK for h in agent.health.values())


async def test_an_address_that_keeps_sending_garbage_is_refused_at_accept(
    tmp_path: Path, served: DeviceServer
) -> None:
    async with agent_with_gateway(tmp_path, served, "") as agent:
        assert agent.gateway is not None
        port = agent.gateway.port

        async def garbage_from(address: str) -> bytes:
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, local_addr=(address, 0)
            )
            writer.write(bytes.fromhex("aa aa 55 55 aa aa 55 00 ff 13"))
            async with asyncio.timeout(5):
                answer = await reader.read()
            writer.close()
            return answer

        for _ in range(10):
            assert await garbage_from("127.0.0.3") == b""  # no answer: closed
        assert agent.gateway.stats.closed_bad_frames == 10
        # The eleventh connection is refused before it is read at all.
        assert await garbage_from("127.0.0.3") == b""
        assert agent.gateway.stats.closed_bad_frames == 10
        assert agent.gateway.stats.refused_connections == 1
        # Other addresses are served as before.
        async with client(agent) as modbus:
            answer = await modbus.read_holding_registers(MODEL_103, count=2, device_id=1)
            assert not answer.isError()


async def test_a_gateway_port_in_use_stops_the_start_in_one_line(
    tmp_path: Path, served: DeviceServer
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        text = site_config(tmp_path, f"ws://127.0.0.1:{free_port()}", served.tcp_port, "gw")
        config = parse_config(text + f"\n[gateway]\nport = {port}\n", base_dir=tmp_path)
        agent = Agent(config, token="unused", options=OPTIONS)
        with pytest.raises(AgentError) as caught:
            async with asyncio.timeout(15):
                await agent.run()
    assert str(caught.value) == (
        f"config error: gateway.port: cannot listen on 127.0.0.1:{port}: address already in use"
    )


async def test_a_failing_device_is_answered_0b_without_asking_the_bus(
    tmp_path: Path, served: DeviceServer
) -> None:
    async with agent_with_gateway(tmp_path, served, "max_age_s = 0.5\n") as agent:
        assert agent.gateway is not None
        served.set_fault(int(Unit.GRID_METER), Fault(FaultKind.SILENT))  # unplugged
        await until(lambda: agent.health["meter"].state is DeviceState.FAILING)
        await asyncio.sleep(0.6)  # its last values are older than max_age_s now
        guest_before = bus(agent)[1]
        async with client(agent) as modbus:
            stale = await modbus.read_input_registers(0, count=6, device_id=2)
            assert exception_code(stale) == 0x0B
            other = await modbus.read_input_registers(100, count=2, device_id=2)
            assert exception_code(other) == 0x0B
            # The other devices of the bus are served as before.
            inverter = await modbus.read_holding_registers(POLLED[0], count=50, device_id=1)
            assert not inverter.isError()
        assert bus(agent)[1] == guest_before  # the silent meter cost the bus nothing
        served.set_fault(int(Unit.GRID_METER), Fault(FaultKind.NONE))
        await until(lambda: agent.health["meter"].state is DeviceState.OK)
        async with client(agent) as modbus:
            back = await modbus.read_input_registers(0, count=6, device_id=2)
            assert not back.isError()


async def test_random_requests_get_a_well_formed_answer_each(
    tmp_path: Path, served: DeviceServer
) -> None:
    """Valid headers around random PDUs, for random units: one answer per request, with
    its transaction id and unit, the function echoed or an exception (its bit set)."""
    rng = random.Random(20261203)
    async with agent_with_gateway(tmp_path, served, "requests_per_s = 5000\n") as agent:
        assert agent.gateway is not None
        reader, writer = await asyncio.open_connection("127.0.0.1", agent.gateway.port)
        try:
            for transaction in range(400):
                function = rng.choice([1, 2, 3, 4, 5, 6, 15, 16, 17, 43, 0x80, rng.randrange(256)])
                pdu = bytes([function]) + rng.randbytes(rng.randrange(0, 12))
                if rng.random() < 0.3 and function in (3, 4):  # a well-formed read, too
                    pdu = struct.pack(">BHH", function, rng.choice([0, 40070, 65535]), 1)
                unit = rng.choice([1, 2, 3, 4, 9, 0, 255])
                header = struct.pack(">HHHB", transaction, 0, len(pdu) + 1, unit)
                writer.write(header + pdu)
                async with asyncio.timeout(10):
                    head = await reader.readexactly(7)
                    tid, protocol, length, answered_unit = struct.unpack(">HHHB", head)
                    body = await reader.readexactly(length - 1)
                assert (tid, protocol, answered_unit) == (transaction, 0, unit)
                assert body[0] & 0x7F == function & 0x7F
                if body[0] & 0x80:
                    assert len(body) == 2
                    assert body[1] in (1, 2, 3, 4, 0x0A, 0x0B)
        finally:
            writer.close()
        assert agent.gateway.stats.requests == 400
        async with client(agent) as modbus:  # and it serves as before
            answer = await modbus.read_holding_registers(POLLED[0], count=50, device_id=1)
            assert not answer.isError()


async def test_a_single_client_inverter_is_read_by_others_through_the_agent(
    tmp_path: Path,
) -> None:
    """A SolarEdge inverter takes one Modbus TCP client (simulation/solaredge_site.py):
    with the agent connected, another tool is refused there, but reads it through the
    gateway, a third-party SunSpec scan included."""
    noon = datetime(2026, 6, 21, 11, tzinfo=UTC)
    async with SimulatedSite(
        layout=solaredge_site.LAYOUT, tcp=("127.0.0.1", 0), start=noon, seed=4
    ) as site:
        site.step(1.0)
        text = (
            f'device_id = "gw_se"\n[hub]\nurl = "ws://127.0.0.1:{free_port()}"\n'
            f'[buffer]\npath = "{tmp_path / "buffer.db"}"\n[sampling]\ninterval_s = 0.2\n'
            "[clock]\nrequire_sync = false\n"
            f'[[bus]]\nname = "lan"\ntype = "tcp"\nhost = "127.0.0.1"\nport = {site.tcp_port}\n'
            '[[device]]\nname = "solaredge"\nrole = "inverter"\nprofile = "solaredge"\n'
            'bus = "lan"\nunit = 1\n'
            "[gateway]\nport = 0\n"
        )
        async with running(tmp_path, text) as agent:
            assert agent.gateway is not None
            other = AsyncModbusTcpClient("127.0.0.1", port=site.tcp_port, timeout=1, retries=0)
            await other.connect()
            with pytest.raises(ModbusException):  # closed by the inverter: one client only
                await other.read_holding_registers(40000, count=2, device_id=1)
            other.close()
            assert site.server.refused_clients >= 1
            device = SunSpecModbusClientDeviceTCP(
                slave_id=1, ipaddr="127.0.0.1", ipport=agent.gateway.port, timeout=5
            )
            await asyncio.to_thread(device.scan)
            assert device.models[1][0].Mn.value == "SolarEdge"
            snapshot = agent.health["solaredge"].snapshot
            assert snapshot is not None
            inverter = next(
                m for key, ms in device.models.items() if key in (101, 102, 103) for m in ms
            )
            polled = snapshot.sections["inverter"]["ac_power_w"]
            assert isinstance(polled, float)
            assert inverter.W.cvalue == pytest.approx(polled, abs=1.0)
            stats = agent.gateway.stats
            # It reads whole models, wider than the agent's plan for this profile reads:
            # each went to the inverter, between polls, over the agent's connection.
            assert stats.exceptions == 0
            assert stats.requests == stats.bus_reads == agent.shared_buses["lan"].guest_transactions
            assert site.server.tcp_clients == 1  # still only the agent
            assert agent.health["solaredge"].state is DeviceState.OK
