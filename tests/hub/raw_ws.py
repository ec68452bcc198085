"""WebSocket at the byte level, for tests that send what no well-behaved client would.

A client frame (masked, any opcode, bits and length), the close code in what
the hub sent back (RFC 6455, 5.2 and 5.5.1), and an HTTP head read from a raw socket.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import re
import secrets
import struct

STATUS_LINE = re.compile(rb"HTTP/1\.[01] (\d{3})")


def upgrade_request(path: str, *headers: str) -> bytes:
    """A valid opening handshake for ``path`` with extra ``Name: value`` headers."""
    key = base64.b64encode(secrets.token_bytes(16)).decode()
    lines = [
        f"GET {path} HTTP/1.1",
        "Host: hub",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
        *headers,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def read_head(reader: asyncio.StreamReader, within: float) -> bytes:
    """What the hub answered, up to the end of its headers (or EOF, or ``within``)."""
    data = b""
    with contextlib.suppress(TimeoutError, OSError):
        async with asyncio.timeout(within):
            while b"\r\n\r\n" not in data and len(data) < 65536:
                chunk = await reader.read(4096)
                if not chunk:
                    break
                data += chunk
    return data


def ws_frame(opcode: int, payload: bytes, *, fin: bool = True, mask: bool = True) -> bytes:
    head = bytearray([(0x80 if fin else 0) | opcode])
    length = len(payload)
    mask_bit = 0x80 if mask else 0
    if length < 126:
        head.append(mask_bit | length)
    elif length < 65536:
        head.append(mask_bit | 126)
        head += struct.pack("!H", length)
    else:
        head.append(mask_bit | 127)
        head += struct.pack("!Q", length)
    if not mask:
        return bytes(head) + payload
    key = secrets.token_bytes(4)
    return bytes(head) + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def server_close_code(data: bytes) -> int | None:
    """The code of the first close frame in what the hub sent (its frames are unmasked)."""
    at = 0
    while at + 2 <= len(data):
        opcode, length = data[at] & 0x0F, data[at + 1] & 0x7F
        at += 2
        if length == 126:
            length, at = struct.unpack("!H", data[at : at + 2])[0], at + 2
        elif length == 127:
            length, at = struct.unpack("!Q", data[at : at + 8])[0], at + 8
        payload = data[at : at + length]
        at += length
        if opcode == 0x8:
            code: int = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
            return code
    return None
