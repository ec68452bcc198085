"""Every simulated site (``ems sim --site NAME``), served over real TCP, read as an installer would.

For each layout in :data:`simulation.sites.SITES`: its printed config lines are
a valid agent config; ``ems edge scan``'s identification names each device's
own profile (so no family's signature claims another's device); and each
device, read with its profile, gives values for the role it is configured in.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from drivers.bus import BusConfig, BusType
from drivers.device import Device
from drivers.profiles.identify import identify
from drivers.transports import open_transport
from edge.config import parse_config
from simulation.layout import SiteLayout, config_lines
from simulation.runner import SimulatedSite
from simulation.sites import SITES

NOON = datetime(2026, 6, 21, 11, tzinfo=UTC)
HEAD = """
device_id = "site_test"
[hub]
url = "ws://127.0.0.1:8000"
token = "t"
[buffer]
path = "buffer.db"
"""


@pytest.mark.parametrize("layout", list(SITES.values()), ids=list(SITES))
def test_a_sites_config_lines_are_a_valid_agent_config(layout: SiteLayout) -> None:
    text = HEAD + config_lines(layout, host="127.0.0.1", port=5020)
    config = parse_config(text, base_dir=Path("/tmp"))
    assert [(d.name, d.profile, d.unit) for d in config.devices] == [
        (d.name, d.profile, d.unit) for d in layout.devices
    ]


@pytest.mark.parametrize("layout", list(SITES.values()), ids=list(SITES))
async def test_each_device_of_a_site_is_told_and_read_over_tcp(layout: SiteLayout) -> None:
    async with SimulatedSite(layout=layout, tcp=("127.0.0.1", 0), start=NOON, seed=3) as site:
        site.step(1.0)
        config = BusConfig("lan", BusType.TCP, host="127.0.0.1", port=site.tcp_port)
        async with open_transport(config) as transport:
            for device in layout.devices:
                identity = await identify(transport, device.unit)
                assert identity.profile == device.profile, (
                    f"site {layout.name}, unit {device.unit}: {identity.description}"
                )
                reading = await Device(transport, unit=device.unit, profile=device.profile).read()
                assert reading.section(device.role.value), (
                    f"site {layout.name}, unit {device.unit}: no {device.role.value} values"
                )
