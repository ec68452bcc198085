"""Test helper: does a decoded device equal what was encoded, within each register's resolution?"""

from __future__ import annotations

from collections.abc import Mapping

from drivers.profile import RegisterMap, Target
from drivers.registers import DataType


def _lookup(sections: Mapping[str, Mapping[str, object]], tgt: Target) -> object:
    value = sections.get(tgt.section.value, {}).get(tgt.field)
    if tgt.index is not None and isinstance(value, list | tuple):
        return value[tgt.index] if tgt.index < len(value) else None
    return value


def resolution(reg_map: RegisterMap, name: str) -> float:
    """Half a step of the point's encoding (0 for exact types)."""
    point = reg_map.by_name[name]
    if point.data_type is DataType.FLOAT32 or point.states or point.mask is not None:
        return 0.0
    exponent = 0
    if point.scale_factor is not None:
        constant = reg_map.by_name[point.scale_factor].constant
        assert isinstance(constant, int)
        exponent = constant
    return abs(point.scale) * 10.0**exponent / 2


def mismatches(
    reg_map: RegisterMap,
    encoded: Mapping[str, Mapping[str, object]],
    decoded: Mapping[str, Mapping[str, object]],
) -> list[str]:
    """Every targeted point whose decoded value is not the encoded one within resolution."""
    problems = []
    for point in reg_map.needed:
        if point.target is None:
            continue
        want, got = _lookup(encoded, point.target), _lookup(decoded, point.target)
        if want is None:
            continue
        if isinstance(want, str) or point.states:
            if got != want:
                problems.append(f"{point.target}: {got!r} != {want!r}")
            continue
        assert isinstance(want, int | float), point.target
        if point.mask is not None:
            want = float(int(want) & point.mask)
        if not isinstance(got, float):
            problems.append(f"{point.target}: missing (want {want!r})")
            continue
        if point.data_type is DataType.FLOAT32:
            tolerance = abs(float(want)) * 1.2e-7 + 1e-9  # float32: 24-bit mantissa
        else:
            tolerance = resolution(reg_map, point.name) + 1e-9
        if abs(got - float(want)) > tolerance:
            problems.append(f"{point.target}: {got!r} != {want!r} (+-{tolerance:g})")
    return problems
