"""Standing fuzz test: hostile bytes against a running hub, from outside, over real sockets.

``ems -v hub serve`` runs as a process with a viewer token and a device token;
a seeded mutator then sends it the same 3,300 cases every run, whatever the
machine's load (about 90 s of them on a loaded 2-core machine):

1. raw TCP: HTTP requests (the API, the pages, both doors' upgrades) mutated at
   the byte level: flipped bits, NULs, stray CR/LF, cut, doubled, huge;
2. raw WebSocket frames after a real upgrade at both doors: opcodes, reserved
   bits, lengths, masks and payloads mutated;
3. WebSocket messages through a real client at the device door (hostile JSON:
   wrong types, extremes, deep nesting, mutated text, binary) and the dashboard
   door (which is read-only);
4. the HTTP API with mutated paths and parameters.

Afterwards the hub must be alive (``/healthz``) and must never have answered
5xx, logged a traceback or an ERROR, logged either token, or closed a
WebSocket with a code other than those docs/protocol.md lists for a peer's
doing (1000, 1001, 1002, 1007, 1008, 1009, 1013): 1011 is listed too, but it
means a bug of the hub's.

``EMS_FUZZ_SEED`` picks another seed (the default is fixed: a failure
reproduces); a failure message names the case.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import random
import secrets
import struct
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from tests.hub.raw_ws import STATUS_LINE, read_head, server_close_code, ws_frame
from tests.hub.served_hub import ServedHub, add_token, served_hub
from tests.support.hub import close_client, reading

# About a minute and a half of hostile bytes: outside the quick tier.
pytestmark = pytest.mark.slow

SEED = int(os.environ.get("EMS_FUZZ_SEED", "20261203"))
# Cases per kind. Every one of them runs: a run cut short by a time budget ran fewer
# of them on a loaded machine, a different set each time, and failed below a count.
RAW_HTTP_CASES = 1500
RAW_WS_CASES = 300
DEVICE_MESSAGES = 800
DASHBOARD_MESSAGES = 100
API_CASES = 600
CONCURRENCY = 16
DOCUMENTED_CLOSE_CODES = frozenset({1000, 1001, 1002, 1007, 1008, 1009, 1013})
DEVICE_ID = "ems_fuzz"

PALETTE = [
    b"\r\n",
    b"\n",
    b"\r",
    b"\x00",
    b"%00",
    b"%",
    b"%zz",
    b"%2e%2e/",
    b"../",
    b"\xff\xfe",
    b"\xc3\x28",
    b" ",
    b"\t",
    b":",
    b"?",
    b"#",
    b"{",
    b'"',
    b"A" * 300,
    b"9" * 40,
    b"-",
    b"\x1b[31m",
    b"\nCRITICAL forged\n",
    b"Transfer-Encoding: chunked\r\n",
    b"Content-Length: 99999999\r\n",
    b"Connection: close\r\n",
    b"Upgrade: websocket\r\n",
]


@dataclass
class Findings:
    statuses: Counter[int] = field(default_factory=Counter)
    close_codes: Counter[int] = field(default_factory=Counter)
    bad: list[str] = field(default_factory=list)  # what broke, with the case
    cases: Counter[str] = field(default_factory=Counter)

    def status(self, case: str, status: int) -> None:
        self.statuses[status] += 1
        if status >= 500:
            self.bad.append(f"{case}: answered {status}")

    def closed(self, case: str, code: int | None) -> None:
        if code is None:
            return
        self.close_codes[code] += 1
        if code not in DOCUMENTED_CLOSE_CODES:
            self.bad.append(f"{case}: closed with {code}")


def mutate(rng: random.Random, data: bytes, rounds: int | None = None) -> bytes:
    """``data`` with 1-4 random edits: flips, insertions from PALETTE, cuts, copies."""
    out = bytearray(data)
    for _ in range(rounds or rng.randint(1, 4)):
        at = rng.randrange(len(out) + 1)
        kind = rng.randrange(6)
        if kind == 0 and out:
            index = rng.randrange(len(out))
            out[index] ^= 1 << rng.randrange(8)
        elif kind == 1:
            out[at:at] = rng.choice(PALETTE)
        elif kind == 2 and out:
            out[at : at + rng.randint(1, 16)] = b""
        elif kind == 3 and out:
            start = rng.randrange(len(out))
            out[at:at] = out[start : start + rng.randint(1, 64)] * rng.randint(1, 20)
        elif kind == 4:
            del out[at:]
        else:
            out[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
    return bytes(out)


# -- 1. raw HTTP over TCP --------------------------------------------------------------------


def base_requests(device_token: str, viewer_token: str) -> list[bytes]:
    key = base64.b64encode(b"0123456789abcdef").decode()
    upgrade = (
        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
    )
    requests = [
        "GET /healthz HTTP/1.1\r\nHost: hub\r\n\r\n",
        "GET /readyz HTTP/1.1\r\nHost: hub\r\n\r\n",
        "GET /metrics HTTP/1.1\r\nHost: hub\r\n\r\n",
        f"GET /api/devices HTTP/1.1\r\nHost: hub\r\nAuthorization: Bearer {viewer_token}\r\n\r\n",
        f"GET /api/devices/{DEVICE_ID}/readings?start=2026-11-26T05:00:00Z"
        f"&end=2026-11-26T06:00:00%2B01:00&limit=10&bucket=60s&token={viewer_token} HTTP/1.1\r\n"
        "Host: hub\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: hub\r\nAccept: text/html\r\n\r\n",
        f"GET /devices/{DEVICE_ID} HTTP/1.1\r\nHost: hub\r\n\r\n",
        "GET /static/../hub/api.py HTTP/1.1\r\nHost: hub\r\n\r\n",
        "POST /api/devices HTTP/1.1\r\nHost: hub\r\nContent-Length: 5\r\n\r\nhello",
        f"GET /ws/device/{DEVICE_ID} HTTP/1.1\r\nHost: hub\r\n{upgrade}"
        f"Authorization: Bearer {device_token}\r\n\r\n",
        f"GET /ws/dashboard/{DEVICE_ID}?token={viewer_token} HTTP/1.1\r\nHost: hub\r\n"
        f"{upgrade}Origin: http://hub\r\n\r\n",
        f"GET /ws/dashboard/{DEVICE_ID} HTTP/1.1\r\nHost: hub\r\n{upgrade}"
        f"Authorization: Bearer {viewer_token}\r\n\r\n",
    ]
    return [request.encode() for request in requests]


async def raw_http_case(port: int, case: str, payload: bytes, findings: Findings) -> None:
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError as err:
        findings.bad.append(f"{case}: cannot connect: {err}")
        return
    try:
        with contextlib.suppress(OSError):
            writer.write(payload)
            await writer.drain()
        head = await read_head(reader, 2.0)
        match = STATUS_LINE.match(head)
        if match is not None:
            findings.status(case, int(match[1]))
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


# -- 2. raw WebSocket frames -------------------------------------------------------------------


def hostile_frame(rng: random.Random) -> bytes:
    body = json.dumps(reading(rng.randrange(1000))).encode()
    choice = rng.randrange(9)
    if choice == 0:
        return ws_frame(rng.randrange(16), body)  # any opcode, reserved ones too
    if choice == 1:
        frame = bytearray(ws_frame(0x1, body))
        frame[0] |= rng.choice([0x40, 0x20, 0x10])  # a reserved bit, no extension agreed
        return bytes(frame)
    if choice == 2:
        return ws_frame(0x1, body, mask=False)  # a client must mask
    if choice == 3:
        return ws_frame(0x9, b"p" * rng.randint(126, 300))  # a control frame over 125 bytes
    if choice == 4:
        return ws_frame(0x1, b"\xc3\x28\xff" + body)  # text that is not UTF-8
    if choice == 5:
        return ws_frame(0x1, body[:20], fin=False) + ws_frame(0x8, b"", fin=False)
    if choice == 6:
        frame = bytearray(ws_frame(0x1, body))
        frame[1] = 0x80 | 127
        return bytes(frame[:2]) + struct.pack("!Q", 2**63 - 1) + bytes(frame[2:])
    if choice == 7:
        return ws_frame(0x8, struct.pack("!H", rng.choice([0, 999, 1004, 1005, 1006, 5000])))
    return mutate(rng, ws_frame(0x1, body))


async def raw_ws_case(
    port: int, case: str, upgrade: bytes, frame: bytes, findings: Findings
) -> None:
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError as err:
        findings.bad.append(f"{case}: cannot connect: {err}")
        return
    try:
        writer.write(upgrade)
        head = await read_head(reader, 5.0)
        match = STATUS_LINE.match(head)
        if match is None or match[1] != b"101":
            if match is not None:
                findings.status(case, int(match[1]))
            return
        received = head.partition(b"\r\n\r\n")[2]
        with contextlib.suppress(OSError):
            writer.write(frame)
            await writer.drain()
        received += await read_for(reader, 0.5)
        with contextlib.suppress(OSError):
            writer.write(ws_frame(0x8, struct.pack("!H", 1000)))
            await writer.drain()
        received += await read_for(reader, 1.0)
        findings.closed(case, server_close_code(received))
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def read_for(reader: asyncio.StreamReader, within: float) -> bytes:
    data = b""
    with contextlib.suppress(TimeoutError, OSError):
        async with asyncio.timeout(within):
            while chunk := await reader.read(65536):
                data += chunk
    return data


# -- 3. hostile messages through a WebSocket client ------------------------------------------


def hostile_value(rng: random.Random) -> Any:
    return rng.choice(
        [
            "123.5",
            True,
            None,
            [],
            {},
            2**63,
            -(2**63) - 1,
            10**30,
            1e308,
            -1,
            "",
            "x" * 5000,
            "\n\x1b[31mCRITICAL",
            "0001-01-01T00:00:00+05:00",
            "9999-12-31T23:59:59-14:00",
            1_700_000_000,
            {"value": {}},
        ]
    )


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def hostile_message(rng: random.Random) -> str | bytes:
    body = reading(rng.randrange(10_000))
    choice = rng.randrange(10)
    if choice == 0:
        return nested(rng.choice([100, 1000, 100_000]))
    if choice == 1:
        return '{"seq": ' + "9" * rng.choice([20, 400, 4000]) + ', "ts": "2026-11-26T05:00:00Z"}'
    if choice == 2:
        return bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))  # binary
    if choice == 3:
        items: list[Any] = [reading(rng.randrange(10_000)) for _ in range(rng.randint(1, 20))]
        for index in rng.sample(range(len(items)), k=rng.randint(1, len(items))):
            items[index] = rng.choice(
                [hostile_value(rng), {**items[index], "ts": hostile_value(rng)}]
            )
        return json.dumps({"type": "batch", "items": items})
    if choice == 4:
        return mutate(rng, json.dumps(body).encode()).decode("utf-8", "replace")
    if choice == 5:
        body["extra"] = {rng.choice(["a\nCRITICAL b", "..", "x" * 300, ""]): hostile_value(rng)}
        return json.dumps(body)
    if choice == 6:
        body["type"] = rng.choice(["batch", "reading", "time_request", "health", 7, None, "x"])
        return json.dumps(body)
    key = rng.choice(["seq", "ts", "grid", "battery", "inverter", "pv", "load", "type"])
    section = body.get(key)
    if isinstance(section, dict) and section and rng.random() < 0.5:
        section[rng.choice(list(section))] = hostile_value(rng)
    else:
        body[key] = hostile_value(rng)
    return json.dumps(body)


async def device_messages(
    served: ServedHub, token: str, rng: random.Random, count: int, findings: Findings
) -> None:
    """``count`` hostile messages on the device door, reconnecting whenever it is closed."""
    sent = 0
    while sent < count:
        try:
            client = await connect(
                served.ws(f"/ws/device/{DEVICE_ID}"),
                additional_headers={"Authorization": f"Bearer {token}"},
                max_size=None,
                open_timeout=10,
            )
        except (OSError, InvalidHandshake) as err:
            findings.bad.append(f"device door #{sent}: cannot connect: {err}")
            return
        drain = asyncio.create_task(drain_frames(client), name="fuzz.drain")
        try:
            while sent < count:
                message = hostile_message(rng)
                findings.cases["device messages"] += 1
                sent += 1
                await client.send(message)
        except ConnectionClosed:
            pass
        finally:
            await close_client(client, within=5)
            drain.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await drain
        rcvd = client.protocol.close_rcvd
        findings.closed(f"device door message #{sent}", rcvd.code if rcvd else None)


async def drain_frames(client: ClientConnection) -> None:
    with contextlib.suppress(ConnectionClosed):
        async for _ in client:
            pass


async def dashboard_messages(
    served: ServedHub, viewer: str, rng: random.Random, count: int, findings: Findings
) -> None:
    for index in range(count):
        case = f"dashboard door message #{index}"
        findings.cases["dashboard messages"] += 1
        try:
            async with connect(
                served.ws(f"/ws/dashboard/{DEVICE_ID}"),
                additional_headers={"Authorization": f"Bearer {viewer}"},
                open_timeout=10,
            ) as client:
                await client.send(hostile_message(rng))
                with contextlib.suppress(TimeoutError, ConnectionClosed):
                    await asyncio.wait_for(client.recv(), 0.2)
        except ConnectionClosed as err:
            findings.closed(case, err.rcvd.code if err.rcvd else None)
            continue
        except InvalidHandshake as err:
            findings.bad.append(f"{case}: {err}")
            continue
        rcvd = client.protocol.close_rcvd
        findings.closed(case, rcvd.code if rcvd else None)


# -- 4. the HTTP API with mutated paths and parameters --------------------------------------


def api_request(rng: random.Random) -> tuple[str, dict[str, str]]:
    def text() -> str:
        value = rng.choice(
            [
                "2026-11-26T05:00:00Z",
                "0001-01-01T00:00:00+05:00",
                "9999-12-31T23:59:59-14:00",
                "0001-01-01T00:30:00Z",
                "60s",
                "1000",
                "-1",
                "9" * 5000,
                "asc",
                "desc",
                "",
                "NaN",
                "1e308",
                "\x00",
                "%00",
            ]
        )
        return mutate(rng, value.encode(), rounds=rng.randint(0, 2)).decode("utf-8", "replace")

    device = quote(
        rng.choice([DEVICE_ID, "..", ".", "x" * 70, "a b", "%00", "é", "dev\n", "%2e%2e"]),
        safe="%.",
    )
    path = rng.choice(
        [
            f"/api/devices/{device}/readings",
            "/api/devices",
            f"/api/devices/{device}",
            f"/devices/{device}",
            f"/static/{device}",
            "/api/openapi.json",
            "/readyz",
        ]
    )
    names = ["start", "end", "limit", "bucket", "order", "token", text()]
    params = {rng.choice(names): text() for _ in range(rng.randint(0, 5))}
    return path, params


async def api_case(
    http: httpx.AsyncClient, case: str, path: str, params: dict[str, str], findings: Findings
) -> None:
    try:
        answer = await http.get(path, params=params)
    except httpx.HTTPError as err:
        findings.bad.append(f"{case}: {type(err).__name__}: {err}")
        return
    findings.status(case, answer.status_code)


# -- the run -------------------------------------------------------------------------------------


async def bounded(
    cases: list[tuple[str, Callable[[], Awaitable[None]]]], findings: Findings
) -> None:
    """Every case, ``CONCURRENCY`` at a time; one that hangs is a finding, not a stall."""
    slots = asyncio.Semaphore(CONCURRENCY)

    async def run(name: str, case: Callable[[], Awaitable[None]]) -> None:
        async with slots:
            findings.cases[name.split(" #")[0]] += 1
            try:
                async with asyncio.timeout(20):
                    await case()
            except TimeoutError:
                findings.bad.append(f"{name}: no end within 20 s")

    await asyncio.gather(*(run(name, case) for name, case in cases))


async def test_hostile_bytes_at_every_door_leave_the_hub_sound(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    data = tmp_path / "data"
    device_token = add_token(data, DEVICE_ID)
    viewer = "viewer-" + secrets.token_urlsafe(24)
    findings = Findings()
    with served_hub(
        data,
        log_path=tmp_path / "hub.log",
        env={"EMS_VIEWER_TOKEN": viewer, "EMS_VIEWER_GUESSES": "0"},
        verbose=True,
    ) as served:
        began = time.monotonic()
        port = served.port

        bases = base_requests(device_token, viewer)
        raw: list[tuple[str, Callable[[], Awaitable[None]]]] = []
        for index in range(RAW_HTTP_CASES):
            payload = mutate(rng, rng.choice(bases))
            name = f"raw http #{index} {payload[:80]!r}"
            raw.append((name, lambda p=payload, n=name: raw_http_case(port, n, p, findings)))
        await bounded(raw, findings)

        frames: list[tuple[str, Callable[[], Awaitable[None]]]] = []
        for index in range(RAW_WS_CASES):
            upgrade = rng.choice([bases[-3], bases[-1]])
            frame = hostile_frame(rng)
            name = f"raw ws frame #{index} {frame[:24]!r}"
            frames.append(
                (name, lambda u=upgrade, f=frame, n=name: raw_ws_case(port, n, u, f, findings))
            )
        await bounded(frames, findings)

        await device_messages(served, device_token, rng, DEVICE_MESSAGES, findings)
        await dashboard_messages(served, viewer, rng, DASHBOARD_MESSAGES, findings)

        api: list[tuple[str, Callable[[], Awaitable[None]]]] = []
        async with httpx.AsyncClient(
            base_url=served.http, headers={"Authorization": f"Bearer {viewer}"}, timeout=20
        ) as http:
            for index in range(API_CASES):
                path, params = api_request(rng)
                name = f"api #{index} {path} {params}"[:200]
                api.append(
                    (name, lambda p=path, q=params, n=name: api_case(http, n, p, q, findings))
                )
            await bounded(api, findings)
            health = await http.get("/healthz")
        elapsed = time.monotonic() - began
        log = served.log()

    total = sum(findings.cases.values())
    print(
        f"seed {SEED}: {total} cases in {elapsed:.0f} s {dict(findings.cases)}; "
        f"statuses {dict(findings.statuses)}; close codes {dict(findings.close_codes)}"
    )
    assert health.status_code == 200, "the hub is not alive after the run"
    assert findings.cases == {
        "raw http": RAW_HTTP_CASES,
        "raw ws frame": RAW_WS_CASES,
        "device messages": DEVICE_MESSAGES,
        "dashboard messages": DASHBOARD_MESSAGES,
        "api": API_CASES,
    }, f"seed {SEED}: not every case ran"
    assert not findings.bad, f"seed {SEED}:\n" + "\n".join(findings.bad[:40])
    assert "Traceback" not in log, log[log.index("Traceback") - 2000 :][:6000]
    errors = [line for line in log.splitlines() if " ERROR " in line or " CRITICAL " in line]
    assert not errors, "\n".join(errors[:20])
    for name, secret in [("device token", device_token), ("viewer token", viewer)]:
        leaked = [line for line in log.splitlines() if secret in line]
        assert not leaked, f"the {name} is in the hub's log:\n" + "\n".join(leaked[:5])
