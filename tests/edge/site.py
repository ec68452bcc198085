"""The simulated site the agent tests poll, and their config (shared by the edge tests)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from edge.agent import AgentOptions
from edge.backoff import BackoffPolicy
from edge.config import EdgeConfig, parse_config
from edge.uplink import UplinkSettings
from tests.edge.hubproc import HubProcess

START = datetime(2026, 6, 21, 12, 0, tzinfo=UTC)
OPTIONS = AgentOptions(
    uplink=UplinkSettings(
        backoff=BackoffPolicy(0.1, 0.5),
        auth_backoff=BackoffPolicy(0.5, 1.0),  # the hub reads new tokens each second
        delete_interval_s=0.05,
    ),
    flush_interval_s=0.1,
    device_backoff=BackoffPolicy(0.5, 1.0),
)


def site_config(tmp_path: Path, hub_url: str, modbus_port: int, device_id: str) -> str:
    return f"""
device_id = "{device_id}"

[hub]
url = "{hub_url}"

[buffer]
path = "{tmp_path / "buffer.db"}"
max_mb = 16

[sampling]
interval_s = 0.2

[clock]
require_sync = false   # this machine's kernel never reports NTP sync

[[bus]]
name = "sim"
type = "tcp"
host = "127.0.0.1"
port = {modbus_port}
timeout_s = 0.3

[[device]]
name = "inverter"
role = "inverter"
profile = "sunspec"
bus = "sim"
unit = 1

[[device]]
name = "meter"
role = "grid"
profile = "eastron_sdm630"
bus = "sim"
unit = 2

[[device]]
name = "charger"
role = "solar"
profile = "epever_tracer"
bus = "sim"
unit = 3

[[device]]
name = "bms"
role = "battery"
profile = "seplos_v3"
bus = "sim"
unit = 4
"""


def make_config(
    tmp_path: Path, hub: HubProcess, port: int, device_id: str, *, url: str | None = None
) -> EdgeConfig:
    text = site_config(tmp_path, url or hub.url, port, device_id)
    return parse_config(text, base_dir=tmp_path)


async def stored(hub: HubProcess, device_id: str, since: datetime) -> list[dict[str, object]]:
    return await asyncio.to_thread(
        hub.readings,
        device_id,
        start=since - timedelta(minutes=1),
        end=datetime.now(UTC) + timedelta(minutes=1),
    )
