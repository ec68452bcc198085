"""One reading's sections from the devices' latest values (pure; issue 4, "Sampler").

Each device fills the protocol section of its role (``role = "grid"`` fills
``grid``). A device may decode fields of other sections too (a charge
controller knows the battery voltage): those fill only the fields that the
device owning that section did not give, so the owner always wins. ``extra``
is merged; on a name clash the first device in role order keeps it.

Every value is checked against the wire models (telemetry/reading.py) before
it is stored: a field the hub would refuse (a frequency of 0 Hz from an idle
inverter, a string in ``extra``) is left out and reported, so one bad field
never costs the whole reading (PROTOCOL.md: an invalid reading is dropped).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, ValidationError

from edge.config import Role
from telemetry import SECTION_MODELS
from telemetry.reading import ExtraName, ExtraValue

__all__ = ["Composed", "compose"]

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

    @property
    def empty(self) -> bool:
        return not any(name in self.sections for name in SECTION_MODELS)

    def body(self) -> str:
        """The JSON object stored in the outbox (without seq and ts)."""
        return json.dumps(self.sections, separators=(",", ":"), allow_nan=False)


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
    rejected: list[str] = []
    result: dict[str, dict[str, Any]] = {}
    for section, fields in sections.items():
        if section in SECTION_MODELS:
            kept, bad = _valid_fields(section, fields)
        elif section == _EXTRA:
            kept, bad = _valid_extra(fields)
        else:
            kept, bad = {}, list(fields)
        rejected.extend(f"{section}.{name}" for name in bad)
        if kept:
            result[section] = kept
    return Composed(result, tuple(rejected))
