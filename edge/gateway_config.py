"""The ``[gateway]`` section of the edge config (docs/configuration.md, docs/gateway.md).

:class:`GatewayFile` is the section's shape (pydantic, unknown keys refused);
:func:`gateway_problems` the rules that need the devices (a unit given twice,
a write rule for a device that does not exist); :func:`build_gateway` the
frozen :class:`GatewayConfig` the agent uses. Problems name the key, as the
rest of the config does (edge/config.py)::

    config error: gateway.allow[1]: '192.168.1.5/24' has host bits set (192.168.1.0/24?)

Unit ids: a client reaches a device at its own unit id on its bus, unless
``gateway.units`` gives it another (two buses that both have a unit 1); two
devices may never share a gateway unit id.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Annotated, Final, NamedTuple

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "GatewayConfig",
    "GatewayDevice",
    "GatewayFile",
    "GatewayProblem",
    "WriteRule",
    "build_gateway",
    "gateway_problems",
]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_PORT: Final = 1502  # 502 needs root or CAP_NET_BIND_SERVICE (docs/gateway.md)
DEFAULT_ALLOW: Final = ("127.0.0.0/8", "::1/128")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class _WriteRule(_Model):
    device: Annotated[str, Field(min_length=1, max_length=64)]
    first: Annotated[int, Field(ge=0, le=0xFFFF)]
    last: Annotated[int, Field(ge=0, le=0xFFFF)]


class GatewayFile(_Model):
    """``[gateway]`` as written in the file."""

    listen: Annotated[str, Field(min_length=1)] = "127.0.0.1"
    # 0: any free port (tests); the agent logs the one it got.
    port: Annotated[int, Field(ge=0, le=65535)] = DEFAULT_PORT
    allow: list[str] = Field(default_factory=lambda: list(DEFAULT_ALLOW))
    read_only: bool = True
    max_age_s: Annotated[float, Field(gt=0, strict=False)] = 5.0
    max_clients: Annotated[int, Field(ge=1, le=1024)] = 8
    requests_per_s: Annotated[float, Field(gt=0, le=10000, strict=False)] = 20.0
    units: dict[str, Annotated[int, Field(ge=1, le=247)]] = Field(default_factory=dict)
    write: list[_WriteRule] = Field(default_factory=list)


class GatewayDevice(NamedTuple):
    """What the gateway needs of a configured device: its name, bus and unit id there."""

    name: str
    bus: str
    unit: int


@dataclass(frozen=True, slots=True)
class GatewayProblem:
    key: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class WriteRule:
    """Holding registers ``first``..``last`` (inclusive) of ``device`` that clients may write."""

    device: str
    first: int
    last: int

    def covers(self, device: str, address: int, count: int) -> bool:
        return device == self.device and self.first <= address and address + count - 1 <= self.last


@dataclass(frozen=True, slots=True, kw_only=True)
class GatewayConfig:
    listen: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    allow: tuple[Network, ...] = tuple(ipaddress.ip_network(n) for n in DEFAULT_ALLOW)
    read_only: bool = True
    max_age_s: float = 5.0
    max_clients: int = 8
    requests_per_s: float = 20.0
    # Every device's gateway unit id, by device name.
    units: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    writes: tuple[WriteRule, ...] = ()

    def allowed(self, host: str) -> bool:
        """Whether a client at ``host`` (an IP address) may connect."""
        try:
            address = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped  # a dual-stack socket's view of an IPv4 client
        return any(address in network for network in self.allow)

    def may_write(self, device: str, address: int, count: int) -> bool:
        """Whether ``count`` holding registers of ``device`` from ``address`` may be written."""
        if self.read_only:
            return False
        return any(rule.covers(device, address, count) for rule in self.writes)


def _networks(allow: Sequence[str]) -> tuple[list[Network], list[GatewayProblem]]:
    networks: list[Network] = []
    problems: list[GatewayProblem] = []
    if not allow:
        problems.append(GatewayProblem("gateway.allow", "allows no client: list at least one"))
    for index, text in enumerate(allow):
        key = f"gateway.allow[{index}]"
        try:
            networks.append(ipaddress.ip_network(text, strict=True))
        except ValueError as err:
            reason = f"{text!r} is not an address or a network (CIDR): {err}"
            try:
                loose = ipaddress.ip_network(text, strict=False)
            except ValueError:
                pass
            else:
                reason = f"{text!r} has host bits set ({loose}?)"
            problems.append(GatewayProblem(key, reason))
    return networks, problems


def gateway_problems(file: GatewayFile, devices: Sequence[GatewayDevice]) -> list[GatewayProblem]:
    """What is wrong with ``[gateway]`` given the devices (empty: nothing)."""
    problems: list[GatewayProblem] = []
    try:
        ipaddress.ip_address(file.listen)
    except ValueError:
        problems.append(GatewayProblem("gateway.listen", f"{file.listen!r} is not an IP address"))
    problems.extend(_networks(file.allow)[1])
    names = {device.name for device in devices}
    known = ", ".join(device.name for device in devices)
    for name in file.units:
        if name not in names:
            problems.append(
                GatewayProblem(f"gateway.units.{name}", f"no device is named {name!r} ({known})")
            )
    taken: dict[int, str] = {}  # gateway unit -> the key that gave it first
    for index, device in enumerate(devices):
        if device.name in file.units:
            unit, key = file.units[device.name], f"gateway.units.{device.name}"
        else:
            unit, key = device.unit, f"device[{index}].unit"
        if unit in taken:
            problems.append(
                GatewayProblem(
                    key,
                    f"gateway unit {unit} is already {taken[unit]}'s; give one of them "
                    "another in gateway.units",
                )
            )
        else:
            taken[unit] = key
    for index, rule in enumerate(file.write):
        key = f"gateway.write[{index}]"
        if file.read_only:
            problems.append(GatewayProblem(key, "writes need gateway.read_only = false"))
        if rule.device not in names:
            problems.append(
                GatewayProblem(f"{key}.device", f"no device is named {rule.device!r} ({known})")
            )
        if rule.last < rule.first:
            problems.append(
                GatewayProblem(f"{key}.last", f"{rule.last} is before first ({rule.first})")
            )
    return problems


def build_gateway(file: GatewayFile, devices: Iterable[GatewayDevice]) -> GatewayConfig:
    """The section as values (after :func:`gateway_problems` found nothing)."""
    networks, _ = _networks(file.allow)
    units = {device.name: file.units.get(device.name, device.unit) for device in devices}
    return GatewayConfig(
        listen=file.listen,
        port=file.port,
        allow=tuple(networks),
        read_only=file.read_only,
        max_age_s=file.max_age_s,
        max_clients=file.max_clients,
        requests_per_s=file.requests_per_s,
        units=MappingProxyType(units),
        writes=tuple(
            WriteRule(device=rule.device, first=rule.first, last=rule.last) for rule in file.write
        ),
    )
