"""Bus cost of every profile in the catalogue, and an eight-device RTU bus at 9600 baud.

1. Computed, per profile (Modbus over Serial Line V1.02: 11 bits per character;
   a read request is 8 bytes, its answer 5 + 2 x registers; 3.5 characters of
   silence after each frame): the requests our plan makes per poll, the floor
   the device's limits allow (``RegisterMap.minimal_plan``: every gap bridged
   but those the device refuses), and the bus time of one poll at 9600 baud.
   And the identity read (drivers/identity.py) each profile makes once per
   connection: its requests and their bus time, plus its pacing gap.
2. Measured: eight devices of the simulated sites, each at its own unit id on
   one RTU line paced at 9600 baud (simulation/pty_bridge.py delivers bytes at
   the line's speed), polled back to back as the agent polls a bus; the slowest
   cycle is the shortest sampling interval that bus sustains; then each device's
   identity read, once, as the poller makes it after a connection.

    .venv/bin/python bench/device_buses.py --cycles 20
    .venv/bin/python bench/device_buses.py --devices growatt_v124,chint_dtsu666,...
"""

from __future__ import annotations

import argparse
import asyncio
import math
import platform
import statistics
import time
from datetime import UTC, datetime

from drivers.bus import BusConfig, BusType, frame_silence_s
from drivers.device import Device
from drivers.planner import ReadRequest
from drivers.profiles import PROFILES
from drivers.profiles.describe import representative_map
from drivers.transports import open_transport
from simulation.layout import SimulatedDevice
from simulation.modbus_server import DeviceServer, DeviceSpec
from simulation.plant import Plant
from simulation.sites import SITES

BAUD = 9600
REQUEST_BYTES = 8
RESPONSE_OVERHEAD_BYTES = 5
BUS_DEVICES = 8


def transaction_s(registers: int, baud: int = BAUD) -> float:
    chars = REQUEST_BYTES + RESPONSE_OVERHEAD_BYTES + 2 * registers
    return chars * 11 / baud + 2 * frame_silence_s(baud)


def plan_s(plan: tuple[ReadRequest, ...], baud: int = BAUD) -> float:
    return sum(transaction_s(r.count, baud) for r in plan)


def profile_table() -> None:
    print(f"computed, one poll at {BAUD} baud (8N1 frames, 3.5-character gaps)")
    print(f"{'profile':<24}{'regs':>6}{'tx':>4}{'floor tx':>10}{'ms':>9}{'ms at floor':>13}")
    for name, profile in PROFILES.items():
        reg_map = representative_map(profile)
        plan, floor = reg_map.plan, reg_map.minimal_plan
        regs = sum(r.count for r in plan)
        print(
            f"{name:<24}{regs:>6}{len(plan):>4}{len(floor):>10}"
            f"{plan_s(plan) * 1e3:>9.1f}{plan_s(floor) * 1e3:>13.1f}"
        )


def identity_table() -> None:
    print(f"\ncomputed, the identity read once per connection at {BAUD} baud")
    print(f"{'profile':<24}{'regs':>6}{'tx':>4}{'ms':>9}{'gap ms':>8}  fields")
    for name, profile in PROFILES.items():
        if profile.identity is None:
            continue
        plan = profile.identity.plan
        fields = ", ".join(p.target.field for p in profile.identity.points if p.target)
        print(
            f"{name:<24}{sum(r.count for r in plan):>6}{len(plan):>4}"
            f"{plan_s(plan) * 1e3:>9.1f}{profile.command_gap_s * 1e3:>8.0f}  {fields}"
        )


def rtu_devices(names: list[str] | None) -> list[SimulatedDevice]:
    """One simulated device per profile, RTU-capable, from the sites (the first ``BUS_DEVICES``)."""
    by_profile: dict[str, SimulatedDevice] = {}
    for layout in SITES.values():
        for device in layout.devices:
            profile = PROFILES[device.profile]
            if BusType.RTU in profile.transports and device.profile not in by_profile:
                by_profile[device.profile] = device
    if names:
        missing = [n for n in names if n not in by_profile]
        if missing:
            raise SystemExit(f"no simulated RTU device for {', '.join(missing)}")
        return [by_profile[n] for n in names]
    # Newest families first: the catalogue lists the original four first.
    return list(reversed(by_profile.values()))[:BUS_DEVICES]


async def measure_bus(devices: list[SimulatedDevice], cycles: int) -> None:
    plant = Plant("sunny", seed=1, start=datetime(2026, 6, 21, 10, tzinfo=UTC))
    sections = plant.step(60.0).sections()
    specs = [
        DeviceSpec.for_map(unit, device.encode(sections), device.served)
        for unit, device in enumerate(devices, start=1)
    ]
    async with DeviceServer(specs, tcp=None, rtu=True, baudrate=BAUD, paced=True) as server:
        bus = BusConfig("rs485", BusType.RTU, device=server.rtu_path, baudrate=BAUD, timeout_s=2)
        async with open_transport(bus) as transport:
            drivers = [
                Device(transport, unit=unit, profile=device.profile)
                for unit, device in enumerate(devices, start=1)
            ]
            per_device: list[list[float]] = [[] for _ in drivers]
            for driver in drivers:  # discovery and settle, not timed
                await driver.read()
            cycle_s: list[float] = []
            for _ in range(cycles):
                started = time.perf_counter()
                for i, driver in enumerate(drivers):
                    t0 = time.perf_counter()
                    await driver.read()
                    per_device[i].append(time.perf_counter() - t0)
                cycle_s.append(time.perf_counter() - started)
            identity_s: list[tuple[float, str]] = []
            for driver in drivers:
                t0 = time.perf_counter()
                identity = await driver.read_identity()
                identity_s.append((time.perf_counter() - t0, identity.serial_number or "-"))
    report(devices, drivers, per_device, cycle_s)
    print(f"\nmeasured: each device's identity read, once, on the same line at {BAUD} baud")
    print(f"{'unit':<6}{'profile':<24}{'ms':>9}  serial number")
    for unit, (device, (took, serial)) in enumerate(zip(devices, identity_s, strict=True), 1):
        print(f"{unit:<6}{device.profile:<24}{took * 1e3:>9.1f}  {serial}")


def report(
    devices: list[SimulatedDevice],
    drivers: list[Device],
    per_device: list[list[float]],
    cycle_s: list[float],
) -> None:
    cycles = len(cycle_s)
    print(f"\nmeasured: {len(devices)} devices on one RTU line at {BAUD} baud, {cycles} cycles")
    print(f"{'unit':<6}{'profile':<24}{'tx':>4}{'computed ms':>13}{'median ms':>11}{'max ms':>9}")
    for unit, (device, samples) in enumerate(zip(devices, per_device, strict=True), start=1):
        reg_map = drivers[unit - 1].register_map
        assert reg_map is not None  # read (and discovered) above
        print(
            f"{unit:<6}{device.profile:<24}{len(reg_map.plan):>4}"
            f"{plan_s(reg_map.plan) * 1e3:>13.1f}{statistics.median(samples) * 1e3:>11.1f}"
            f"{max(samples) * 1e3:>9.1f}"
        )
    slowest = max(cycle_s)
    print(
        f"cycle: median {statistics.median(cycle_s) * 1e3:.0f} ms, max {slowest * 1e3:.0f} ms; "
        f"shortest sustainable interval {math.ceil(slowest * 10) / 10:.1f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=20, help="bus cycles to time")
    parser.add_argument("--devices", help="comma-separated profiles for the RTU bus")
    args = parser.parse_args()
    print(f"machine: {platform.node()} {platform.machine()} {platform.processor() or ''}".strip())
    print(f"python {platform.python_version()}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC\n")
    profile_table()
    identity_table()
    names = args.devices.split(",") if args.devices else None
    asyncio.run(measure_bus(rtu_devices(names), args.cycles))


if __name__ == "__main__":
    main()
