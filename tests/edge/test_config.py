"""The edge config file: a valid file becomes dataclasses; every bad one a one-line error."""

from __future__ import annotations

from pathlib import Path

import pytest

from drivers.bus import Backend, BusType, Parity
from edge.config import (
    ConfigError,
    EnergyConfig,
    Role,
    load_config,
    parse_config,
    resolve_token,
    system_timezone,
)
from edge.energy import energy_settings

# A config with both bus types (docs/configuration.md), with a second device on the tcp bus.
GOOD = """
device_id = "ems_001"

[hub]
url = "ws://127.0.0.1:8000"
token_file = "/etc/ems-edge/token"

[buffer]
path = "/var/lib/ems-edge/buffer.db"
max_mb = 256

[sampling]
interval_s = 1.0

[[bus]]
name = "rs485"
type = "rtu"
device = "/dev/ttyUSB0"
baudrate = 9600
parity = "N"
stopbits = 1
timeout_s = 0.5
backend = "pymodbus"

[[bus]]
name = "lan"
type = "tcp"
host = "192.168.1.50"
port = 502

[[device]]
name = "grid-meter"
role = "grid"
profile = "eastron_sdm630"
bus = "rs485"
unit = 2

[[device]]
name = "inverter"
role = "inverter"
profile = "sunspec"
bus = "lan"
unit = 1
"""


def problems_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, base_dir=Path("/site"))
    lines = str(caught.value).splitlines()
    assert len(lines) == len(caught.value.problems)
    assert all(line.startswith("config error: ") for line in lines)
    return lines


def test_the_design_example_becomes_dataclasses() -> None:
    config = parse_config(GOOD, base_dir=Path("/site"))
    assert config.device_id == "ems_001"
    assert config.device_url == "ws://127.0.0.1:8000/ws/device/ems_001"
    assert config.interval_s == 1.0
    assert config.buffer.max_bytes == 256 * 1024 * 1024
    rs485 = config.bus("rs485")
    assert (rs485.type, rs485.device, rs485.baudrate, rs485.parity, rs485.stopbits) == (
        BusType.RTU,
        "/dev/ttyUSB0",
        9600,
        Parity.NONE,
        1,
    )
    assert rs485.timeout_s == 0.5
    assert rs485.backend is Backend.PYMODBUS
    lan = config.bus("lan")
    assert (lan.type, lan.host, lan.port) == (BusType.TCP, "192.168.1.50", 502)
    meter = config.device("grid-meter")
    assert (meter.role, meter.profile, meter.bus, meter.unit) == (
        Role.GRID,
        "eastron_sdm630",
        "rs485",
        2,
    )
    assert config.devices_on("lan") == (config.device("inverter"),)
    assert config.clock.require_sync is True


def test_relative_paths_are_taken_from_the_config_directory() -> None:
    text = GOOD.replace('"/var/lib/ems-edge/buffer.db"', '"data/buffer.db"').replace(
        '"/etc/ems-edge/token"', '"token"'
    )
    config = parse_config(text, base_dir=Path("/site"))
    assert config.buffer.path == Path("/site/data/buffer.db")
    assert config.hub.token_file == Path("/site/token")


def test_a_device_on_an_undefined_bus_names_the_key_and_the_defined_buses() -> None:
    text = GOOD.replace('bus = "lan"', 'bus = "rs486"')
    assert problems_of(text) == [
        "config error: device[1].bus: 'rs486' is not a defined bus (defined: rs485, lan)"
    ]


def test_unknown_and_missing_keys() -> None:
    text = GOOD.replace("max_mb = 256", "max_mb = 256\nmax_gb = 1").replace('role = "grid"\n', "")
    assert problems_of(text) == [
        "config error: buffer.max_gb: unknown key",
        "config error: device[0].role: missing key",
    ]


def test_a_missing_section() -> None:
    start = GOOD.index("[buffer]")
    text = GOOD[:start] + GOOD[GOOD.index("[sampling]") :]
    assert problems_of(text) == ["config error: buffer: missing key"]


def test_two_devices_with_the_same_role() -> None:
    text = GOOD.replace('role = "inverter"', 'role = "grid"')
    assert problems_of(text) == [
        "config error: device[1].role: 'grid' is already the role of device[0]"
    ]


def test_two_buses_with_the_same_name() -> None:
    text = GOOD.replace('name = "lan"', 'name = "rs485"').replace('bus = "lan"', 'bus = "rs485"')
    assert problems_of(text) == ["config error: bus[1].name: 'rs485' is already the name of a bus"]


def test_rtu_keys_on_a_tcp_bus_and_minimalmodbus_on_tcp() -> None:
    text = GOOD.replace("port = 502", 'port = 502\nbaudrate = 19200\nbackend = "minimalmodbus"')
    assert problems_of(text) == [
        "config error: bus[1].baudrate: not allowed on a tcp bus",
        "config error: bus[1].backend: minimalmodbus only drives rtu buses",
    ]


def test_tcp_keys_on_an_rtu_bus_and_a_missing_serial_device() -> None:
    text = GOOD.replace('device = "/dev/ttyUSB0"', 'host = "10.0.0.1"')
    assert problems_of(text) == [
        "config error: bus[0].host: not allowed on a rtu bus",
        "config error: bus[0].device: missing key (required on a rtu bus)",
    ]


def test_generic_profile_needs_a_profile_file() -> None:
    text = GOOD.replace('profile = "sunspec"', 'profile = "generic"')
    assert problems_of(text) == [
        "config error: device[1].profile_file: missing key (required by profile 'generic')"
    ]
    text = GOOD.replace('profile = "sunspec"', 'profile = "generic"\nprofile_file = "m.toml"')
    assert parse_config(text, base_dir=Path("/site")).device("inverter").profile_file == Path(
        "/site/m.toml"
    )


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "interval_s = 1.0",
            "interval_s = 0",
            "sampling.interval_s: input should be greater than 0 (got 0)",
        ),
        ("max_mb = 256", "max_mb = -1", "buffer.max_mb: input should be greater than 0 (got -1)"),
        ('type = "tcp"', 'type = "udp"', "bus[1].type: input should be 'rtu' or 'tcp' (got 'udp')"),
        ("unit = 2", "unit = 0", "device[0].unit: must be 1 to 247 on an rtu bus (got 0)"),
        (
            'profile = "sunspec"',
            'profile = "acme_x1"',
            "device[1].profile: unknown profile",
        ),
        ('device_id = "ems_001"', 'device_id = "ems 001"', "device_id: 'ems 001' must be 1 to 64"),
        ('url = "ws://127.0.0.1:8000"', 'url = "http://h"', "hub.url: must start with ws://"),
        ("port = 502", 'port = "502"', "bus[1].port: input should be a valid integer (got '502')"),
    ],
)
def test_bad_values_name_the_key(old: str, new: str, expected: str) -> None:
    assert old in GOOD
    (line,) = problems_of(GOOD.replace(old, new, 1))
    assert line.startswith(f"config error: {expected}")


def test_not_toml() -> None:
    (line,) = problems_of("device_id = ")
    assert line.startswith("config error: not valid TOML: ")


def test_load_config_reads_a_file_and_reports_a_missing_one(tmp_path: Path) -> None:
    path = tmp_path / "edge.toml"
    path.write_text(GOOD.replace('"/var/lib/ems-edge/buffer.db"', '"b.db"'))
    assert load_config(path).buffer.path == tmp_path / "b.db"
    with pytest.raises(ConfigError, match=r"config error: cannot read .*nope.toml"):
        load_config(tmp_path / "nope.toml")


def test_token_precedence(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("from-file\n")
    credentials = tmp_path / "creds"
    credentials.mkdir()
    (credentials / "token").write_text("from-systemd\n")
    config = parse_config(
        GOOD.replace(
            'token_file = "/etc/ems-edge/token"', 'token = "inline"\ntoken_file = "token"'
        ),
        base_dir=tmp_path,
    )
    env = {"EMS_TOKEN": "from-env", "CREDENTIALS_DIRECTORY": str(credentials)}
    assert resolve_token(config.hub, env) == "from-env"
    del env["EMS_TOKEN"]
    assert resolve_token(config.hub, env) == "inline"
    no_inline = parse_config(GOOD.replace('"/etc/ems-edge/token"', '"token"'), base_dir=tmp_path)
    assert resolve_token(no_inline.hub, env) == "from-file"
    neither = parse_config(
        GOOD.replace('token_file = "/etc/ems-edge/token"\n', ""), base_dir=tmp_path
    )
    assert resolve_token(neither.hub, env) == "from-systemd"
    with pytest.raises(
        ConfigError, match=r"^config error: hub.token: no device token: set \$EMS_TOKEN"
    ):
        resolve_token(neither.hub, {})


def test_an_unreadable_or_empty_token_file(tmp_path: Path) -> None:
    config = parse_config(GOOD.replace('"/etc/ems-edge/token"', '"token"'), base_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"^config error: hub.token_file: cannot read"):
        resolve_token(config.hub, {})
    (tmp_path / "token").write_text("  \n")
    with pytest.raises(ConfigError, match=r"^config error: hub.token_file: .* is empty"):
        resolve_token(config.hub, {})


# --- several devices per role (docs/configuration.md) -------------------------------

SUB_METER = """
[[device]]
name = "heat_pump"
role = "grid"
profile = "eastron_sdm120"
bus = "rs485"
unit = 3
total = false
"""


def test_one_device_per_role_is_today_s_site() -> None:
    config = parse_config(GOOD, base_dir=Path("/site"))
    assert all(device.total for device in config.devices)
    assert not config.per_device


def test_a_sub_meter_does_not_count_and_makes_readings_name_each_device() -> None:
    config = parse_config(GOOD + SUB_METER, base_dir=Path("/site"))
    assert [(d.name, d.role, d.total) for d in config.devices] == [
        ("grid-meter", Role.GRID, True),
        ("inverter", Role.INVERTER, True),
        ("heat_pump", Role.GRID, False),
    ]
    assert config.per_device


def test_two_devices_of_a_role_add_up_when_both_say_so() -> None:
    second = SUB_METER.replace("total = false", "total = true").replace("heat_pump", "meter_b")
    first_unset = GOOD + second
    assert problems_of(first_unset) == [
        "config error: device[2].role: 'grid' is already the role of device[0]; "
        "set total = true on both to add them up"
    ]
    both = first_unset.replace("unit = 2\n", "unit = 2\ntotal = true\n")
    config = parse_config(both, base_dir=Path("/site"))
    assert [d.total for d in config.devices] == [True, True, True]
    assert config.per_device


def test_named_devices_need_names_a_reading_can_carry() -> None:
    text = GOOD + SUB_METER.replace('"heat_pump"', '"heat pump"')
    assert problems_of(text) == [
        "config error: device[2].name: 'heat pump' must be 1 to 64 of A-Z a-z 0-9 _ - . when "
        "the readings name each device (several devices of a role, or total = false)"
    ]
    # A site of one device per role keeps the names it always could.
    parse_config(GOOD.replace('"grid-meter"', '"grid meter"'), base_dir=Path("/site"))


def test_total_must_be_a_boolean() -> None:
    assert problems_of(GOOD + SUB_METER.replace("total = false", 'total = "no"')) == [
        "config error: device[2].total: input should be a valid boolean (got 'no')"
    ]


def test_the_timezone_is_an_iana_name_this_machine_knows() -> None:
    config = parse_config('timezone = "Europe/Berlin"\n' + GOOD, base_dir=Path("/etc/ems-edge"))
    assert config.timezone == "Europe/Berlin"
    for bad in ("Europe/Atlantis", "CET/../../etc/passwd", "Berlin time"):
        with pytest.raises(ConfigError) as err:
            parse_config(f'timezone = "{bad}"\n' + GOOD, base_dir=Path("/etc"))
        assert str(err.value).startswith(f"config error: timezone: {bad!r} is not")
    with pytest.raises(ConfigError, match="config error: timezone: input should be a valid string"):
        parse_config("timezone = 1\n" + GOOD, base_dir=Path("/etc"))


def test_without_a_timezone_the_machines_own_is_taken(tmp_path: Path) -> None:
    config = parse_config(GOOD, base_dir=Path("/etc/ems-edge"))
    assert config.timezone == system_timezone()
    # Debian's /etc/timezone first, then where /etc/localtime links, then UTC.
    etc = tmp_path / "etc"
    etc.mkdir()
    assert system_timezone(etc) == "UTC"
    (etc / "localtime").symlink_to("/usr/share/zoneinfo/America/New_York")
    assert system_timezone(etc) == "America/New_York"
    (etc / "timezone").write_text("Europe/Berlin\n")
    assert system_timezone(etc) == "Europe/Berlin"
    (etc / "timezone").write_text("Nowhere/Special\n")  # not a zone: the link is next
    assert system_timezone(etc) == "America/New_York"


def test_the_energy_section() -> None:
    config = parse_config(GOOD, base_dir=Path("/etc/ems-edge"))
    assert config.energy == EnergyConfig()
    assert config.max_gap_s == 10.0  # 5 intervals of 1 s, at least 10 s
    slow = parse_config(GOOD.replace("interval_s = 1.0", "interval_s = 5"), base_dir=Path("/"))
    assert slow.max_gap_s == 25.0
    text = GOOD + "\n[energy]\nmax_gap_s = 30\nmax_power_w = 250000\n"
    config = parse_config(text, base_dir=Path("/etc/ems-edge"))
    assert config.energy == EnergyConfig(max_gap_s=30.0, max_power_w=250_000.0)
    assert config.max_gap_s == 30.0
    with pytest.raises(ConfigError, match=r"energy\.max_gap_s: input should be greater than 0"):
        parse_config(GOOD + "\n[energy]\nmax_gap_s = 0\n", base_dir=Path("/"))
    with pytest.raises(ConfigError, match=r"energy\.max_powr_w: unknown key"):
        parse_config(GOOD + "\n[energy]\nmax_powr_w = 5\n", base_dir=Path("/"))


def test_the_demo_s_energy_time_scale() -> None:
    config = parse_config(GOOD + "\n[energy]\ntime_scale = 60\n", base_dir=Path("/"))
    assert config.energy == EnergyConfig(time_scale=60.0)
    assert energy_settings(config).max_gap_s == 600.0  # 10 s of wall time, on plant time
    assert energy_settings(parse_config(GOOD, base_dir=Path("/"))).max_gap_s == 10.0
    for bad in ("0", "-1", "1e7", "inf", "nan", '"fast"'):
        with pytest.raises(ConfigError, match=r"energy\.time_scale: "):
            parse_config(GOOD + f"\n[energy]\ntime_scale = {bad}\n", base_dir=Path("/"))
