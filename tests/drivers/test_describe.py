"""The catalogue as text (``ems devices``, docs/devices.md), computed from the profiles."""

from __future__ import annotations

import pytest

from drivers.errors import ProfileError
from drivers.profiles import PROFILES
from drivers.profiles.describe import (
    catalogue_table,
    devices_markdown,
    profile_details,
    representative_map,
)


def test_the_table_has_one_row_per_profile_with_its_request_count() -> None:
    lines = catalogue_table().splitlines()
    assert lines[0].split()[:3] == ["profile", "vendor", "role"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert list(rows) == list(PROFILES)
    # The SDM630's whole poll is one request of at most 80 registers (its map).
    assert rows["eastron_sdm630"].split()[1:5] == ["Eastron", "grid", "rtu,", "tcp"]
    assert " grid " in rows["eastron_sdm630"]
    assert rows["epever_tracer"].split()[3] == "rtu"


@pytest.mark.parametrize("name", list(PROFILES))
def test_details_list_every_value_a_profile_fills(name: str) -> None:
    text = profile_details(name)
    reg_map = representative_map(PROFILES[name])
    for point in reg_map.points:
        if point.target is not None:
            assert f"{point.target!s}" in text, point.name
    assert f"a poll: {len(reg_map.plan)} request" in text
    assert PROFILES[name].source in text


def test_details_of_an_unknown_profile_name_the_known_ones() -> None:
    with pytest.raises(ProfileError, match=r"unknown profile 'sdm999' .*eastron_sdm630"):
        profile_details("sdm999")


def test_the_markdown_has_a_section_per_profile() -> None:
    text = devices_markdown()
    assert text.startswith("# Supported devices\n")
    for name, profile in PROFILES.items():
        assert f"### `{name}`: {profile.vendor}" in text
        assert f"| `{name}` | {profile.vendor} |" in text


def test_docs_devices_md_is_what_the_catalogue_prints() -> None:
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "docs" / "devices.md"
    assert path.read_text() == devices_markdown(), (
        "docs/devices.md is stale: run .venv/bin/ems devices --markdown > docs/devices.md"
    )
