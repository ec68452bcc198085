"""The totals the hub publishes per site never go down (hub/site_energy.py), on plain values."""

from __future__ import annotations

from hub.site_energy import SiteTotals
from hub.storage.energy import EnergySums


def sums(*quantities: float | None) -> EnergySums:
    padded = (*quantities, *(None,) * (6 - len(quantities)))
    return EnergySums(1, 0, 1.0, 1.0, padded)


def test_totals_follow_the_stored_sums_rounded_to_the_mwh() -> None:
    totals = SiteTotals()
    first = totals.update("a", sums(1000.12345, None, 5.0))
    assert dict(first.wh) == {"pv_wh": 1000.123, "export_wh": 5.0}
    assert first.held == ()
    grown = totals.update("a", sums(1500.0, 2.0, 5.0))
    assert dict(grown.wh) == {"pv_wh": 1500.0, "import_wh": 2.0, "export_wh": 5.0}
    assert totals.update("b", None).wh == {}


def test_a_smaller_sum_is_held_until_the_stored_one_grows_past_it() -> None:
    totals = SiteTotals()
    totals.update("a", sums(1000.0, 300.0))
    # The oldest quarter hours pruned: 200 Wh of PV and every import bucket gone.
    pruned = totals.update("a", sums(800.0, None))
    assert dict(pruned.wh) == {"pv_wh": 1000.0, "import_wh": 300.0}
    assert pruned.held == ("pv_wh", "import_wh")
    assert dict(totals.update("a", sums(999.9995)).wh)["pv_wh"] == 1000.0
    after = totals.update("a", sums(1000.5, 0.25))
    assert dict(after.wh) == {"pv_wh": 1000.5, "import_wh": 300.0}
    assert after.held == ("import_wh",)
    # Another site is its own.
    assert dict(totals.update("b", sums(1.0)).wh) == {"pv_wh": 1.0}
