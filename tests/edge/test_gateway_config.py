"""The [gateway] section: defaults, unit ids, write rules, and every bad value naming its key."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from edge.config import parse_config
from tests.edge.test_config import GOOD, problems_of


def test_no_section_no_gateway() -> None:
    assert parse_config(GOOD, base_dir=Path("/site")).gateway is None


def test_defaults_serve_this_machine_read_only_at_the_devices_own_units() -> None:
    gateway = parse_config(GOOD + "\n[gateway]\n", base_dir=Path("/site")).gateway
    assert gateway is not None
    assert (gateway.listen, gateway.port, gateway.read_only) == ("127.0.0.1", 1502, True)
    assert gateway.allow == (
        ipaddress.ip_network("127.0.0.0/8"),
        ipaddress.ip_network("::1/128"),
    )
    assert dict(gateway.units) == {"grid-meter": 2, "inverter": 1}
    assert gateway.allowed("127.0.0.1")
    assert gateway.allowed("::ffff:127.0.0.1")  # a dual-stack socket's IPv4 client
    assert not gateway.allowed("192.168.1.20")
    assert not gateway.allowed("not an address")
    assert not gateway.may_write("inverter", 40012, 1)


def test_units_limits_and_write_rules() -> None:
    text = GOOD + (
        '\n[gateway]\nlisten = "0.0.0.0"\nport = 502\nallow = ["192.168.1.0/24", "10.0.0.7"]\n'
        "read_only = false\nmax_age_s = 2.5\nmax_clients = 3\nrequests_per_s = 5\n"
        "units = { inverter = 11 }\n"
        '[[gateway.write]]\ndevice = "inverter"\nfirst = 40150\nlast = 40153\n'
    )
    gateway = parse_config(text, base_dir=Path("/site")).gateway
    assert gateway is not None
    assert dict(gateway.units) == {"grid-meter": 2, "inverter": 11}
    assert (gateway.max_age_s, gateway.max_clients, gateway.requests_per_s) == (2.5, 3, 5.0)
    assert gateway.allowed("192.168.1.20")
    assert gateway.allowed("10.0.0.7")
    assert not gateway.allowed("10.0.0.8")
    assert gateway.may_write("inverter", 40150, 4)
    assert gateway.may_write("inverter", 40153, 1)
    assert not gateway.may_write("inverter", 40153, 2)  # one past the range
    assert not gateway.may_write("inverter", 40149, 1)
    assert not gateway.may_write("grid-meter", 40150, 1)


def test_bad_values_name_their_keys() -> None:
    text = GOOD + (
        '\n[gateway]\nlisten = "everywhere"\nport = 70000\n'
        'allow = ["192.168.1.5/24", "lan"]\nmax_age_s = 0\nmax_clients = 0\n'
        "requests_per_s = -1\nunits = { invertor = 3, grid-meter = 300 }\nspeed = 1\n"
    )
    assert problems_of(text) == [
        "config error: gateway.port: input should be less than or equal to 65535 (got 70000)",
        "config error: gateway.max_age_s: input should be greater than 0 (got 0)",
        "config error: gateway.max_clients: input should be greater than or equal to 1 (got 0)",
        "config error: gateway.requests_per_s: input should be greater than 0 (got -1)",
        "config error: gateway.units.grid-meter: input should be less than or equal to 247 "
        "(got 300)",
        "config error: gateway.speed: unknown key",
    ]
    text = GOOD + (
        '\n[gateway]\nlisten = "everywhere"\nallow = ["192.168.1.5/24", "lan"]\n'
        "units = { invertor = 3 }\n"
    )
    lines = problems_of(text)
    assert lines[:3] == [
        "config error: gateway.listen: 'everywhere' is not an IP address",
        "config error: gateway.allow[0]: '192.168.1.5/24' has host bits set (192.168.1.0/24?)",
        "config error: gateway.allow[1]: 'lan' is not an address or a network (CIDR): "
        "'lan' does not appear to be an IPv4 or IPv6 network",
    ]
    assert lines[3].startswith(
        "config error: gateway.units.invertor: no device is named 'invertor' (grid-meter, "
    )
    assert problems_of(GOOD + "\n[gateway]\nallow = []\n") == [
        "config error: gateway.allow: allows no client: list at least one"
    ]


def test_two_devices_at_one_gateway_unit_are_refused() -> None:
    # Unit 2 on the rtu bus and unit 2 on the tcp bus: a client could not tell them apart.
    text = GOOD.replace('bus = "lan"\nunit = 1', 'bus = "lan"\nunit = 2') + "\n[gateway]\n"
    assert problems_of(text) == [
        "config error: device[1].unit: gateway unit 2 is already device[0].unit's; "
        "give one of them another in gateway.units"
    ]
    renamed = text + "units = { inverter = 12 }\n"
    gateway = parse_config(renamed, base_dir=Path("/site")).gateway
    assert gateway is not None
    assert dict(gateway.units) == {"grid-meter": 2, "inverter": 12}
    clash = text + 'units = { inverter = 2, "grid-meter" = 2 }\n'
    assert problems_of(clash) == [
        "config error: gateway.units.inverter: gateway unit 2 is already "
        "gateway.units.grid-meter's; give one of them another in gateway.units"
    ]


def test_write_rules_need_writes_allowed_a_device_and_an_order() -> None:
    text = GOOD + (
        "\n[gateway]\n"
        '[[gateway.write]]\ndevice = "inverter"\nfirst = 10\nlast = 12\n'
        '[[gateway.write]]\ndevice = "battery"\nfirst = 12\nlast = 10\n'
    )
    lines = problems_of(text)
    assert lines[0] == "config error: gateway.write[0]: writes need gateway.read_only = false"
    assert lines[1] == "config error: gateway.write[1]: writes need gateway.read_only = false"
    assert lines[2].startswith("config error: gateway.write[1].device: no device is named")
    assert lines[3] == "config error: gateway.write[1].last: 10 is before first (12)"
    assert problems_of(
        GOOD + '\n[gateway]\n[[gateway.write]]\ndevice = "inverter"\nfirst = 70000\nlast = 1\n'
    ) == [
        "config error: gateway.write[0].first: input should be less than or equal to 65535 "
        "(got 70000)"
    ]
