"""The edge agent's settings as values: what a validated config file becomes (edge/config.py).

Frozen dataclasses, no validation here: :func:`edge.config.parse_config` builds
them from a file it has checked. Field names are those of the config file
(docs/configuration.md). The vocabulary has one owner each: buses are the
drivers' :class:`~drivers.bus.BusConfig` (a ``[[bus]]`` table becomes one
directly), profiles are names of the drivers' catalogue, roles are telemetry's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from drivers.bus import BusConfig
from edge.gateway_config import GatewayConfig
from edge.mqtt_config import MqttConfig
from telemetry.roles import Role

__all__ = [
    "BufferConfig",
    "ClockConfig",
    "DeviceConfig",
    "EdgeConfig",
    "EnergyConfig",
    "HubConfig",
    "Role",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceConfig:
    name: str
    role: Role
    profile: str  # a catalogue name (drivers.profiles) or "generic"
    bus: str
    unit: int
    profile_file: Path | None = None
    # Counts toward its role's section; false for a sub-meter (docs/configuration.md).
    total: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class HubConfig:
    url: str
    token: str | None = None
    token_file: Path | None = None
    # wss:// only: the CA that signed the hub's certificate (a private CA); None: the
    # system's trusted CAs. Verification is always on (docs/security.md).
    ca_file: Path | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class BufferConfig:
    path: Path
    max_mb: float = 256.0

    @property
    def max_bytes(self) -> int:
        return int(self.max_mb * 1024 * 1024)


@dataclass(frozen=True, slots=True, kw_only=True)
class ClockConfig:
    # When true, the kernel's NTP state (adjtimex) must say "synchronized" before a
    # reading is stamped, where the kernel reports it. A Pi without an RTC needs
    # this; a host whose kernel never reports sync (some containers) sets false.
    require_sync: bool = True
    # A step of the wall clock against the monotonic one beyond this is a jump.
    jump_tolerance_s: float = 2.0
    # While the kernel is not synchronized, stamp readings with the hub's clock,
    # measured over the uplink (edge/hubtime.py): a LAN without internet has no NTP.
    hub_fallback: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class EnergyConfig:
    """How the agent computes each reading's energy (docs/protocol.md, "Energy")."""

    # No power is integrated across a longer time between two samples; None: five
    # sampling intervals, at least 10 s (EdgeConfig.max_gap_s).
    max_gap_s: float | None = None
    # A counter rising faster than this is a replaced device or a glitch.
    max_power_w: float = 100_000.0
    # Demo only: plant seconds per wall second of a simulated site run sped up
    # (``ems demo --speed``), whose counters move that much faster (edge/energy.py).
    time_scale: float = 1.0


@dataclass(frozen=True, slots=True, kw_only=True)
class EdgeConfig:
    device_id: str
    hub: HubConfig
    buffer: BufferConfig
    interval_s: float
    clock: ClockConfig
    buses: tuple[BusConfig, ...]
    devices: tuple[DeviceConfig, ...]
    gateway: GatewayConfig | None = None  # [gateway]: docs/gateway.md; None: off
    # The site's IANA time zone, checked with zoneinfo (edge/config.py), sent in the
    # health frame: the hub's days and months of energy are the site's.
    timezone: str = "UTC"
    energy: EnergyConfig = EnergyConfig()
    # Home Assistant over MQTT ([mqtt], edge/mqtt_config.py); None: no MQTT at all.
    mqtt: MqttConfig | None = None

    @property
    def max_gap_s(self) -> float:
        """The longest time between two samples that power is integrated across."""
        if self.energy.max_gap_s is not None:
            return self.energy.max_gap_s
        return max(5 * self.interval_s, 10.0)

    @property
    def device_url(self) -> str:
        """The device door (docs/protocol.md, "Doors")."""
        return f"{self.hub.url.rstrip('/')}/ws/device/{self.device_id}"

    @property
    def per_device(self) -> bool:
        """Whether readings carry each device's own values beside the totals.

        True when a role has several counted devices or a device does not count
        (docs/protocol.md, "Several devices per role"); a site of one device
        per role sends exactly the frames it always did.
        """
        counted = [device.role for device in self.devices if device.total]
        return len(counted) != len(self.devices) or len(set(counted)) != len(counted)

    def bus(self, name: str) -> BusConfig:
        for bus in self.buses:
            if bus.name == name:
                return bus
        raise KeyError(name)

    def device(self, name: str) -> DeviceConfig:
        for device in self.devices:
            if device.name == name:
                return device
        raise KeyError(name)

    def devices_on(self, bus_name: str) -> tuple[DeviceConfig, ...]:
        return tuple(device for device in self.devices if device.bus == bus_name)
