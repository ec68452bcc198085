"""The simulated site the agent tests poll, and their config (shared by the edge tests)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from edge.agent import AgentOptions
from edge.config import EdgeConfig, parse_config
from edge.demo import simulated_site_config
from edge.uplink import UplinkSettings
from telemetry.backoff import BackoffPolicy
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
    """The demo's config for the simulated site, faster-paced for tests."""
    return simulated_site_config(
        device_id=device_id,
        hub_url=hub_url,
        modbus_port=modbus_port,
        buffer_path=tmp_path / "buffer.db",
        max_mb=16,
        interval_s=0.2,
        timeout_s=0.3,
    )


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
