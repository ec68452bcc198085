"""Modbus poll cost of the simulated site's four devices: computed bus time and measured latency.

Bus time (RTU) is computed from frame sizes (Modbus over Serial Line V1.02):
11 bits per character; a read request is 8 bytes (unit, function, address,
count, CRC), its response 5 + 2 x registers; each frame is followed by 3.5
characters of silence. Our plans are compared with the floor any plan can reach
under the devices' limits (``RegisterMap.minimal_plan``: every gap bridged except
across a range the device refuses to read), only the needed registers carried.

Latency is measured: full polls (the four devices, as the edge does each
interval) over TCP loopback and over RTU on a pseudo-terminal (a pty carries bytes
at memory speed, so that figure is the software's share, not the line's).

    .venv/bin/python bench/modbus_poll.py --polls 500
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import time
from datetime import UTC, datetime

from drivers.bus import BusConfig, BusType, frame_silence_s
from drivers.device import Device
from drivers.planner import ReadRequest
from drivers.profile import RegisterMap
from drivers.transports import open_transport
from simulation.default_site import REGISTER_MAPS, Unit, encode_site
from simulation.modbus_server import DeviceServer, DeviceSpec
from simulation.plant import Plant

PROFILES = {
    Unit.INVERTER: "sunspec",
    Unit.GRID_METER: "eastron_sdm630",
    Unit.CHARGER: "epever_tracer",
    Unit.BMS: "seplos_v3",
}
REQUEST_BYTES = 8
RESPONSE_OVERHEAD_BYTES = 5


def transaction_s(registers: int, baud: int) -> float:
    chars = REQUEST_BYTES + RESPONSE_OVERHEAD_BYTES + 2 * registers
    return chars * 11 / baud + 2 * frame_silence_s(baud)


def plan_cost(plan: tuple[ReadRequest, ...], baud: int) -> float:
    return sum(transaction_s(r.count, baud) for r in plan)


def floor_cost(reg_map: RegisterMap, baud: int) -> tuple[int, float]:
    floor = reg_map.minimal_plan
    needed = sum(p.count for p in reg_map.needed)
    seconds = len(floor) * transaction_s(0, baud) + needed * 2 * 11 / baud
    return len(floor), seconds


def bus_table() -> None:
    print("RTU bus time per full poll (computed from frame sizes)")
    print(f"{'device':<12}{'regs':>6}{'tx':>4}{'min tx':>8}", end="")
    for baud in (9600, 115200):
        print(f"{f'{baud} ms':>12}{'min ms':>9}", end="")
    print()
    totals = {9600: [0.0, 0.0], 115200: [0.0, 0.0]}
    total_tx = total_min = 0
    for unit in Unit:
        reg_map = REGISTER_MAPS[unit]
        plan = reg_map.plan
        regs = sum(r.count for r in plan)
        min_tx, _ = floor_cost(reg_map, 9600)
        total_tx += len(plan)
        total_min += min_tx
        print(f"{unit.name.lower():<12}{regs:>6}{len(plan):>4}{min_tx:>8}", end="")
        for baud in (9600, 115200):
            ours, floor = plan_cost(plan, baud), floor_cost(reg_map, baud)[1]
            totals[baud][0] += ours
            totals[baud][1] += floor
            print(f"{ours * 1e3:>12.1f}{floor * 1e3:>9.1f}", end="")
        print()
    print(f"{'all four':<12}{'':>6}{total_tx:>4}{total_min:>8}", end="")
    for baud in (9600, 115200):
        print(f"{totals[baud][0] * 1e3:>12.1f}{totals[baud][1] * 1e3:>9.1f}", end="")
    print()


def _summary(name: str, samples: list[float], transactions: int) -> None:
    samples.sort()

    def p(q: float) -> float:
        return samples[min(len(samples) - 1, int(q * len(samples)))] * 1e3

    print(
        f"{name:<16} polls {len(samples):>5}  tx/poll {transactions:>2}  "
        f"p50 {p(0.5):6.2f} ms  p95 {p(0.95):6.2f} ms  max {samples[-1] * 1e3:6.2f} ms  "
        f"mean {statistics.fmean(samples) * 1e3:6.2f} ms"
    )


async def measure(polls: int) -> None:
    plant = Plant("sunny", seed=1, start=datetime(2026, 6, 21, 10, tzinfo=UTC))
    images = encode_site(plant.step(60.0).sections())
    specs = [DeviceSpec.for_map(int(u), images[u], REGISTER_MAPS[u]) for u in Unit]
    async with DeviceServer(specs, tcp=("127.0.0.1", 0), rtu=True) as server:
        configs = {
            "tcp loopback": BusConfig(
                "lan", BusType.TCP, host="127.0.0.1", port=server.tcp_port, timeout_s=2.0
            ),
            "rtu pty 115200": BusConfig(
                "rs485", BusType.RTU, device=server.rtu_path, baudrate=115200, timeout_s=2.0
            ),
        }
        print("\nmeasured full polls (pymodbus backend)")
        for name, config in configs.items():
            async with open_transport(config) as transport:
                devices = [Device(transport, unit=int(u), profile=p) for u, p in PROFILES.items()]
                for device in devices:  # discovery and connection set-up, not timed
                    await device.read()
                before = transport.transactions
                samples = []
                for _ in range(polls):
                    started = time.perf_counter()
                    for device in devices:
                        await device.read()
                    samples.append(time.perf_counter() - started)
                _summary(name, samples, (transport.transactions - before) // polls)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--polls", type=int, default=500, help="full polls to time per bus")
    args = parser.parse_args()
    print(f"machine: {platform.node()} {platform.machine()} {platform.processor() or ''}".strip())
    print(f"python {platform.python_version()}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC\n")
    bus_table()
    asyncio.run(measure(args.polls))


if __name__ == "__main__":
    main()
