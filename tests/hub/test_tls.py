"""``ems hub serve --tls-cert --tls-key``: the hub serves https:// and wss:// itself."""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.hub.served_hub import add_token, hub_env, served_hub
from tests.support.hub import reading, recv_ack_seqs
from tests.tls_ca import make_ca


async def test_the_hub_serves_tls_with_its_certificate(tmp_path: Path) -> None:
    certs = make_ca(tmp_path)
    data = tmp_path / "data"
    token = add_token(data, "ems_tls")
    trust = ssl.create_default_context(cafile=certs.ca)
    with served_hub(
        data,
        "--tls-cert",
        str(certs.cert),
        "--tls-key",
        str(certs.key),
        log_path=tmp_path / "hub.log",
    ) as hub:
        assert hub.http.startswith("https://")
        async with httpx.AsyncClient(verify=trust) as http:
            assert (await http.get(f"{hub.http}/healthz")).status_code == 200
        async with httpx.AsyncClient() as http:  # the system's CAs: not this one
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await http.get(f"{hub.http}/healthz")
        async with connect(
            hub.ws("/ws/device/ems_tls"),
            additional_headers={"Authorization": f"Bearer {token}"},
            ssl=trust,
        ) as device:
            await device.send(json.dumps(reading(1)))
            assert await recv_ack_seqs(device, {1}) == {1}
    assert "Traceback" not in hub.log()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tls-cert", "cert.pem"], "--tls-cert and --tls-key go together"),
        (["--tls-cert", "nowhere.pem", "--tls-key", "nowhere.key"], "--tls-cert: no such file"),
    ],
)
def test_tls_flags_are_checked_before_serving(
    tmp_path: Path, args: list[str], message: str
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ems", "hub", "serve", "--port", "0", *args],
        capture_output=True,
        text=True,
        env=hub_env(tmp_path / "data"),
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].startswith(f"ems: {message}")
