"""The device catalogue as text: ``ems devices`` and docs/devices.md come from here.

Pure logic over :data:`drivers.profiles.PROFILES`: every line is computed from
the profiles' own maps (the values each fills, the requests a poll costs), so
the catalogue cannot drift from what the drivers read. ``ems devices --markdown``
writes docs/devices.md; a test checks the file is what this module prints.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from drivers.bus import BusType
from drivers.profile import Point, RegisterMap
from drivers.profiles import PROFILES, get_profile, sunspec
from drivers.profiles.device_profile import DeviceProfile

__all__ = ["catalogue_table", "devices_markdown", "profile_details", "representative_map"]

# A SunSpec device's map is discovered; the catalogue describes one with the
# models the kit decodes (common, three-phase inverter, storage, MPPT, meter, battery).
SUNSPEC_EXAMPLE_MODELS: Final = (1, 103, 124, 160, 203, 802)


def example_chain(profile: DeviceProfile) -> sunspec.Chain:
    """The chain a discovered profile is shown with: its vendor's documented one, or a typical."""
    return profile.sunspec_example or sunspec.layout(SUNSPEC_EXAMPLE_MODELS)


def representative_map(profile: DeviceProfile) -> RegisterMap:
    """The profile's map, or for a discovered one (SunSpec) the map of a typical chain."""
    if profile.register_map is not None:
        return profile.register_map
    build = profile.sunspec_map or sunspec.register_map
    return build(example_chain(profile))


def _fields(reg_map: RegisterMap) -> dict[str, list[str]]:
    """Protocol fields by section, in map order, each once (per-phase lists once)."""
    fields: dict[str, list[str]] = {}
    for point in reg_map.points:
        if point.target is None:
            continue
        names = fields.setdefault(point.target.section.value, [])
        if point.target.field not in names:
            names.append(point.target.field)
    return fields


def _requests(count: int) -> str:
    return f"{count} request" if count == 1 else f"{count} requests"


def _transports(profile: DeviceProfile) -> str:
    order = (BusType.RTU, BusType.TCP)
    return ", ".join(t.value for t in order if t in profile.transports)


def _sections(reg_map: RegisterMap) -> str:
    return " ".join(name for name in _fields(reg_map) if name != "extra")


def catalogue_table(profiles: Iterable[DeviceProfile] | None = None) -> str:
    """One line per profile: name, vendor and models, role, transports, sections, requests."""
    rows = [("profile", "vendor", "role", "bus", "fills", "requests", "models")]
    for profile in profiles if profiles is not None else PROFILES.values():
        reg_map = representative_map(profile)
        rows.append(
            (
                profile.name,
                profile.vendor,
                profile.role.value,
                _transports(profile),
                _sections(reg_map),
                str(len(reg_map.plan)),
                profile.models,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = []
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    return "\n".join(lines)


def _quirks(profile: DeviceProfile) -> list[str]:
    lines = [f"unit id {profile.default_unit} by default"]
    if profile.units:
        lines[0] += f"; a scan also tries {', '.join(str(u) for u in profile.units)}"
    if profile.settle_s:
        lines.append(
            f"{profile.settle_s:g} s of silence after connecting, before the first request"
        )
    if profile.command_gap_s:
        lines.append(f"at least {profile.command_gap_s:g} s between two requests to it")
    if profile.single_client:
        lines.append("serves one Modbus TCP client at a time: the agent must be the only one")
    lines.extend(profile.notes)
    return lines


def _code_note(point: Point) -> str:
    """How an identity code shows (drivers/identity.py, ``code_point``)."""
    named = sum(1 for _, name in point.states if name)
    return (
        f", a code: {named} named by the profile's table, any other shown as the number"
        if named
        else ""
    )


def identity_line(profile: DeviceProfile) -> str:
    """What the device reports of itself (drivers/identity.py), and where."""
    if profile.identity is not None:
        reg_map = profile.identity
        parts = [
            f"{(point.target.field if point.target else point.name).replace('_', ' ')} at "
            f"{point.register_type.value} {reg_map.wire_address(point.address)}"
            f" ({point.count} registers{_code_note(point)})"
            for point in reg_map.points
        ]
        return "identity: " + ", ".join(parts) + ", read once per connection"
    if profile.register_map is None:
        return (
            "identity: manufacturer, model, firmware version and serial number from the "
            "common model 1 (Mn, Md, Vr, SN), read once per connection"
        )
    return (
        "identity: none read (no identity register in this profile); "
        "the catalogue's vendor is shown"
    )


def profile_details(name: str) -> str:
    """``ems devices NAME``: everything the catalogue knows of one profile, every point."""
    profile = get_profile(name)
    reg_map = representative_map(profile)
    lines = [
        f"{profile.name}: {profile.vendor} {profile.models}",
        f"  role {profile.role.value}; buses {_transports(profile)}",
        f"  source: {profile.source}",
        *(f"  {quirk}" for quirk in _quirks(profile)),
        f"  {identity_line(profile)}",
        f"  a poll: {_requests(len(reg_map.plan))} (floor {len(reg_map.minimal_plan)}), "
        f"at most {reg_map.max_count} registers each",
    ]
    if profile.register_map is None:
        lines.append(
            "  the map is discovered on the device; shown for models "
            + ", ".join(str(m.model_id) for m in example_chain(profile).models)
        )
    # Addresses as the device's document gives them (byte addresses for a JK-PB).
    for request in reg_map.plan:
        address = reg_map.wire_address(request.address)
        lines.append(
            f"    {request.register_type.value} {address} (0x{address:04X}) x {request.count}"
        )
    lines.append("  values:")
    for point in reg_map.points:
        if point.target is None:
            continue
        lines.append(
            f"    {point.target!s:<34} {point.register_type.value} "
            f"0x{reg_map.wire_address(point.address):04X} "
            f"{point.data_type.value} ({point.name})"
        )
    return "\n".join(lines)


def _markdown_profile(profile: DeviceProfile) -> list[str]:
    reg_map = representative_map(profile)
    out = [
        f"### `{profile.name}`: {profile.vendor} {profile.models}",
        "",
        f"- Role: `{profile.role.value}`; buses: {_transports(profile)}.",
        f"- Source: {profile.source}.",
        f"- A poll: {_requests(len(reg_map.plan))} (the device's limits allow "
        f"{len(reg_map.minimal_plan)} at least), at most {reg_map.max_count} registers each.",
    ]
    out += [f"- {quirk[0].upper()}{quirk[1:].rstrip('.')}." for quirk in _quirks(profile)]
    identity = identity_line(profile)
    out.append(f"- {identity[0].upper()}{identity[1:]}.")
    if profile.signature is not None:
        out.append(f"- `ems edge scan` recognises it by: {profile.signature.description}.")
    out.append("")
    out.append("| section | fields |")
    out.append("| --- | --- |")
    for section, names in _fields(reg_map).items():
        out.append(f"| {section} | {', '.join(f'`{n}`' for n in names)} |")
    out.append("")
    return out


def devices_markdown() -> str:
    """docs/devices.md."""
    out = [
        "# Supported devices",
        "",
        "Generated by `ems devices --markdown > docs/devices.md` from the profiles in",
        "drivers/profiles (a test fails when this file and the code disagree). Each",
        "profile's register map cites the vendor document it was built from.",
        "`ems devices` prints the table, `ems devices NAME` every value of one profile,",
        "`ems edge scan BUS` finds what answers on a bus and prints its config lines,",
        "`ems sim --site list` lists the simulated sites that serve these devices.",
        'A device that is not here is read with `profile = "generic"` and a register',
        'map in TOML (docs/configuration.md, "Generic register maps").',
        "",
        "Device identity: once per connection the agent reads what a device says it is",
        "(manufacturer, model, serial number, firmware version) from the registers its",
        "document gives, each profile's line below says which; a device that refuses",
        "that read or answers garbage has none, and is polled as before. A model the",
        "device reports as a number (Sungrow's device type code, SMA's device type) is",
        "shown by the name its document's table gives the code (the profile cites the",
        "table); a code the table does not list is shown as the number. The identity",
        "goes into Home Assistant's device registry (docs/home-assistant.md) and the",
        'health frame to the hub (docs/protocol.md, "Device health").',
        "",
        "| profile | vendor | models | role | buses | requests per poll |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for profile in PROFILES.values():
        reg_map = representative_map(profile)
        out.append(
            f"| `{profile.name}` | {profile.vendor} | {profile.models} | {profile.role.value} "
            f"| {_transports(profile)} | {len(reg_map.plan)} |"
        )
    out += ["", "## Profiles", ""]
    for profile in PROFILES.values():
        out += _markdown_profile(profile)
    return "\n".join(out).rstrip() + "\n"
