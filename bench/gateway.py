"""The edge gateway (docs/gateway.md): read latency, bus transactions saved, poll jitter.

``ems sim`` serves the four simulated devices in a process of its own; this process
runs the real agent polling them (every ``--interval`` s) with ``[gateway]`` on, and
reads through the gateway with pymodbus:

1. cached reads: the inverter's model 103 (its 50 registers after ID and L, polled),
   ``--reads`` times;
2. passed-through reads: the same count of reads of the common model's strings (32
   registers the agent does not poll), each range dropped from the cache first so
   that every one goes to the bus; and, for scale, the same read from the simulator
   directly;
3. sharing: ``--scans`` pysunspec2 scans of the inverter (a third-party SunSpec
   reader) and a Home-Assistant-like client reading model 103 once a second: the
   gateway's requests against the bus transactions they cost;
4. the poll interval's jitter: ``--seconds`` quiet, then ``--seconds`` with hostile
   clients (tests/edge/gateway_attack.py, in a process of its own, niced: half a
   frame, garbage, two floods, a client that never reads), first at the default
   ``requests_per_s``, then at ``--flood-rate``; quiet and attacked phases alternate.

    .venv/bin/python bench/gateway.py
    .venv/bin/python bench/gateway.py --reads 200 --seconds 5   # a quick check
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import itertools
import json
import logging
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pymodbus.client import AsyncModbusTcpClient
from sunspec2.modbus.client import SunSpecModbusClientDeviceTCP

from drivers.registers import RegisterType
from edge.agent import Agent, AgentOptions
from edge.config import parse_config
from edge.demo import simulated_site_config
from edge.gateway_cache import CacheKey
from edge.gateway_config import GatewayFile
from edge.health import DeviceState
from simulation.default_site import INVERTER_CHAIN

REPO = Path(__file__).resolve().parents[1]
MODELS = {model.model_id: model for model in INVERTER_CHAIN.models}
# Model 103's points, after its ID and L: the agent's plan reads them every poll.
MODEL_103 = (MODELS[103].address + 2, 50)
COMMON_STRINGS = (MODELS[1].address + 2, 32)
DEFAULT_RATE = GatewayFile().requests_per_s


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)

    def p(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    return f"p50 {p(0.50):.2f} ms, p99 {p(0.99):.2f} ms, max {ordered[-1] * 1000:.2f} ms"


async def timed_reads(
    port: int, unit: int, span: tuple[int, int], reads: int, before: object = None
) -> list[float]:
    client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=5, retries=0)
    assert await client.connect()
    samples = []
    try:
        for _ in range(reads):
            if callable(before):
                before()
            began = time.perf_counter()
            answer = await client.read_holding_registers(span[0], count=span[1], device_id=unit)
            samples.append(time.perf_counter() - began)
            if answer.isError():
                raise SystemExit(f"read {span} failed: {answer}")
    finally:
        client.close()
    return samples


class LoopLag:
    """How late the agent's event loop wakes a 10 ms sleep: its own stalls, whatever the
    cause (the gateway's work, or the process not scheduled on a busy machine)."""

    def __init__(self) -> None:
        self.samples: list[float] = []

    async def run(self) -> None:
        while True:
            began = time.monotonic()
            await asyncio.sleep(0.01)
            self.samples.append(time.monotonic() - began - 0.01)

    def since(self, mark: int) -> str:
        return percentiles(self.samples[mark:])


def deviations(starts: list[float], interval_s: float) -> list[float]:
    return [abs(b - a - interval_s) for a, b in itertools.pairwise(starts)]


async def run(args: argparse.Namespace, root: Path, sim_port: int) -> None:
    text = simulated_site_config(
        device_id="bench_gw",
        hub_url=f"ws://127.0.0.1:{free_port()}",  # nothing listens: no hub needed
        modbus_port=sim_port,
        buffer_path=root / "buffer.db",
        interval_s=args.interval,
        timeout_s=0.5,
    )
    # Latency is measured unpaced; the attacks below run at the default pace, then faster.
    gateway = f"\n[gateway]\nport = 0\nmax_age_s = {args.max_age}\nrequests_per_s = 10000\n"
    config = parse_config(text + gateway, base_dir=root)
    agent = Agent(config, token="unused", options=AgentOptions(clock_settle_s=0.0))
    task = asyncio.create_task(agent.run(), name="agent")
    gw = agent.gateway
    assert gw is not None
    shared = agent.shared_buses["sim"]
    deadline = time.monotonic() + 30
    while not (
        gw.listening.is_set() and all(h.state is DeviceState.OK for h in agent.health.values())
    ):
        if time.monotonic() > deadline:
            raise SystemExit("the agent did not read every device within 30 s")
        await asyncio.sleep(0.05)
    await asyncio.sleep(2 * args.interval)
    port = gw.port
    try:
        print(f"agent polling ems sim every {args.interval} s; gateway max_age_s {args.max_age}")

        guest_before, cached_before = shared.guest_transactions, gw.stats.cached_reads
        cached = await timed_reads(port, 1, MODEL_103, args.reads)
        print(
            f"cached read, {MODEL_103[1]} registers ({args.reads}): {percentiles(cached)}; "
            f"{gw.stats.cached_reads - cached_before} from the cache, "
            f"{shared.guest_transactions - guest_before} bus transactions"
        )

        key = CacheKey("sim", 1, RegisterType.HOLDING)
        guest_before = shared.guest_transactions
        passed = await timed_reads(
            port, 1, COMMON_STRINGS, args.reads, lambda: gw.cache.forget(key, *COMMON_STRINGS)
        )
        print(
            f"passed-through read, {COMMON_STRINGS[1]} registers ({args.reads}): "
            f"{percentiles(passed)}; {shared.guest_transactions - guest_before} bus transactions"
        )
        direct = await timed_reads(sim_port, 1, COMMON_STRINGS, args.reads)
        print(f"the same read from ems sim directly: {percentiles(direct)}")

        requests_before = gw.stats.requests
        cached_before, guest_before = gw.stats.cached_reads, shared.guest_transactions
        poll_before = shared.poll_transactions
        began = time.monotonic()

        async def home_assistant() -> int:
            reads = 0
            client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=5, retries=0)
            assert await client.connect()
            try:
                while time.monotonic() - began < args.scans * 0.5:
                    await client.read_holding_registers(MODEL_103[0], count=2, device_id=1)
                    await client.read_holding_registers(MODEL_103[0] + 12, count=2, device_id=1)
                    reads += 2
                    await asyncio.sleep(1.0)
            finally:
                client.close()
            return reads

        async def scans() -> None:
            for _ in range(args.scans):
                device = SunSpecModbusClientDeviceTCP(
                    slave_id=1, ipaddr="127.0.0.1", ipport=port, timeout=5
                )
                await asyncio.to_thread(device.scan)
                await asyncio.sleep(0.5)

        async with asyncio.TaskGroup() as tasks:
            ha = tasks.create_task(home_assistant())
            tasks.create_task(scans())
        requests = gw.stats.requests - requests_before
        from_cache = gw.stats.cached_reads - cached_before
        bus = shared.guest_transactions - guest_before
        print(
            f"sharing for {time.monotonic() - began:.1f} s: {args.scans} pysunspec2 scans and "
            f"{ha.result()} Home-Assistant-like reads = {requests} requests; {from_cache} "
            f"answered from the cache, {bus} bus transactions for the gateway "
            f"({requests - bus} saved, {100 * (requests - bus) / requests:.0f} %); the agent's "
            f"own polls took {shared.poll_transactions - poll_before} transactions meanwhile"
        )

        starts = shared.arbiter.poll_starts
        lag = LoopLag()
        probe = asyncio.create_task(lag.run(), name="loop-lag")
        # Quiet and attacked phases alternate, so that the other work of a shared
        # machine weighs on both alike.
        for rate in (DEFAULT_RATE, args.flood_rate):
            mark, cpu, lag_mark = len(starts), time.process_time(), len(lag.samples)
            await asyncio.sleep(args.seconds)
            quiet = deviations(list(starts)[mark:], args.interval)
            print(
                f"poll start vs one interval after the last, quiet ({len(quiet)} cycles): "
                f"{percentiles(quiet)}; agent process CPU "
                f"{100 * (time.process_time() - cpu) / args.seconds:.0f} %; "
                f"event loop lag {lag.since(lag_mark)}; {os.getloadavg()[0]:.1f} load"
            )
            # requests_per_s as a config file would set it (the default, then a high one).
            gw.config = dataclasses.replace(gw.config, requests_per_s=rate)
            gw._buckets.clear()
            mark, cpu, lag_mark = len(starts), time.process_time(), len(lag.samples)
            before = (gw.stats.requests, gw.stats.cached_reads, gw.stats.bus_reads)
            # Niced: a hostile client is another machine's CPU; here it shares our two cores.
            attacker = await asyncio.create_subprocess_exec(
                "nice",
                "-n",
                "19",
                sys.executable,
                "-m",
                "tests.edge.gateway_attack",
                *(str(a) for a in (port, args.seconds, 1, *MODEL_103, *COMMON_STRINGS)),
                stdout=asyncio.subprocess.PIPE,
                cwd=REPO,
            )
            out, _ = await attacker.communicate()
            cpu_pct = 100 * (time.process_time() - cpu) / args.seconds
            attacked = deviations(list(starts)[mark:], args.interval)
            counts = json.loads(out)
            after = (gw.stats.requests, gw.stats.cached_reads, gw.stats.bus_reads)
            served = [now - then for now, then in zip(after, before, strict=True)]
            print(
                f"with hostile clients, requests_per_s {rate:g} ({len(attacked)} cycles): "
                f"{percentiles(attacked)}; agent process CPU {cpu_pct:.0f} %; the gateway "
                f"served {served[0]} of their requests ({served[1]} cached, {served[2]} "
                f"passed through), closed {counts['garbage_connections']} garbage connections; "
                f"event loop lag {lag.since(lag_mark)}; {os.getloadavg()[0]:.1f} load"
            )
        probe.cancel()
        if not all(h.state is DeviceState.OK for h in agent.health.values()):
            print("a device was failing at the end")
    finally:
        agent.stop()
        await task


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reads", type=int, default=2000)
    parser.add_argument("--scans", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=30.0, help="each jitter phase")
    parser.add_argument("--interval", type=float, default=0.2, help="the agent's interval_s")
    parser.add_argument("--max-age", type=float, default=1.0, help="gateway.max_age_s")
    parser.add_argument(
        "--flood-rate", type=float, default=2000.0, help="requests_per_s of the second attack"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    print(f"{platform.node()}: {os.cpu_count()} CPUs, Python {platform.python_version()}")
    sim_port = free_port()
    sim = subprocess.Popen(
        [sys.executable, "-m", "ems.cli", "sim", "--tcp", f"127.0.0.1:{sim_port}"],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", sim_port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("ems sim did not start") from None
                time.sleep(0.2)
        with tempfile.TemporaryDirectory(prefix="bench-gw-") as work:
            asyncio.run(run(args, Path(work), sim_port))
    finally:
        sim.terminate()
        sim.wait(10)


if __name__ == "__main__":
    main()
