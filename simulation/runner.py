"""A running simulated site: the plant stepped in (accelerated) time, served over Modbus.

``async with SimulatedSite(...) as site`` starts the servers (TCP, and RTU on a
pty when asked) and a named task that steps the plant every ``tick_s`` of wall
time by ``tick_s * speed`` simulated seconds and re-encodes the four devices'
registers. ``site.tcp_port`` / ``site.rtu_path`` say where to connect. Several
sites (``--sites N``) are several of these, each with its own seed and port.

Without ``start``, the plant starts at its scenario's own day and hour of this
year (:func:`simulation.plant.scenarios.scenario_start`): the default scenario
then shows import, export, charge and discharge in its first minutes, whatever
the wall clock says. The readings the edge takes are stamped with the wall clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime
from types import TracebackType
from typing import Final, Self

from simulation.default_site import DEFAULT_LAYOUT
from simulation.layout import SiteLayout, encode_layout
from simulation.modbus_server import ClientPolicy, DeviceServer, DeviceSpec, Fault
from simulation.plant import DEFAULT_LONGITUDE_DEG, Plant, PlantState
from simulation.plant.scenarios import scenario_start

logger = logging.getLogger(__name__)

DEFAULT_TICK_S: Final = 0.5


def client_policy(layout: SiteLayout) -> ClientPolicy:
    """How the site's TCP endpoint treats a second client, as its device does."""
    if not layout.single_client:
        return ClientPolicy.MANY
    return ClientPolicy.REPLACE_OLD if layout.new_client_wins else ClientPolicy.REFUSE_NEW


class SimulatedSite:
    """One plant, the devices of a layout (default: the four-device kit), served until exit."""

    def __init__(
        self,
        *,
        scenario: str = "sunny",
        seed: int = 1,
        speed: float = 1.0,
        tcp: tuple[str, int] | None = ("127.0.0.1", 5020),
        rtu: bool = False,
        start: datetime | None = None,
        tick_s: float = DEFAULT_TICK_S,
        name: str = "site",
        layout: SiteLayout = DEFAULT_LAYOUT,
    ) -> None:
        if speed <= 0:
            raise ValueError("speed must be > 0")
        self.name = name
        self.speed = speed
        self.tick_s = tick_s
        # The scenario's opening appliances belong to its default start (the demo's story).
        with_opening = start is None
        if start is None:
            start = scenario_start(
                scenario,
                year=datetime.now(UTC).year,
                # The plant's own household clock for its default longitude.
                utc_offset_h=float(round(DEFAULT_LONGITUDE_DEG / 15.0)),
            )
        self.layout = layout
        self.plant = Plant(scenario, seed=seed, start=start, with_opening=with_opening)
        images = encode_layout(layout, self.plant.state.sections())
        self.server = DeviceServer(
            [
                DeviceSpec.for_map(d.unit, images[d.unit], d.served, d.undefined)
                for d in layout.devices
            ],
            tcp=tcp,
            rtu=rtu,
            clients=client_policy(layout),
            settle_s=layout.settle_s,
            absent_unit_code=layout.absent_unit_code,
            absent_unit_addresses=layout.absent_unit_addresses,
        )
        self._task: asyncio.Task[None] | None = None

    @property
    def state(self) -> PlantState:
        return self.plant.state

    @property
    def tcp_port(self) -> int:
        return self.server.tcp_port

    @property
    def rtu_path(self) -> str:
        return self.server.rtu_path

    def set_fault(self, unit: int, fault: Fault) -> None:
        self.server.set_fault(unit, fault)

    def step(self, dt_s: float) -> PlantState:
        """Advance the plant by ``dt_s`` simulated seconds and serve the new state."""
        state = self.plant.step(dt_s)
        self.server.update(encode_layout(self.layout, state.sections()))
        return state

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        last = loop.time()
        while True:
            await asyncio.sleep(self.tick_s)
            now = loop.time()
            # Step by the wall time that really passed: a late tick never slows the plant.
            self.step((now - last) * self.speed)
            last = now

    async def __aenter__(self) -> Self:
        await self.server.__aenter__()
        self._task = asyncio.create_task(self._run(), name=f"sim[{self.name}].plant_loop")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.server.__aexit__(exc_type, exc, tb)
