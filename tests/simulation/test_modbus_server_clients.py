"""The simulator's TCP endpoint as a one-client device serves it, and its settle time.

Real pymodbus clients (our transports) over loopback: a second client is refused
or replaces the first, as the policy says; requests sooner than ``settle_s``
after a connect get no answer, later ones do.
"""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from drivers.bus import BusConfig, BusType
from drivers.errors import ModbusError, NoResponse
from drivers.registers import RegisterType
from drivers.transports import open_transport
from drivers.transports.base import Transport
from simulation.default_site import DEFAULT_LAYOUT
from simulation.layout import SiteLayout
from simulation.modbus_server import ClientPolicy, DeviceServer, DeviceSpec
from simulation.runner import SimulatedSite, client_policy

HOLDING = RegisterType.HOLDING
IMAGE = {HOLDING: {0: 1234, 1: 5678}}


def _bus(server: DeviceServer, timeout_s: float = 1.0) -> BusConfig:
    return BusConfig(
        "lan",
        BusType.TCP,
        host="127.0.0.1",
        port=server.tcp_port,
        timeout_s=timeout_s,
        retries=0,
    )


async def _read(transport: Transport) -> tuple[int, ...]:
    return tuple(await transport.read(HOLDING, 0, 2, unit=1))


async def _until(condition: object, timeout_s: float = 2.0) -> None:
    assert callable(condition)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not condition():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_many_clients_are_all_served_by_default() -> None:
    async with (
        DeviceServer([DeviceSpec(1, IMAGE)]) as server,
        open_transport(_bus(server)) as first,
        open_transport(_bus(server)) as second,
    ):
        assert await _read(first) == (1234, 5678)
        assert await _read(second) == (1234, 5678)
        assert server.tcp_clients == 2


async def test_a_second_client_is_refused_while_the_first_is_connected() -> None:
    async with DeviceServer([DeviceSpec(1, IMAGE)], clients=ClientPolicy.REFUSE_NEW) as server:
        async with open_transport(_bus(server)) as first:
            assert await _read(first) == (1234, 5678)
            async with open_transport(_bus(server, timeout_s=0.5)) as second:
                with pytest.raises(ModbusError):
                    await _read(second)
            # pymodbus's client reconnects by itself: each attempt is refused.
            refused = server.refused_clients
            assert refused >= 1
            # The first client never noticed.
            assert await _read(first) == (1234, 5678)
            assert server.tcp_clients == 1
        await _until(lambda: server.tcp_clients == 0)
        # Once it has gone, the next client is served.
        async with open_transport(_bus(server)) as third:
            assert await _read(third) == (1234, 5678)
        assert server.refused_clients == refused


async def test_a_new_client_replaces_the_one_before_it() -> None:
    async with DeviceServer([DeviceSpec(1, IMAGE)], clients=ClientPolicy.REPLACE_OLD) as server:
        async with open_transport(_bus(server, timeout_s=0.5)) as first:
            assert await _read(first) == (1234, 5678)
            async with open_transport(_bus(server)) as second:
                assert await _read(second) == (1234, 5678)
                assert server.tcp_clients == 1
                # The first one's connection is gone. (pymodbus's client would now
                # reconnect and replace the second in turn, as on a real site.)
                with pytest.raises(ModbusError):
                    await _read(first)
        assert server.refused_clients == 0


async def test_requests_within_the_settle_time_get_no_answer() -> None:
    settle_s = 0.6
    async with DeviceServer([DeviceSpec(1, IMAGE)], settle_s=settle_s) as server:
        async with open_transport(_bus(server, timeout_s=0.3)) as transport:
            with pytest.raises(NoResponse):
                await _read(transport)  # at once: silence, then our timeout
            assert server.unanswered_early == 1
            await asyncio.sleep(settle_s)
            assert await _read(transport) == (1234, 5678)
        assert server.first_request_ages[0] < settle_s
        # A new connection starts its own settle time.
        async with open_transport(_bus(server, timeout_s=0.3)) as transport:
            with pytest.raises(NoResponse):
                await _read(transport)
        assert server.unanswered_early == 2


def test_a_layout_says_how_its_endpoint_treats_clients() -> None:
    def layout(**kwargs: object) -> SiteLayout:
        return SiteLayout("x", "x", (), **kwargs)  # type: ignore[arg-type]

    assert client_policy(layout()) is ClientPolicy.MANY
    assert client_policy(layout(single_client=True)) is ClientPolicy.REFUSE_NEW
    assert (
        client_policy(layout(single_client=True, new_client_wins=True)) is ClientPolicy.REPLACE_OLD
    )
    with pytest.raises(ValueError, match="needs single_client"):
        layout(new_client_wins=True)
    with pytest.raises(ValueError, match="settle_s"):
        layout(settle_s=-1.0)
    with pytest.raises(ValueError, match="settle_s"):
        DeviceServer([], settle_s=-1.0)


async def test_a_simulated_site_serves_its_layout_s_endpoint_behaviour() -> None:
    layout = dataclasses.replace(
        DEFAULT_LAYOUT, single_client=True, new_client_wins=True, settle_s=0.25
    )
    async with SimulatedSite(layout=layout, tcp=("127.0.0.1", 0)) as site:
        assert site.server.clients is ClientPolicy.REPLACE_OLD
        assert site.server.settle_s == 0.25
        async with open_transport(_bus(site.server, timeout_s=0.2)) as transport:
            with pytest.raises(NoResponse):
                await transport.read(HOLDING, 40000, 2, unit=1)
            await asyncio.sleep(0.25)
            assert await transport.read(HOLDING, 40000, 2, unit=1) == (0x5375, 0x6E53)
