"""The agent over wss:// to a hub serving TLS itself, with a CA made by the test.

Verification is always on: with ``[hub] ca_file`` naming the private CA the
agent streams; without it (the system's CAs only) it refuses the hub's
certificate, says why in its log, and keeps every reading buffered.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from edge.agent import Agent
from edge.config import ConfigError, EdgeConfig, parse_config, tls_context
from edge.outbox import read_status
from simulation.modbus_server import DeviceServer
from telemetry import format_ts
from tests.edge.agent_site import OPTIONS, site_config
from tests.hub.served_hub import ServedHub, add_token, served_hub
from tests.support.polling import until
from tests.tls_ca import HubCertificates, make_ca

DEVICE_ID = "agent_tls"


@pytest.fixture
def certificates(tmp_path: Path) -> HubCertificates:
    directory = tmp_path / "pki"
    directory.mkdir()
    return make_ca(directory)


@pytest.fixture
def tls_hub(tmp_path: Path, certificates: HubCertificates) -> Iterator[tuple[ServedHub, str]]:
    data = tmp_path / "hub"
    token = add_token(data, DEVICE_ID)
    with served_hub(
        data,
        "--tls-cert",
        str(certificates.cert),
        "--tls-key",
        str(certificates.key),
        log_path=tmp_path / "hub.log",
    ) as hub:
        assert hub.scheme == "https"
        yield hub, token


def tls_config(
    tmp_path: Path, hub: ServedHub, modbus_port: int, ca_file: Path | None
) -> EdgeConfig:
    text = site_config(tmp_path, hub.ws(""), modbus_port, DEVICE_ID)
    if ca_file is not None:
        url_line = f'url = "{hub.ws("")}"\n'
        assert url_line in text
        text = text.replace(url_line, url_line + f'ca_file = "{ca_file}"\n')
    return parse_config(text, base_dir=tmp_path)


async def stored_count(hub: ServedHub, ca: Path) -> int:
    now = datetime.now(UTC)
    params = {"start": format_ts(now - timedelta(hours=1)), "end": format_ts(now)}
    async with httpx.AsyncClient(verify=ssl.create_default_context(cafile=ca)) as http:
        answer = await http.get(f"{hub.http}/api/devices/{DEVICE_ID}/readings", params=params)
    answer.raise_for_status()
    return len(answer.json()["readings"])


async def test_an_agent_with_ca_file_streams_to_a_tls_hub(
    site: tuple[DeviceServer, dict[str, dict[str, object]]],
    tmp_path: Path,
    tls_hub: tuple[ServedHub, str],
    certificates: HubCertificates,
) -> None:
    served, _ = site
    hub, token = tls_hub
    config = tls_config(tmp_path, hub, served.tcp_port, certificates.ca)
    assert config.hub.ca_file == certificates.ca
    agent = Agent(config, token=token, options=OPTIONS)
    task = asyncio.create_task(agent.run(), name="test.agent")
    try:
        await until(lambda: agent.uplink is not None and agent.uplink.status().acked >= 10)
    finally:
        agent.stop()
        async with asyncio.timeout(15):
            await task
    assert await stored_count(hub, certificates.ca) >= 10
    assert read_status(config.buffer.path).depth == 0


async def test_without_ca_file_the_self_signed_hub_is_refused_and_readings_stay_buffered(
    site: tuple[DeviceServer, dict[str, dict[str, object]]],
    tmp_path: Path,
    tls_hub: tuple[ServedHub, str],
    certificates: HubCertificates,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    served, _ = site
    hub, token = tls_hub
    config = tls_config(tmp_path, hub, served.tcp_port, None)
    agent = Agent(config, token=token, options=OPTIONS)
    task = asyncio.create_task(agent.run(), name="test.agent")
    try:
        await until(lambda: agent.sampler is not None and agent.sampler.readings >= 10)
        await until(lambda: "TLS certificate was not accepted" in caplog.text)
        assert agent.uplink is not None
        assert not agent.uplink.status().connected
    finally:
        agent.stop()
        async with asyncio.timeout(15):
            await task
    refusals = [r for r in caplog.records if "TLS certificate was not accepted" in r.getMessage()]
    assert refusals[0].levelno == logging.ERROR
    assert "CERTIFICATE_VERIFY_FAILED" in refusals[0].getMessage()
    assert read_status(config.buffer.path).depth >= 10  # nothing lost: all still buffered
    assert await stored_count(hub, certificates.ca) == 0


def test_ca_file_is_refused_with_ws_and_an_unreadable_one_is_a_config_error(
    tmp_path: Path,
) -> None:
    base = site_config(tmp_path, "ws://127.0.0.1:1", 1, DEVICE_ID)
    with pytest.raises(ConfigError, match=r"hub\.ca_file: only used with a wss:// hub\.url"):
        parse_config(
            base.replace('url = "ws://127.0.0.1:1"\n', 'url = "ws://127.0.0.1:1"\nca_file = "x"\n'),
            base_dir=tmp_path,
        )
    secure = site_config(tmp_path, "wss://127.0.0.1:1", 1, DEVICE_ID).replace(
        'url = "wss://127.0.0.1:1"\n', 'url = "wss://127.0.0.1:1"\nca_file = "missing.pem"\n'
    )
    config = parse_config(secure, base_dir=tmp_path)
    assert config.hub.ca_file == tmp_path / "missing.pem"
    with pytest.raises(ConfigError, match=r"hub\.ca_file: cannot load"):
        tls_context(config.hub)
