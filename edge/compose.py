"""One reading's sections from the devices' latest values (pure).

Each device fills the protocol section of its role (``role = "grid"`` fills
``grid``). A device may decode fields of other sections too (a charge
controller knows the battery voltage): those fill only the fields that the
device owning that section did not give, so the owner always wins. ``extra``
is merged; on a name clash the first device in role order keeps it.

A site with several devices of a role (:func:`compose_site`, docs/protocol.md,
"Several devices per role") sends the site's totals in the sections
(edge/totals.py) and each device's own values beside them, under ``devices``.

Every value is checked against the wire models (telemetry/reading.py) before
it is stored: a field the hub would refuse (a frequency of 0 Hz from an idle
inverter, a string in ``extra``) is left out and reported, so one bad field
never costs the whole reading (docs/protocol.md: an invalid reading is dropped).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, ValidationError

from edge.config import Role
from edge.totals import capacity_wh, total_section
from telemetry import SECTION_MODELS
from telemetry.reading import ExtraName, ExtraValue

__all__ = ["Composed", "Member", "compose", "compose_site"]

ROLE_ORDER: Final = (Role.INVERTER, Role.GRID, Role.SOLAR, Role.BATTERY)
_EXTRA: Final = "extra"


class _Extra(BaseModel):
    model_config = ConfigDict(allow_inf_nan=False, strict=True)
    values: dict[ExtraName, ExtraValue]


@dataclass(frozen=True, slots=True)
class Composed:
    """The sections of one reading, and the fields left out as invalid (``grid.power_w``)."""

    sections: dict[str, dict[str, Any]]
    rejected: tuple[str, ...] = ()
    # Each device's own values, by name (compose_site only; empty: no `devices` key).
    devices: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not any(name in self.sections for name in SECTION_MODELS)

    def body(self) -> str:
        """The JSON object stored in the outbox (without seq and ts)."""
        body: dict[str, Any] = dict(self.sections)
        if self.devices:
            body["devices"] = self.devices
        return json.dumps(body, separators=(",", ":"), allow_nan=False)


def _valid_fields(section: str, fields: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The fields of ``section`` the wire model accepts, and the names it refused."""
    model = SECTION_MODELS[section]
    fields = {name: value for name, value in fields.items() if name in model.model_fields}
    rejected: list[str] = []
    while fields:
        try:
            model.model_validate(fields)
        except ValidationError as err:
            bad = {str(e["loc"][0]) for e in err.errors(include_url=False) if e["loc"]}
            if not bad:
                return {}, [*rejected, *fields]
            rejected.extend(sorted(bad))
            fields = {name: value for name, value in fields.items() if name not in bad}
            continue
        break
    return fields, rejected


def _valid_extra(extra: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    kept: dict[str, Any] = {}
    rejected: list[str] = []
    for name, value in extra.items():
        try:
            _Extra.model_validate({"values": {name: value}})
        except ValidationError:
            rejected.append(name)
            continue
        kept[name] = float(value)
    return kept, rejected


def compose(values: Mapping[Role, Mapping[str, Mapping[str, object]]]) -> Composed:
    """Merge the fresh values of each role's device into reading sections."""
    sections: dict[str, dict[str, Any]] = {}
    for role in ROLE_ORDER:  # owners first
        own = values.get(role, {}).get(role.value)
        if own:
            sections[role.value] = dict(own)
    for role in ROLE_ORDER:  # then what others know, where the owner is silent
        for section, fields in values.get(role, {}).items():
            if section == role.value:
                continue
            target = sections.setdefault(section, {})
            for name, value in fields.items():
                target.setdefault(name, value)
    result, rejected = _valid_sections(sections)
    return Composed(result, tuple(rejected))


def _valid_sections(
    sections: Mapping[str, Mapping[str, Any]], prefix: str = ""
) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """The sections' values the wire models accept, and the names of those refused."""
    rejected: list[str] = []
    result: dict[str, dict[str, Any]] = {}
    for section, fields in sections.items():
        if section in SECTION_MODELS:
            kept, bad = _valid_fields(section, dict(fields))
        elif section == _EXTRA:
            kept, bad = _valid_extra(dict(fields))
        else:
            kept, bad = {}, list(fields)
        rejected.extend(f"{prefix}{section}.{name}" for name in bad)
        if kept:
            result[section] = kept
    return result, rejected


@dataclass(frozen=True, slots=True)
class Member:
    """One device of a site with several devices per role, and its fresh values.

    ``total``: it counts toward its role's section (false: a sub-meter).
    ``sections``: its latest fresh values, None when it is failing or stale.
    """

    name: str
    role: Role
    total: bool = True
    sections: Mapping[str, Mapping[str, object]] | None = None


def compose_site(members: Sequence[Member]) -> Composed:
    """The site's totals in the sections and each device's own values under ``devices``.

    Each section is the total (edge/totals.py) over the counted devices of the
    role that owns it; fields it lacks come, as in :func:`compose`, from the
    counted devices of the other roles in role order (two hybrid inverters'
    ``solar`` add up). ``extra`` is merged from the counted devices, the first
    in role order then config order keeping a clashing name; every device's
    own ``extra`` stays in its entry. Sub-meters (``total`` false) only have
    their entry.
    """
    rejected: list[str] = []
    clean: dict[str, dict[str, dict[str, Any]]] = {}
    devices: dict[str, dict[str, Any]] = {}
    for member in members:
        if member.sections is None:
            continue
        values, bad = _valid_sections(member.sections, f"devices.{member.name}.")
        rejected.extend(bad)
        clean[member.name] = values
        if values:
            entry: dict[str, Any] = {"role": member.role.value}
            if not member.total:
                entry["total"] = False
            entry.update(values)
            devices[member.name] = entry
    counted = [m for m in members if m.total]
    sections: dict[str, dict[str, Any]] = {}
    for section in SECTION_MODELS:
        owner = Role(section)
        target: dict[str, Any] = {}
        for role in (owner, *(r for r in ROLE_ORDER if r is not owner)):
            group = [m for m in counted if m.role is role]
            fresh = [clean[m.name] for m in group if m.name in clean]
            parts = [values[section] for values in fresh if section in values]
            if not parts:
                continue
            weights = [capacity_wh(values) for values in fresh if section in values]
            total = total_section(
                section, parts, weights=weights, complete=len(fresh) == len(group)
            )
            for name, value in total.items():
                target.setdefault(name, value)
        if target:
            sections[section] = target
    extra: dict[str, Any] = {}
    for role in ROLE_ORDER:
        for member in counted:
            if member.role is role and member.name in clean:
                for name, value in clean[member.name].get(_EXTRA, {}).items():
                    extra.setdefault(name, value)
    if extra:
        sections[_EXTRA] = extra
    result, bad = _valid_sections(sections)  # a sum may leave a field's range
    rejected.extend(bad)
    return Composed(result, tuple(rejected), devices)
