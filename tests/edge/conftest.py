"""Fixtures of the edge tests: the simulated site's devices on a loopback Modbus TCP server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from simulation.default_site import REGISTER_MAPS, Unit, encode_site
from simulation.modbus_server import DeviceServer, DeviceSpec
from simulation.plant import Plant
from tests.edge.agent_site import START


@pytest.fixture
async def site() -> AsyncIterator[tuple[DeviceServer, dict[str, dict[str, object]]]]:
    sections = Plant("sunny", seed=1, start=START).state.sections()
    images = encode_site(sections)
    specs = [DeviceSpec(int(u), images[u], REGISTER_MAPS[u].max_count) for u in Unit]
    async with DeviceServer(specs, tcp=("127.0.0.1", 0)) as served:
        yield served, {k: dict(v) for k, v in sections.items()}
