"""edge/energy.py and the energy state in the outbox, on real SQLite files."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from edge.agent import Agent
from edge.clock import ClockSample, SyncState, SystemClock
from edge.config import parse_config
from edge.demo import simulated_site_config
from edge.energy import EnergyTracker, counter_specs
from edge.outbox import NewReading, Outbox, read_status, ts_us_of
from simulation.runner import SimulatedSite
from telemetry import format_ts
from telemetry.energy_increments import CounterSpec, EnergySettings, Quantity
from tests.edge.agent_site import OPTIONS, site_config, stored
from tests.edge.hubproc import running_hub
from tests.edge.test_cli import AgentProcess, wait_stored, write_config
from tests.edge.wshub import WsHub, running
from tests.support.polling import until

T0_US = ts_us_of(datetime(2026, 11, 26, 5, 30, tzinfo=UTC))
GRID = {"grid": {"power_w": 3600.0}}  # 1 Wh per second


async def take(
    outbox: Outbox, tracker: EnergyTracker, mono: float, ts_us: int | None
) -> dict[str, object] | None:
    """One reading through the tracker into the outbox, as the sampler and writer do it."""
    energy, state = tracker.measure(mono, ts_us, GRID)
    body = dict(GRID)
    if energy is not None:
        body["energy"] = energy
    await outbox.append(
        [NewReading(mono=mono, body=json.dumps(body), ts_us=ts_us, energy_state=state)],
        boot=tracker.boot,
    )
    return energy


async def test_a_restart_in_the_same_boot_goes_on_from_the_last_stored_reading(
    tmp_path: Path,
) -> None:
    path = tmp_path / "buffer.db"
    sent: list[dict[str, object] | None] = []
    async with Outbox.open(path, max_bytes=2**24) as outbox:
        assert await outbox.energy_record() is None
        tracker = EnergyTracker(EnergySettings(), boot="b1")
        for second in range(5):
            sent.append(await take(outbox, tracker, 100.0 + second, T0_US + second * 10**6))
    # The agent stops; it starts again 3 s later, in the same boot.
    async with Outbox.open(path, max_bytes=2**24) as outbox:
        record = await outbox.energy_record()
        assert record is not None
        assert (record.seq, record.mono, record.boot) == (4, 104.0, "b1")
        tracker = EnergyTracker(EnergySettings(), boot="b1", record=record)
        sent.append(await take(outbox, tracker, 107.0, T0_US + 7 * 10**6))
        sent.append(await take(outbox, tracker, 108.0, T0_US + 8 * 10**6))
    assert sent[0] is None  # the first reading ever: nothing before it
    assert [e["import_wh"] for e in sent[1:] if e is not None] == [1.0, 1.0, 1.0, 1.0, 3.0, 1.0]
    assert [e["span_s"] for e in sent[1:] if e is not None] == [1.0, 1.0, 1.0, 1.0, 3.0, 1.0]


async def test_after_a_reboot_the_wall_clock_carries_the_state_onto_the_new_axis(
    tmp_path: Path,
) -> None:
    async with Outbox.open(tmp_path / "buffer.db", max_bytes=2**24) as outbox:
        tracker = EnergyTracker(EnergySettings(), boot="b1")
        await take(outbox, tracker, 5000.0, T0_US)
        # Rebooted: the monotonic clock starts again; 8 s of wall time passed.
        record = await outbox.energy_record()
        rebooted = EnergyTracker(EnergySettings(), boot="b2", record=record)
        energy = await take(outbox, rebooted, 2.0, T0_US + 8 * 10**6)
    assert energy == {
        "span_s": 8.0,
        "complete": True,
        "import_wh": 8.0,
        "export_wh": 0.0,
        "house_wh": 8.0,
    }


async def test_a_reboot_before_the_clock_is_trusted_fills_the_span_in_when_stamped(
    tmp_path: Path,
) -> None:
    counters = {"grid": {"import_energy_wh": 1000.0, "export_energy_wh": 50.0}}
    async with Outbox.open(tmp_path / "buffer.db", max_bytes=2**24) as outbox:
        tracker = EnergyTracker(EnergySettings(), boot="b1")
        _, state = tracker.measure(5000.0, T0_US, counters)
        await outbox.append([NewReading(5000.0, json.dumps(counters), T0_US, state)], boot="b1")
        # Rebooted, the clock not trusted yet: the reading is held, the span unknown.
        rebooted = EnergyTracker(EnergySettings(), boot="b2", record=await outbox.energy_record())
        later = {"grid": {"import_energy_wh": 1600.0, "export_energy_wh": 50.0}}
        energy, state = rebooted.measure(3.0, None, later)
        assert energy == {
            "span_s": None,
            "complete": True,
            "import_wh": 600.0,
            "export_wh": 0.0,
            "house_wh": 600.0,
            "since_us": T0_US,
        }
        body = json.dumps({**later, "energy": energy})
        await outbox.append([NewReading(3.0, body, None, state)], boot="b2")
        held = await outbox.energy_record()
        assert held is not None
        assert held.ts_us is None
        # The clock is trusted: this boot's monotonic 0 is T0 + 117 s, so the reading is at 120 s.
        await outbox.restamp(boot="b2", offset=T0_US / 1e6 + 117.0)
        page = await outbox.page(after_seq=-1, limit=10)
        stamped = await outbox.energy_record()
    wire = json.loads(page[-1].wire())
    assert wire["energy"] == {
        "span_s": 120.0,
        "complete": True,
        "import_wh": 600.0,
        "export_wh": 0.0,
        "house_wh": 600.0,
    }
    assert stamped is not None
    assert stamped.ts_us == T0_US + 120 * 10**6


async def test_a_state_whose_reading_was_never_stamped_starts_afresh_after_a_reboot(
    tmp_path: Path,
) -> None:
    async with Outbox.open(tmp_path / "buffer.db", max_bytes=2**24) as outbox:
        tracker = EnergyTracker(EnergySettings(), boot="b1")
        await take(outbox, tracker, 10.0, None)
        await take(outbox, tracker, 11.0, None)
        await outbox.drop_unstampable(boot="b2")  # what the agent does at start
        rebooted = EnergyTracker(EnergySettings(), boot="b2", record=await outbox.energy_record())
        assert await take(outbox, rebooted, 1.0, T0_US) is None
        assert await take(outbox, rebooted, 2.0, T0_US + 10**6) == {
            "span_s": 1.0,
            "complete": True,
            "import_wh": 1.0,
            "export_wh": 0.0,
            "house_wh": 1.0,
        }


async def test_the_state_is_written_with_the_last_reading_of_a_batch(tmp_path: Path) -> None:
    async with Outbox.open(tmp_path / "buffer.db", max_bytes=2**24) as outbox:
        batch = [
            NewReading(1.0, json.dumps(GRID), T0_US, '{"n":1}'),
            NewReading(2.0, json.dumps(GRID), T0_US + 10**6, '{"n":2}'),
            NewReading(3.0, json.dumps(GRID), T0_US + 2 * 10**6, None),  # no energy state
        ]
        await outbox.append(batch, boot="b1")
        record = await outbox.energy_record()
    assert record is not None
    assert (record.seq, record.state, record.ts_us) == (1, '{"n":2}', T0_US + 10**6)


def test_counter_widths_come_from_the_register_maps(tmp_path: Path) -> None:
    text = simulated_site_config(
        device_id="site",
        hub_url="ws://127.0.0.1:1",
        modbus_port=5020,
        buffer_path=tmp_path / "b.db",
    )
    specs = counter_specs(parse_config(text, base_dir=tmp_path))
    # EPEver's total generated energy: a u32 of 0.01 kWh (drivers/profiles/epever.py).
    assert specs[Quantity.PV] == CounterSpec(wrap_wh=2**32 * 10.0, step_wh=10.0)
    # The SDM630's are floats: no width, the default step.
    assert specs[Quantity.IMPORT] == CounterSpec()
    assert specs[Quantity.EXPORT] == CounterSpec()


@pytest.mark.parametrize("bad", ["", "{}", "[1]", '{"last_t": "x"}'])
async def test_a_stored_state_that_is_not_one_starts_afresh(tmp_path: Path, bad: str) -> None:
    async with Outbox.open(tmp_path / "buffer.db", max_bytes=2**24) as outbox:
        await outbox.append([NewReading(1.0, json.dumps(GRID), T0_US, bad)], boot="b1")
        tracker = EnergyTracker(EnergySettings(), boot="b1", record=await outbox.energy_record())
        assert tracker.measure(2.0, T0_US + 10**6, GRID)[0] is None
        energy, _ = tracker.measure(3.0, T0_US + 2 * 10**6, GRID)
    assert energy is not None
    assert energy["import_wh"] == 1.0


async def test_the_agent_restarted_keeps_the_energy_continuous(tmp_path: Path) -> None:
    """The real agent on the moving simulated site (real time), stopped and started again:
    every reading but the first carries energy; counters' energy sums to the counters'
    rise, the battery's to its power integrated over the readings, restart included."""
    hub = WsHub(token="secret")
    async with running(hub), SimulatedSite(tcp=("127.0.0.1", 0), speed=1.0) as site:
        text = site_config(tmp_path, hub.url, site.tcp_port, "energy_restart")
        config = dataclasses.replace(
            parse_config(text, base_dir=tmp_path), timezone="Europe/Berlin"
        )
        runs: list[int] = []
        for _ in range(2):  # run, stop, 2 s later run again
            agent = Agent(config, token="secret", options=OPTIONS)
            task = asyncio.create_task(agent.run(), name="test.agent")
            await until(lambda a=agent: a.sampler is not None and a.sampler.readings >= 15)
            agent.stop()
            async with asyncio.timeout(15):
                await task
            assert agent.sampler is not None
            runs.append(agent.sampler.readings)
            await asyncio.sleep(2.0)
        produced = sum(runs)
        await until(lambda: len(hub.wire) == produced)
    assert {frame.get("timezone") for frame in hub.health} == {"Europe/Berlin"}
    rows = [hub.wire[seq] for seq in range(produced)]
    assert "energy" not in rows[0]
    assert all("energy" in row for row in rows[1:])
    ts = [datetime.fromisoformat(row["ts"]).timestamp() for row in rows]
    # The restart's gap (over 2 s, less than the bound of 10 s) is bridged.
    assert ts[runs[0]] - ts[runs[0] - 1] > 2.0
    for index in range(1, produced):
        energy = rows[index]["energy"]
        assert energy["complete"] is True
        # span_s is measured on the monotonic clock, ts on the wall clock.
        assert energy["span_s"] == pytest.approx(ts[index] - ts[index - 1], abs=0.01)

    def rise(section: str, name: str) -> float:
        return float(rows[-1][section][name]) - float(rows[0][section][name])

    def summed(key: str) -> float:
        return sum(row["energy"][key] for row in rows[1:])

    assert summed("pv_wh") == pytest.approx(rise("solar", "energy_total_wh"), abs=0.001)
    assert summed("import_wh") == pytest.approx(rise("grid", "import_energy_wh"), abs=0.001)
    assert summed("export_wh") == pytest.approx(rise("grid", "export_energy_wh"), abs=0.001)
    battery = 0.0
    for index in range(1, produced):
        p0, p1 = rows[index - 1]["battery"]["power_w"], rows[index]["battery"]["power_w"]
        battery += (p0 + p1) / 2 * (ts[index] - ts[index - 1]) / 3600
    measured = summed("discharge_wh") - summed("charge_wh")
    assert measured == pytest.approx(battery, rel=0.01, abs=0.01)
    assert abs(battery) > 0.1  # the battery did work: the comparison means something
    assert all(row["energy"]["house_wh"] >= 0 for row in rows[1:] if "house_wh" in row["energy"])


async def test_through_the_real_hub_the_sites_energy_adds_up_in_its_time_zone(
    tmp_path: Path,
) -> None:
    """The real agent (restarted once) on the moving simulated site, the real hub process:
    the hub takes the site's zone from the health frame and its energy route sums what
    the agent measured, which is the counters' rise."""
    with running_hub(tmp_path / "hub") as hub:
        token = await asyncio.to_thread(hub.token_add, "energy_e2e")
        began = datetime.now(UTC)
        async with SimulatedSite(tcp=("127.0.0.1", 0), speed=1.0) as site:
            text = site_config(tmp_path, hub.url, site.tcp_port, "energy_e2e")
            config = dataclasses.replace(
                parse_config(text, base_dir=tmp_path), timezone="Asia/Kolkata"
            )
            produced = 0
            for _ in range(2):
                agent = Agent(config, token=token, options=OPTIONS)
                task = asyncio.create_task(agent.run(), name="test.agent")
                await until(lambda a=agent: a.sampler is not None and a.sampler.readings >= 15)
                agent.stop()
                async with asyncio.timeout(15):
                    await task
                assert agent.sampler is not None
                produced += agent.sampler.readings
                await asyncio.sleep(1.0)
        rows = await stored(hub, "energy_e2e", began)
        assert len(rows) == produced
        answer = await asyncio.to_thread(
            httpx.get,
            f"{hub.http}/api/devices/energy_e2e/energy",
            # Both bounds: with start alone the range ends with start's local day
            # (docs/protocol.md, "Energy over HTTP"), and in the hour after Kolkata's
            # midnight (18:30 UTC) began - 1 h lies in the day before the readings'.
            params={
                "start": format_ts(began - timedelta(hours=1)),
                "end": format_ts(datetime.now(UTC) + timedelta(hours=1)),
                "period": "day",
            },
            timeout=30.0,
        )
    answer.raise_for_status()
    energy = answer.json()
    assert energy["timezone"] == "Asia/Kolkata"  # from the agent's health frame
    total = energy["total"]

    def rise(section: str, name: str) -> float:
        return float(rows[-1][section][name]) - float(rows[0][section][name])

    def summed(key: str) -> float:
        return sum(row["energy"][key] for row in rows[1:])

    assert "energy" not in rows[0]
    for key, section, name in (
        ("pv_wh", "solar", "energy_total_wh"),
        ("import_wh", "grid", "import_energy_wh"),
        ("export_wh", "grid", "export_energy_wh"),
    ):
        assert summed(key) == pytest.approx(rise(section, name), abs=0.001)
        assert total[key] == pytest.approx(summed(key), abs=0.1)  # the hub rounds to 0.1 Wh
    for key in ("charge_wh", "discharge_wh", "house_wh"):
        assert total[key] == pytest.approx(summed(key), abs=0.1)
    assert summed("charge_wh") + summed("discharge_wh") > 0.1  # the battery worked


async def test_sigkill_and_restart_neither_lose_nor_double_counted_energy(
    tmp_path: Path,
) -> None:
    """`ems edge run` killed (SIGKILL) three times mid-stream on a moving site, the real
    hub: the energy stored adds up to the counters' rise, exactly. Readings taken but
    not yet written when killed are gone, and the state stored with the last written
    one makes the next reading carry their energy."""
    with running_hub(tmp_path / "hub") as hub:
        token = await asyncio.to_thread(hub.token_add, "energy_kill")
        began = datetime.now(UTC)
        # Ten simulated seconds per second: the counters move between readings.
        async with SimulatedSite(tcp=("127.0.0.1", 0), speed=10.0) as site:
            path = write_config(tmp_path, hub.url, site.tcp_port, "energy_kill")
            for round_ in range(4):
                agent = AgentProcess(path, token)
                try:
                    await wait_stored(hub, "energy_kill", began, 10 * (round_ + 1))
                    sig = signal.SIGKILL if round_ < 3 else signal.SIGTERM
                    assert await asyncio.to_thread(agent.stop, sig) in (-sig, 0)
                finally:
                    if agent.process.poll() is None:
                        agent.process.kill()
        rows = await stored(hub, "energy_kill", began)
    seqs = [row["seq"] for row in rows]
    assert seqs == list(range(len(seqs)))
    assert "energy" not in rows[0]
    assert all("energy" in row for row in rows[1:])

    def rise(section: str, name: str) -> float:
        return float(rows[-1][section][name]) - float(rows[0][section][name])

    def summed(key: str) -> float:
        return sum(row["energy"][key] for row in rows[1:])

    assert rise("solar", "energy_total_wh") > 0  # the counters moved
    assert summed("pv_wh") == pytest.approx(rise("solar", "energy_total_wh"), abs=0.002)
    assert summed("import_wh") == pytest.approx(rise("grid", "import_energy_wh"), abs=0.002)
    assert summed("export_wh") == pytest.approx(rise("grid", "export_energy_wh"), abs=0.002)


def test_a_counter_event_is_logged_naming_the_counter(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="edge.energy")
    tracker = EnergyTracker(EnergySettings(), boot="b1")
    meter = {"import_energy_wh": 5000.0, "export_energy_wh": 10.0}
    tracker.measure(1.0, T0_US, {"grid": meter})
    tracker.measure(2.0, T0_US + 10**6, {"grid": {**meter, "import_energy_wh": 4.0}})
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == [
        "energy: the counter grid.import_energy_wh went backwards "
        "(reset or replaced device): new baseline (1 such so far)"
    ]
    assert "could not be measured" in caplog.text  # no power to bridge the reset


async def test_a_span_over_a_year_stays_unknown_when_stamped(tmp_path: Path) -> None:
    # What the hub takes is a span up to a year (docs/protocol.md, "Energy").
    since = T0_US - 400 * 86_400 * 10**6
    body = {**GRID, "energy": {"span_s": None, "complete": True, "import_wh": 1.0}}
    body["energy"]["since_us"] = since  # type: ignore[index]
    async with Outbox.open(tmp_path / "buffer.db", max_bytes=2**24) as outbox:
        await outbox.append([NewReading(3.0, json.dumps(body), None, None)], boot="b2")
        await outbox.restamp(boot="b2", offset=T0_US / 1e6 - 3.0)
        (stored,) = await outbox.page(after_seq=-1, limit=10)
    assert json.loads(stored.wire())["energy"] == {
        "span_s": None,
        "complete": True,
        "import_wh": 1.0,
    }


@dataclasses.dataclass
class RebootedClock:
    """This machine's clocks as a Pi sees them after a reboot: its monotonic clock
    started again (``mono_shift``), its wall clock wrong until NTP syncs."""

    mono_shift: float = 0.0
    wall_shift: float = 0.0
    sync: SyncState = SyncState.SYNCED
    real: SystemClock = dataclasses.field(default_factory=SystemClock)

    def sample(self) -> ClockSample:
        sample = self.real.sample()
        return ClockSample(sample.wall + self.wall_shift, sample.mono + self.mono_shift, self.sync)


async def test_a_reboot_before_ntp_bridges_the_counters_and_learns_its_span(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real agent, then the same agent "rebooted" (another boot id, its monotonic
    clock started again, a 1970 wall clock until NTP syncs), on the moving site, the real
    hub: the first reading after the reboot is held, then stamped with its span; the
    counters' energy across the reboot is all there."""
    with running_hub(tmp_path / "hub") as hub:
        token = await asyncio.to_thread(hub.token_add, "energy_reboot")
        began = datetime.now(UTC)
        async with SimulatedSite(tcp=("127.0.0.1", 0), speed=10.0) as site:
            text = site_config(tmp_path, hub.url, site.tcp_port, "energy_reboot")
            config = parse_config(text, base_dir=tmp_path)
            config = dataclasses.replace(
                config,
                clock=dataclasses.replace(config.clock, require_sync=True, hub_fallback=False),
            )
            monkeypatch.setattr("edge.agent.boot_id", lambda: "boot-before")
            first = Agent(config, token=token, options=OPTIONS, clock=RebootedClock())
            task = asyncio.create_task(first.run(), name="test.agent")
            await until(lambda: first.sampler is not None and first.sampler.readings >= 10)
            first.stop()
            async with asyncio.timeout(15):
                await task
            assert first.sampler is not None
            before = first.sampler.readings
            await asyncio.sleep(2.0)
            monkeypatch.setattr("edge.agent.boot_id", lambda: "boot-after")
            now = SystemClock().sample()
            clock = RebootedClock(
                mono_shift=30.0 - now.mono,  # booted 30 s ago
                wall_shift=1000.0 - now.wall,  # no battery clock: 1970
                sync=SyncState.UNSYNCED,
            )
            second = Agent(config, token=token, options=OPTIONS, clock=clock)
            task = asyncio.create_task(second.run(), name="test.agent")
            # The first readings after the reboot are held: their time is not known yet.
            await until(lambda: read_status(config.buffer.path).held >= 5)
            clock.wall_shift, clock.sync = 0.0, SyncState.SYNCED  # NTP synced
            await until(lambda: second.sampler is not None and second.sampler.readings >= 40)
            second.stop()
            async with asyncio.timeout(15):
                await task
            assert second.sampler is not None
            produced = before + second.sampler.readings
        rows = await stored(hub, "energy_reboot", began)
    assert [row["seq"] for row in rows] == list(range(produced))
    ts = [datetime.fromisoformat(row["ts"]).timestamp() for row in rows]
    across = rows[before]["energy"]
    # Held at first, its span filled in when stamped: from the last reading before.
    assert across["span_s"] == pytest.approx(ts[before] - ts[before - 1], abs=0.01)
    assert across["span_s"] > 2.0
    assert "since_us" not in across
    # Only counters bridge a reboot: the battery's power was not integrated across it.
    assert across["complete"] is False
    assert across["charge_wh"] == 0.0
    assert across["discharge_wh"] == 0.0

    def rise(section: str, name: str) -> float:
        return float(rows[-1][section][name]) - float(rows[0][section][name])

    def summed(key: str) -> float:
        return sum(row["energy"][key] for row in rows[1:])

    assert rise("solar", "energy_total_wh") > 0
    assert summed("pv_wh") == pytest.approx(rise("solar", "energy_total_wh"), abs=0.002)
    assert summed("import_wh") == pytest.approx(rise("grid", "import_energy_wh"), abs=0.002)
    assert summed("export_wh") == pytest.approx(rise("grid", "export_energy_wh"), abs=0.002)


async def test_a_time_scale_counts_plant_time_and_keeps_wall_spans(tmp_path: Path) -> None:
    # A demo at --speed 60: a second of wall time is a minute of the plant's, whose
    # counters move that fast; power is integrated over the same minute.
    battery = {"battery": {"power_w": -1200.0}}  # charging: 20 Wh per plant minute
    path = tmp_path / "buffer.db"
    tracker = EnergyTracker(EnergySettings(max_gap_s=600.0), boot="b1", time_scale=60.0)
    sent = [tracker.measure(100.0 + second, None, battery) for second in range(3)]
    assert sent[0][0] is None
    assert [(e["charge_wh"], e["span_s"]) for e, _ in sent[1:] if e is not None] == [
        (20.0, 1.0),
        (20.0, 1.0),
    ]
    # The stored state is in monotonic seconds: a restart goes on at any scale.
    state = json.loads(sent[-1][1])
    assert state["last_t"] == 102.0
    async with Outbox.open(path, max_bytes=2**24) as outbox:
        await outbox.append(
            [NewReading(mono=102.0, body="{}", ts_us=T0_US, energy_state=sent[-1][1])],
            boot="b1",
        )
        record = await outbox.energy_record()
    again = EnergyTracker(EnergySettings(max_gap_s=60.0), boot="b1", record=record, time_scale=6.0)
    energy, _ = again.measure(104.0, None, battery)
    assert energy == {"span_s": 2.0, "complete": True, "charge_wh": 4.0, "discharge_wh": 0.0}
    with pytest.raises(ValueError, match="time_scale must be a number > 0"):
        EnergyTracker(EnergySettings(), boot="b1", time_scale=0.0)
