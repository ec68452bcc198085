"""The edge's log holds no device token, at debug level too (docs/security.md, "Secrets in logs").

The uplink against the real hub (``ems hub serve``, embedded SQLite) over
loopback, with every logger at debug: the ``websockets`` client then logs each
request header it sends, ``Authorization: Bearer <token>`` included, unless the
record is redacted (telemetry/redaction.py, installed by the ``ems`` command
and here).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from edge.outbox import Outbox
from edge.uplink import UplinkSettings
from telemetry.backoff import BackoffPolicy
from telemetry.redaction import install_redaction
from tests.edge.hubproc import HubProcess, running_hub
from tests.support.edge import grid_reading, uplink_running
from tests.support.polling import until

FAST = UplinkSettings(
    backoff=BackoffPolicy(0.1, 0.5),
    kicked_backoff=BackoffPolicy(0.5, 1.0),
    auth_backoff=BackoffPolicy(0.5, 1.0),
    delete_interval_s=0.05,
    idle_wake_s=0.1,
)


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    with running_hub(tmp_path_factory.mktemp("hub")) as process:
        yield process


async def test_no_device_token_in_the_edge_log(
    hub: HubProcess, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    install_redaction()
    caplog.set_level(logging.DEBUG)
    token = await asyncio.to_thread(hub.token_add, "edge_secret")
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    async with Outbox.open(tmp_path / "o.db", max_bytes=1 << 30) as outbox:
        await outbox.append([grid_reading(n, t0) for n in range(20)], boot="b")
        url = f"{hub.url}/ws/device/edge_secret"
        async with uplink_running(outbox, url, token, FAST):

            async def depth() -> int:
                return (await outbox.status()).depth

            async with asyncio.timeout(30):
                while await depth():  # noqa: ASYNC110 - polls the database
                    await asyncio.sleep(0.05)
        wrong = token[::-1]
        async with uplink_running(outbox, url, wrong, FAST):
            await until(lambda: "refused the device token" in caplog.text, within=20)
    text = caplog.text + "".join(record.exc_text or "" for record in caplog.records)
    # The debug lines are there (the header was logged), their values are not.
    assert "Authorization: [redacted]" in text or "authorization: [redacted]" in text, text[-3000:]
    assert token not in text
    assert wrong not in text
