"""The device catalogue: every entry is complete and consistent, checked on the data alone."""

from __future__ import annotations

import pytest

from drivers.bus import BusType
from drivers.profiles import GENERIC, PROFILES, profile_names, scan_units
from drivers.profiles.describe import representative_map
from drivers.profiles.generic import _check_target
from drivers.registers import RegisterType


def test_names_are_unique_and_generic_comes_last() -> None:
    names = profile_names()
    assert len(set(names)) == len(names)
    assert names[-1] == GENERIC
    assert set(names[:-1]) == set(PROFILES)


@pytest.mark.parametrize("name", list(PROFILES))
def test_every_profile_is_complete(name: str) -> None:
    profile = PROFILES[name]
    assert profile.vendor
    assert profile.models
    assert profile.source
    assert profile.transports, "at least one bus type"
    assert 0 <= profile.default_unit <= 255
    reg_map = representative_map(profile)
    assert reg_map.plan, "a poll reads something"
    assert all(r.count <= reg_map.max_count for r in reg_map.plan)
    assert len(reg_map.minimal_plan) <= len(reg_map.plan)
    for point in reg_map.points:
        if point.target is not None and point.target.field not in ("state",):
            _check_target(point.target)  # a field the wire model has
    # The role's own section is what the device mainly fills.
    assert profile.role.value in profile.sections or profile.register_map is None


@pytest.mark.parametrize("name", [n for n, p in PROFILES.items() if p.signature is not None])
def test_a_signature_reads_registers_a_read_may_ask_for(name: str) -> None:
    signature = PROFILES[name].signature
    assert signature is not None
    for check in signature.checks:
        assert check.register_type in (RegisterType.HOLDING, RegisterType.INPUT)
        assert 0 <= check.address <= 0xFFFF
        assert check.low <= check.high


def test_scan_tries_every_id_on_a_serial_line_and_the_known_ones_on_tcp() -> None:
    assert scan_units(BusType.RTU) == tuple(range(1, 248))
    tcp = scan_units(BusType.TCP)
    assert set(range(1, 11)) <= set(tcp)
    for profile in PROFILES.values():
        assert profile.default_unit in tcp
        assert set(profile.units) <= set(tcp)
    assert list(tcp) == sorted(set(tcp))
