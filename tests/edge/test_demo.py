"""``ems demo`` as a user runs it: one command, readings on the hub, Ctrl-C stops everything."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import httpx

from tests.edge.hubproc import REPO, free_port


def test_demo_streams_to_its_dashboard_and_stops_on_ctrl_c() -> None:
    port = free_port()
    demo = subprocess.Popen(
        [sys.executable, "-m", "ems", "demo", "--port", str(port)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, like a terminal's foreground job
    )
    output = demo.stdout
    assert output is not None
    try:
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(output), daemon=True)
        reader.start()  # the demo's output, logs included, as it comes
        expected = f"dashboard: http://127.0.0.1:{port}/devices/ems_demo\n"
        deadline = time.monotonic() + 60
        while expected not in lines and time.monotonic() < deadline and demo.poll() is None:
            time.sleep(0.1)
        assert expected in lines, "".join(lines)
        deadline = time.monotonic() + 60
        readings: list[dict[str, object]] = []
        while time.monotonic() < deadline and len(readings) < 3:
            answer = httpx.get(f"http://127.0.0.1:{port}/api/devices/ems_demo/readings")
            readings = answer.json()["readings"]
            time.sleep(0.5)
        assert len(readings) >= 3
        assert {"inverter", "grid", "solar", "battery"} <= set(readings[-1])
        assert httpx.get(f"http://127.0.0.1:{port}/devices/ems_demo").status_code == 200
        os.killpg(demo.pid, signal.SIGINT)  # what Ctrl-C does in a terminal
        assert demo.wait(timeout=30) == 0
        reader.join(timeout=10)
        assert lines[-1] == "ems demo: stopped\n"
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait()
        output.close()
    # Nothing is left listening: the hub went with the demo.
    try:
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2.0)
    except httpx.ConnectError:
        pass
    else:
        raise AssertionError("the hub is still running after the demo stopped")
