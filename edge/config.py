"""The edge agent's config file (docs/configuration.md), validated before anything starts.

The TOML is checked by pydantic models (unknown keys refused), then by the
rules that span sections (a device's bus must exist, several devices of a role
each say whether they add up, ...).
Every problem becomes one line naming the key and the reason, for example::

    config error: device[1].bus: 'rs486' is not a defined bus (defined: rs485, lan)

Indexes count from 0, in file order, as TOML arrays of tables do. The rest of
the agent gets frozen dataclasses (:class:`EdgeConfig`), never the models.

Relative paths (``buffer.path``, ``hub.token_file``, ``hub.ca_file``, ``device.profile_file``)
are taken from the directory of the config file, so a site directory can be
moved as a whole.

Exceptions::

    ConfigError          one or more problems; ``problems`` holds them, str() is one line each
"""

from __future__ import annotations

import contextlib
import os
import re
import ssl
import tomllib
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from drivers.bus import Backend, BusConfig, BusType, Parity
from drivers.profiles import profile_names
from edge.gateway_config import GatewayDevice, GatewayFile, build_gateway, gateway_problems
from edge.mqtt_config import MqttSection, build_mqtt, mqtt_problems
from edge.settings import (
    BufferConfig,
    ClockConfig,
    DeviceConfig,
    EdgeConfig,
    EnergyConfig,
    HubConfig,
    Role,
)
from telemetry import is_valid_device_id
from telemetry.health import TIMEZONE_PATTERN
from telemetry.reading import EXTRA_NAME_PATTERN

__all__ = [
    "BufferConfig",
    "ClockConfig",
    "ConfigError",
    "DeviceConfig",
    "EdgeConfig",
    "EnergyConfig",
    "HubConfig",
    "Problem",
    "Role",
    "load_config",
    "parse_config",
    "resolve_token",
    "system_timezone",
    "tls_context",
]

TOKEN_ENV: Final = "EMS_TOKEN"
# systemd passes credentials (LoadCredential=token:...) as files in this directory.
CREDENTIALS_ENV: Final = "CREDENTIALS_DIRECTORY"


class ConfigError(Exception):
    """The config file cannot be used; ``problems`` lists every reason found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(problem) for problem in self.problems))


@dataclass(frozen=True, slots=True)
class Problem:
    """One reason a config file is refused: the key (``device[1].bus``) and why."""

    key: str
    reason: str

    def __str__(self) -> str:
        return (
            f"config error: {self.key}: {self.reason}"
            if self.key
            else f"config error: {self.reason}"
        )


# --- the file's shape ----------------------------------------------------------------

Name = Annotated[str, Field(min_length=1, max_length=64)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class _Hub(_Model):
    url: str
    token: Annotated[str, Field(min_length=1)] | None = None
    token_file: str | None = None
    ca_file: Annotated[str, Field(min_length=1)] | None = None


class _Buffer(_Model):
    path: Annotated[str, Field(min_length=1)]
    max_mb: Annotated[float, Field(gt=0, strict=False)] = 256.0


class _Sampling(_Model):
    interval_s: Annotated[float, Field(gt=0, strict=False)] = 1.0


class _Clock(_Model):
    require_sync: bool = True
    hub_fallback: bool = True
    jump_tolerance_s: Annotated[float, Field(gt=0, strict=False)] = 2.0


class _Energy(_Model):
    max_gap_s: Annotated[float, Field(gt=0, strict=False)] | None = None
    max_power_w: Annotated[float, Field(gt=0, le=1e7, strict=False)] = 100_000.0
    time_scale: Annotated[float, Field(gt=0, le=1e6, strict=False)] = 1.0


# Which keys belong to which bus type: an rtu key on a tcp bus is refused.
_RTU_KEYS: Final = frozenset({"device", "baudrate", "parity", "stopbits", "bytesize"})
_TCP_KEYS: Final = frozenset({"host", "port"})


class _Bus(_Model):
    name: Name
    type: Literal["rtu", "tcp"]
    # rtu
    device: Annotated[str, Field(min_length=1)] | None = None
    baudrate: Annotated[int, Field(gt=0)] = 9600
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    bytesize: Literal[7, 8] = 8
    # tcp
    host: Annotated[str, Field(min_length=1)] | None = None
    port: Annotated[int, Field(ge=1, le=65535)] = 502
    # both
    timeout_s: Annotated[float, Field(gt=0, strict=False)] | None = None
    backend: Literal["pymodbus", "minimalmodbus"] = "pymodbus"


class _Device(_Model):
    name: Name
    role: Literal["inverter", "grid", "solar", "battery"]
    # A name of the device catalogue (drivers.profiles, docs/devices.md) or "generic".
    profile: str
    bus: Name
    # Modbus over serial line 2.3: 1-247; a TCP gateway may use 0-255 (checked per bus).
    unit: Annotated[int, Field(ge=0, le=255)]
    profile_file: Annotated[str, Field(min_length=1)] | None = None
    # docs/configuration.md, "Several devices per role": true adds the device into
    # its role's section (said on each of several that add up), false keeps it
    # out (a sub-meter); unset: the role's only counted device, as before.
    total: bool | None = None


class _File(_Model):
    device_id: str
    timezone: Annotated[str, Field(min_length=1)] | None = None
    hub: _Hub
    buffer: _Buffer
    sampling: _Sampling = _Sampling()
    clock: _Clock = _Clock()
    energy: _Energy = _Energy()
    bus: Annotated[list[_Bus], Field(min_length=1)]
    device: Annotated[list[_Device], Field(min_length=1)]
    gateway: GatewayFile | None = None  # docs/gateway.md
    mqtt: MqttSection | None = None  # edge/mqtt_config.py


def _key(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


def _reason(error: Mapping[str, Any]) -> str:
    kind = error["type"]
    if kind == "missing":
        return "missing key"
    if kind == "extra_forbidden":
        return "unknown key"
    message = str(error["msg"])
    message = message[0].lower() + message[1:]
    value = error.get("input")
    if isinstance(value, str | int | float | bool):
        return f"{message} (got {value!r})"
    return message


def _pydantic_problems(err: ValidationError) -> list[Problem]:
    return [Problem(_key(tuple(e["loc"])), _reason(e)) for e in err.errors(include_url=False)]


def _cross_check(file: _File) -> list[Problem]:
    """The rules that span keys or sections (docs/configuration.md)."""
    problems: list[Problem] = []
    if not is_valid_device_id(file.device_id):
        problems.append(
            Problem("device_id", f"{file.device_id!r} must be 1 to 64 of A-Z a-z 0-9 _ - .")
        )
    if not file.hub.url.startswith(("ws://", "wss://")):
        problems.append(
            Problem("hub.url", f"must start with ws:// or wss:// (got {file.hub.url!r})")
        )
    elif file.hub.ca_file is not None and not file.hub.url.startswith("wss://"):
        problems.append(Problem("hub.ca_file", "only used with a wss:// hub.url"))

    if file.timezone is not None and (reason := _timezone_problem(file.timezone)):
        problems.append(Problem("timezone", reason))

    bus_types: dict[str, str] = {}
    for index, bus in enumerate(file.bus):
        key = f"bus[{index}]"
        if bus.name in bus_types:
            problems.append(Problem(f"{key}.name", f"{bus.name!r} is already the name of a bus"))
        bus_types.setdefault(bus.name, bus.type)
        foreign = _TCP_KEYS if bus.type == "rtu" else _RTU_KEYS
        for field in sorted(foreign & bus.model_fields_set):
            problems.append(Problem(f"{key}.{field}", f"not allowed on a {bus.type} bus"))
        required = "device" if bus.type == "rtu" else "host"
        if required not in bus.model_fields_set:
            problems.append(
                Problem(f"{key}.{required}", f"missing key (required on a {bus.type} bus)")
            )
        if bus.backend == "minimalmodbus" and bus.type != "rtu":
            problems.append(Problem(f"{key}.backend", "minimalmodbus only drives rtu buses"))

    roles: dict[str, int] = {}  # role -> the first device counted in it
    names: set[str] = set()
    defined = ", ".join(bus_types) or "none"
    for index, device in enumerate(file.device):
        key = f"device[{index}]"
        if device.name in names:
            problems.append(
                Problem(f"{key}.name", f"{device.name!r} is already the name of a device")
            )
        names.add(device.name)
        if device.total is not False:
            first = roles.setdefault(device.role, index)
            # Adding two devices up is a choice said on both: a meter copied twice
            # (a sub-meter left counted) would otherwise double the site's figures.
            if first != index and (device.total is None or file.device[first].total is None):
                reason = f"{device.role!r} is already the role of device[{first}]"
                if device.total or file.device[first].total:
                    reason += "; set total = true on both to add them up"
                problems.append(Problem(f"{key}.role", reason))
        bus_type = bus_types.get(device.bus)
        if bus_type is None:
            problems.append(
                Problem(f"{key}.bus", f"{device.bus!r} is not a defined bus (defined: {defined})")
            )
        elif bus_type == "rtu" and not 1 <= device.unit <= 247:
            # Modbus over serial line 2.3: 0 is broadcast, 248-255 reserved.
            problems.append(
                Problem(f"{key}.unit", f"must be 1 to 247 on an rtu bus (got {device.unit})")
            )
        if device.profile not in profile_names():
            known = ", ".join(profile_names())
            problems.append(
                Problem(f"{key}.profile", f"unknown profile {device.profile!r} (one of {known})")
            )
        if device.profile == "generic" and device.profile_file is None:
            problems.append(
                Problem(f"{key}.profile_file", "missing key (required by profile 'generic')")
            )
        if device.profile != "generic" and device.profile_file is not None:
            problems.append(Problem(f"{key}.profile_file", "only used with profile 'generic'"))
    if file.mqtt is not None:
        problems.extend(
            Problem(key, reason)
            for key, reason in mqtt_problems(file.mqtt, interval_s=file.sampling.interval_s)
        )
    if _several_per_role(file.device):
        for index, device in enumerate(file.device):
            if _NAME.fullmatch(device.name) is None:
                problems.append(
                    Problem(
                        f"device[{index}].name",
                        f"{device.name!r} must be 1 to 64 of A-Z a-z 0-9 _ - . when the "
                        "readings name each device (several devices of a role, or total = false)",
                    )
                )
    if file.gateway is not None:
        devices = [GatewayDevice(d.name, d.bus, d.unit) for d in file.device]
        problems.extend(Problem(p.key, p.reason) for p in gateway_problems(file.gateway, devices))
    return problems


_NAME: Final = re.compile(EXTRA_NAME_PATTERN)
_TIMEZONE: Final = re.compile(TIMEZONE_PATTERN)


def _timezone_problem(name: str) -> str:
    """Why ``name`` is no time zone this machine knows ("" when it is one)."""
    if len(name) > 64 or _TIMEZONE.fullmatch(name) is None:
        return f"{name!r} is not an IANA time zone name such as 'Europe/Berlin'"
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return f"{name!r} is not a time zone of this machine's tz database (e.g. 'Europe/Berlin')"
    return ""


def system_timezone(etc: Path = Path("/etc")) -> str:
    """This machine's time zone: ``/etc/timezone`` (Debian, Raspberry Pi OS), else where
    ``/etc/localtime`` links into the tz database, else ``UTC``; only a name zoneinfo knows."""
    candidates: list[str] = []
    with contextlib.suppress(OSError, UnicodeDecodeError):  # absent: ask /etc/localtime
        candidates.append((etc / "timezone").read_text(encoding="utf-8").strip())
    try:
        target = os.readlink(etc / "localtime")
    except OSError:
        target = ""
    if "zoneinfo/" in target:
        candidates.append(target.rsplit("zoneinfo/", 1)[1])
    for name in candidates:
        if name and not _timezone_problem(name):
            return name
    return "UTC"


def _several_per_role(devices: list[_Device]) -> bool:
    """Whether readings carry each device's values (docs/protocol.md, "devices")."""
    counted = [device.role for device in devices if device.total is not False]
    return len(counted) != len(devices) or len(set(counted)) != len(counted)


def _path(base: Path, text: str) -> Path:
    path = Path(text).expanduser()
    return path if path.is_absolute() else base / path


def _build(file: _File, base: Path) -> EdgeConfig:
    buses: list[BusConfig] = []
    for bus in file.bus:
        backend = Backend(bus.backend)
        if bus.type == "rtu":
            assert bus.device is not None  # checked by _cross_check
            buses.append(
                BusConfig(
                    name=bus.name,
                    type=BusType.RTU,
                    device=bus.device,
                    baudrate=bus.baudrate,
                    parity=Parity(bus.parity),
                    stopbits=bus.stopbits,
                    bytesize=bus.bytesize,
                    timeout_s=bus.timeout_s if bus.timeout_s is not None else 0.5,
                    backend=backend,
                )
            )
        else:
            assert bus.host is not None
            buses.append(
                BusConfig(
                    name=bus.name,
                    type=BusType.TCP,
                    host=bus.host,
                    port=bus.port,
                    timeout_s=bus.timeout_s if bus.timeout_s is not None else 1.0,
                    backend=backend,
                )
            )
    devices = tuple(
        DeviceConfig(
            name=device.name,
            role=Role(device.role),
            profile=device.profile,
            bus=device.bus,
            unit=device.unit,
            profile_file=_path(base, device.profile_file) if device.profile_file else None,
            total=device.total is not False,
        )
        for device in file.device
    )
    return EdgeConfig(
        device_id=file.device_id,
        hub=HubConfig(
            url=file.hub.url,
            token=file.hub.token,
            token_file=_path(base, file.hub.token_file) if file.hub.token_file else None,
            ca_file=_path(base, file.hub.ca_file) if file.hub.ca_file else None,
        ),
        buffer=BufferConfig(path=_path(base, file.buffer.path), max_mb=file.buffer.max_mb),
        interval_s=file.sampling.interval_s,
        clock=ClockConfig(
            require_sync=file.clock.require_sync,
            jump_tolerance_s=file.clock.jump_tolerance_s,
            hub_fallback=file.clock.hub_fallback,
        ),
        buses=tuple(buses),
        devices=devices,
        gateway=None
        if file.gateway is None
        else build_gateway(file.gateway, (GatewayDevice(d.name, d.bus, d.unit) for d in devices)),
        timezone=file.timezone if file.timezone is not None else system_timezone(),
        energy=EnergyConfig(
            max_gap_s=file.energy.max_gap_s,
            max_power_w=file.energy.max_power_w,
            time_scale=file.energy.time_scale,
        ),
        mqtt=(
            build_mqtt(file.mqtt, base=base, device_id=file.device_id)
            if file.mqtt is not None
            else None
        ),
    )


def parse_config(text: str, *, base_dir: Path) -> EdgeConfig:
    """Validate the TOML text of a config file; relative paths are taken from ``base_dir``."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError([Problem("", f"not valid TOML: {err}")]) from err
    try:
        file = _File.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(_pydantic_problems(err)) from err
    problems = _cross_check(file)
    if problems:
        raise ConfigError(problems)
    return _build(file, base_dir)


def load_config(path: Path) -> EdgeConfig:
    """Read and validate a config file."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError([Problem("", f"cannot read {str(path)!r}: {err}")]) from err
    return parse_config(text, base_dir=path.resolve().parent)


def _read_token(path: Path, key: str) -> str:
    try:
        token = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError([Problem(key, f"cannot read {str(path)!r}: {err}")]) from err
    if not token:
        raise ConfigError([Problem(key, f"{str(path)!r} is empty")])
    return token


def tls_context(hub: HubConfig) -> ssl.SSLContext | None:
    """The TLS settings of a ``wss://`` hub: certificate and host name always verified.

    With ``hub.ca_file`` only that CA is trusted (a private CA signed the hub's
    certificate); without it, the system's CAs. None for a ``ws://`` hub.
    """
    if not hub.url.startswith("wss://"):
        return None
    try:
        return ssl.create_default_context(cafile=hub.ca_file)
    except (OSError, ssl.SSLError) as err:
        raise ConfigError(
            [Problem("hub.ca_file", f"cannot load {str(hub.ca_file)!r}: {err}")]
        ) from err


def resolve_token(hub: HubConfig, env: Mapping[str, str] | None = None) -> str:
    """The device token: $EMS_TOKEN, else ``hub.token``, else ``hub.token_file``, else the
    systemd credential ``token`` ($CREDENTIALS_DIRECTORY/token)."""
    env = os.environ if env is None else env
    if env.get(TOKEN_ENV, "").strip():
        return env[TOKEN_ENV].strip()
    if hub.token is not None:
        return hub.token
    if hub.token_file is not None:
        return _read_token(hub.token_file, "hub.token_file")
    credentials = env.get(CREDENTIALS_ENV)
    if credentials:
        return _read_token(Path(credentials) / "token", f"${CREDENTIALS_ENV}/token")
    raise ConfigError(
        [
            Problem(
                "hub.token",
                f"no device token: set ${TOKEN_ENV}, hub.token or hub.token_file, "
                "or pass a systemd credential named 'token'",
            )
        ]
    )
