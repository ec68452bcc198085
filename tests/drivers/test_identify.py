"""Identifying what answers at a unit id, against the simulated devices on a real TCP server."""

from __future__ import annotations

from datetime import UTC, datetime

from drivers.bus import BusConfig, BusType
from drivers.profile import encode_map
from drivers.profiles.eastron import SDM120
from drivers.profiles.identify import identify
from drivers.registers import RegisterType
from drivers.transports import open_transport
from simulation.default_site import REGISTER_MAPS, Unit, encode_site
from simulation.modbus_server import DeviceServer, DeviceSpec
from simulation.plant import Plant

NOON = datetime(2026, 6, 21, 11, tzinfo=UTC)


async def test_each_simulated_device_is_told_by_its_own_registers() -> None:
    sections = Plant("sunny", seed=2, start=NOON).state.sections()
    images = encode_site(sections)
    specs = [DeviceSpec.for_map(int(u), images[u], REGISTER_MAPS[u]) for u in Unit]
    # Unit 7: a single-phase meter; unit 9: a device whose registers fit no profile.
    single = encode_map(SDM120, {"grid": dict(sections["grid"])})
    specs.append(DeviceSpec(7, single, SDM120.max_count))
    specs.append(DeviceSpec(9, {RegisterType.HOLDING: {a: 7 for a in range(10)}}))
    async with DeviceServer(specs, tcp=("127.0.0.1", 0)) as server:
        config = BusConfig("lan", BusType.TCP, host="127.0.0.1", port=server.tcp_port)
        async with open_transport(config) as transport:
            found = {unit: await identify(transport, unit) for unit in (1, 2, 3, 4, 7, 9)}
    assert {unit: identity.profile for unit, identity in found.items()} == {
        1: "sunspec",
        2: "eastron_sdm630",
        3: "epever_tracer",
        4: "seplos_v3",
        7: "eastron_sdm120",
        9: None,
    }
    # The SunSpec common model names the maker and the model.
    assert found[1].description == (
        'SunSpec device at 40000: "EMS Switchboard" model "SimInverter"'
    )
    assert found[9].description == "answers, but matches no profile"
