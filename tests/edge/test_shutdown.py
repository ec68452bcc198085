"""SIGTERM ends ``ems edge run`` promptly, exit 0, in every state, and loses nothing committed.

Real processes: the agent, the real hub; the simulated site served from this
test's event loop (its faults steered from here); a black hole for a hub
address that accepts TCP but never answers the WebSocket handshake.
"""

from __future__ import annotations

import asyncio
import random
import socket
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from edge.outbox import OutboxError, OutboxStatus, read_status
from simulation.default_site import Unit
from simulation.modbus_server import Fault, FaultKind
from simulation.runner import SimulatedSite
from tests.edge.agent_site import START, site_config
from tests.edge.hubproc import HubProcess, running_hub
from tests.edge.test_cli import AgentProcess, stored_seqs, wait_stored

# "exits 0 within seconds" (docs/architecture.md, "Guarantees": clean shutdown); the agent's own
# deadline is 8 s and its hard stop 12 s, so this catches either being relied on.
PROMPT_S = 6.0


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    with running_hub(tmp_path_factory.mktemp("hub")) as process:
        yield process


@pytest.fixture
async def site() -> AsyncIterator[SimulatedSite]:
    async with SimulatedSite(tcp=("127.0.0.1", 0), start=START, speed=1.0) as running:
        yield running


@pytest.fixture
def black_hole() -> Iterator[str]:
    """A hub URL whose TCP connections are accepted (by the kernel) and never answered."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield f"ws://127.0.0.1:{listener.getsockname()[1]}"


def write_config(tmp_path: Path, hub_url: str, port: int, device_id: str, timeout_s: float) -> Path:
    path = tmp_path / "edge.toml"
    text = site_config(tmp_path, hub_url, port, device_id)
    path.write_text(text.replace("timeout_s = 0.3", f"timeout_s = {timeout_s}"))
    return path


def buffer_status(path: Path) -> OutboxStatus | None:
    try:
        return read_status(path)
    except OutboxError:  # not created yet
        return None


async def until_buffered(path: Path, last_seq: int, agent: AgentProcess) -> None:
    async with asyncio.timeout(60):
        while True:
            assert agent.process.poll() is None, agent.text()
            status = buffer_status(path)
            if status is not None and status.last_seq >= last_seq:
                return
            await asyncio.sleep(0.1)


async def sigterm(agent: AgentProcess) -> float:
    """SIGTERM the agent; asserts exit 0, returns how long it took."""
    started = time.monotonic()
    code = await asyncio.to_thread(agent.stop)
    took = time.monotonic() - started
    assert code == 0, agent.text()
    assert "agent stopped" in agent.text()
    return took


async def test_sigterm_with_polls_hanging_on_silent_devices_and_a_hub_that_never_answers(
    hub: HubProcess, site: SimulatedSite, black_hole: str, tmp_path: Path
) -> None:
    # A 5 s Modbus timeout: a read of a silent device hangs far longer than the test waits.
    path = write_config(tmp_path, black_hole, site.tcp_port, "stop_stuck", timeout_s=5.0)
    buffer = tmp_path / "buffer.db"
    token = await asyncio.to_thread(hub.token_add, "stop_stuck")
    began = datetime.now(UTC)
    agent = AgentProcess(path, token)
    try:
        await until_buffered(buffer, 5, agent)
        for unit in Unit:  # the RS485 cable is cut: every read now waits for its timeout
            site.set_fault(int(unit), Fault(FaultKind.SILENT))
        await asyncio.sleep(1.5)  # polls in flight; the uplink stuck in its handshake
        took = await sigterm(agent)
    finally:
        if agent.process.poll() is None:
            agent.process.kill()
    assert took < PROMPT_S, agent.text()
    # Nothing was acked (the hub never answered): every reading is in the buffer.
    status = read_status(buffer)
    assert status.depth == status.last_seq + 1 >= 6

    # Devices back, the real hub reachable: every buffered reading reaches it, once.
    for unit in Unit:
        site.set_fault(int(unit), Fault(FaultKind.NONE))
    path.write_text(path.read_text().replace(black_hole, hub.url))
    agent = AgentProcess(path, token)
    try:
        await wait_stored(hub, "stop_stuck", began, status.last_seq + 4)
        took = await sigterm(agent)
    finally:
        if agent.process.poll() is None:
            agent.process.kill()
    assert took < PROMPT_S, agent.text()
    seqs = await stored_seqs(hub, "stop_stuck", began)
    assert seqs == list(range(len(seqs)))
    assert read_status(buffer).depth == 0


async def test_sigterm_at_random_moments_while_streaming_loses_nothing(
    hub: HubProcess, site: SimulatedSite, tmp_path: Path
) -> None:
    path = write_config(tmp_path, hub.url, site.tcp_port, "stop_random", timeout_s=0.3)
    token = await asyncio.to_thread(hub.token_add, "stop_random")
    rng = random.Random(3)
    began = datetime.now(UTC)
    for round_ in range(4):
        agent = AgentProcess(path, token)
        try:
            await until_buffered(tmp_path / "buffer.db", 6 * (round_ + 1), agent)
            # Anywhere in the writer's 0.5 s cycle, and in the uplink's acks and deletes.
            await asyncio.sleep(rng.uniform(0.0, 0.5))
            took = await sigterm(agent)
        finally:
            if agent.process.poll() is None:
                agent.process.kill()
        assert took < PROMPT_S, agent.text()
    log = agent.text()
    assert "Traceback" not in log, log
    status = read_status(tmp_path / "buffer.db")
    seqs = await stored_seqs(hub, "stop_random", began)
    # Every reading taken was stored, once: what was acked at each stop, and what
    # was left in the buffer was sent after the next start (the last stop drained).
    assert seqs == list(range(status.last_seq + 1 - status.depth))
    assert status.depth <= 2, log
