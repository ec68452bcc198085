"""Readings and a running uplink, as the edge tests build them."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta

import pytest

from edge.outbox import NewReading, Outbox, ts_us_of
from edge.uplink import Uplink, UplinkSettings


def grid_reading(n: int, t0: datetime, *, held: bool = False) -> NewReading:
    """Reading ``n``: grid power ``n`` W, taken ``n`` s after ``t0`` (``held``: not yet stamped)."""
    body = json.dumps({"grid": {"power_w": float(n), "voltage_v": 230.0}})
    ts_us = None if held else ts_us_of(t0 + timedelta(seconds=n))
    return NewReading(mono=float(n), body=body, ts_us=ts_us)


@asynccontextmanager
async def uplink_running(
    outbox: Outbox,
    url: str,
    token: str,
    settings: UplinkSettings,
    health: Callable[[], str] | None = None,
) -> AsyncIterator[Uplink]:
    """An uplink running as a task for the block; cancelled after it, as the agent stops it."""
    uplink = Uplink(
        outbox, url=url, token=token, settings=settings, rng=random.Random(7), health=health
    )
    task = asyncio.create_task(uplink.run(), name="test.uplink")
    try:
        yield uplink
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
