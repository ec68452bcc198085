"""The hub's energy totals through storage outages and pruned rollups (hub/mqtt_bridge.py).

The bridge on a real SQLite file and a private Mosquitto: totals held while the
database is closed; growing on when ``--retain-rollups`` prunes the oldest quarter
hours, whose sums storage keeps; held when the stored sums shrink (a database
restored from an older backup) until they grow past them (docs/home-assistant.md,
"The site's energy at the hub").
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hub.mqtt_bridge import HubMqtt, HubMqttSettings
from hub.storage.base import StoredReading
from hub.storage.energy import ENERGY_BUCKET as QUARTER
from hub.storage.energy import bucket_of
from hub.storage.sqlite import SqliteStorage
from telemetry import Reading
from telemetry.mqtt_link import LinkSettings
from tests.support.mqtt import Mosquitto, Subscriber, subscribed
from tests.support.polling import until

PV = "ems/site_p/site/energy/pv_wh"


def energy(ts: datetime, seq: int, pv_wh: float) -> StoredReading:
    body = {
        "seq": seq,
        "ts": ts.isoformat(),
        "grid": {"power_w": 1.0},
        "energy": {"span_s": 1.0, "complete": True, "pv_wh": pv_wh},
    }
    return StoredReading("site_p", Reading.model_validate(body), datetime.now(UTC))


@asynccontextmanager
async def bridge(port: int, storage: SqliteStorage) -> AsyncIterator[HubMqtt]:
    settings = HubMqttSettings(
        link=LinkSettings(host="127.0.0.1", port=port, client_id="hub-p"), energy_every_s=0.2
    )
    mqtt = HubMqtt(settings, storage)
    stopping = asyncio.Event()
    task = asyncio.create_task(mqtt.run(stopping), name="test.hub.mqtt")
    try:
        yield mqtt
    finally:
        stopping.set()
        await asyncio.wait_for(task, 10)


def values(subscriber: Subscriber) -> list[float]:
    return [float(m.payload) for m in subscriber.by_topic.get(PV, [])]


async def test_totals_hold_through_an_outage_and_grow_on_through_a_prune(
    broker: Mosquitto, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="hub.mqtt_bridge")
    storage = SqliteStorage(tmp_path / "hub.db")
    await storage.open()
    old = datetime.now(UTC).replace(microsecond=0) - timedelta(days=3)
    new = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    await storage.write_readings([energy(old, 1, 100.0), energy(new, 2, 20.0)])
    old_quarter = bucket_of(old)
    try:
        async with (
            subscribed(broker.port, "ems/#") as subscriber,
            bridge(broker.port, storage) as mqtt,
        ):
            await until(lambda: mqtt.link.connected)
            assert await mqtt.publish_energy() == 0  # no site connected: nothing read
            mqtt.presence("site_p", True)
            await until(lambda: subscriber.last(PV) == "120.0")

            # The database goes away: the last totals stand, the bridge goes on.
            await storage.close()
            assert await mqtt.publish_energy() == 0
            assert "energy totals not read for MQTT" in caplog.text
            await storage.open()
            await storage.write_readings([energy(new + timedelta(seconds=1), 3, 5.0)])
            await until(lambda: subscriber.last(PV) == "125.0")
            assert "energy totals read for MQTT again" in caplog.text

            # Retention prunes the quarter hours older than a day: their 100 Wh stay in
            # the all-time sums (hub/storage/pruned_energy.py), the total goes on growing.
            await storage.prune(None, datetime.now(UTC) - timedelta(days=1), 1000)
            assert await storage.energy("site_p", (old_quarter, old_quarter + QUARTER)) == [None]
            assert await mqtt.publish_energy() == 1
            assert subscriber.last(PV) == "125.0"
            await storage.write_readings([energy(new + timedelta(seconds=2), 4, 110.0)])
            await until(lambda: subscriber.last(PV) == "235.0")
            assert "holding it" not in caplog.text

            # A database restored from an older backup has less: the total is held.
            with sqlite3.connect(tmp_path / "hub.db") as db:
                db.execute("DELETE FROM energy_pruned")
            assert await mqtt.publish_energy() == 1
            assert subscriber.last(PV) == "235.0"
            assert "below the total published: holding it" in caplog.text
            await storage.write_readings([energy(new + timedelta(seconds=3), 5, 120.0)])
            await until(lambda: subscriber.last(PV) == "255.0")  # 135 + 120: past 235
            assert values(subscriber) == sorted(values(subscriber))
            assert set(values(subscriber)) == {120.0, 125.0, 235.0, 255.0}

            # The site leaves: its totals are no longer read (its status says offline).
            mqtt.presence("site_p", False)
            assert await mqtt.publish_energy() == 0
    finally:
        await storage.close()
