"""Faults between the agent and the database: the hub's PostgreSQL cut off and back."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime
from pathlib import Path

from edge.agent import Agent
from edge.outbox import read_status
from simulation.modbus_server import DeviceServer
from tests.edge.agent_site import OPTIONS, make_config, stored
from tests.edge.hubproc import HubProcess
from tests.support.polling import until
from tests.tcp_proxy import CutMode, TcpProxy


async def test_the_database_cut_off_loses_nothing_and_doubles_nothing(
    postgres_url: str,
    site: tuple[DeviceServer, dict[str, dict[str, object]]],
    tmp_path: Path,
) -> None:
    served, _ = site
    host, _, port = postgres_url.split("@", 1)[1].split("/", 1)[0].partition(":")
    async with TcpProxy(host, int(port or 5432)) as proxy:
        hub = HubProcess(tmp_path / "hub", database=proxy.rewrite_url(postgres_url))
        await asyncio.to_thread(hub.start)
        try:
            token = await asyncio.to_thread(hub.token_add, "fault_db")
            config = make_config(tmp_path, hub, served.tcp_port, "fault_db")
            # Unacked readings are sent again after 2 s: the hub may have dropped them.
            options = dataclasses.replace(
                OPTIONS, uplink=dataclasses.replace(OPTIONS.uplink, ack_timeout_s=2.0)
            )
            agent = Agent(config, token=token, options=options)
            began = datetime.now(UTC)
            task = asyncio.create_task(agent.run(), name="test.agent")
            await until(lambda: agent.uplink is not None and agent.uplink.status().acked >= 5)
            assert agent.uplink is not None
            await proxy.cut(CutMode.REFUSE)  # the database is gone
            acked = agent.uplink.status().acked
            await asyncio.sleep(4.0)
            # Nothing is acked while nothing can be committed; the agent buffers.
            assert agent.uplink.status().acked <= acked + 10  # what was committing at the cut
            assert read_status(config.buffer.path).depth >= 10
            await proxy.restore()
            assert agent.sampler is not None
            mark = agent.sampler.readings
            await until(lambda: read_status(config.buffer.path).last_seq >= mark + 3, within=90)
            await until(lambda: read_status(config.buffer.path).depth <= 2, within=90)
            agent.stop()
            async with asyncio.timeout(15):
                await task
            rows = await stored(hub, "fault_db", began)
        finally:
            await asyncio.to_thread(hub.stop)
    assert [row["seq"] for row in rows] == list(range(agent.sampler.readings))
    assert len({row["ts"] for row in rows}) == len(rows)
    assert read_status(config.buffer.path).depth == 0
