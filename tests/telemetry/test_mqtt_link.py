"""The MQTT link on its own, against a private Mosquitto: TLS verified, a full queue drops
its oldest, retained messages survive a broker restart (telemetry/mqtt_link.py)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from telemetry.backoff import BackoffPolicy
from telemetry.mqtt_link import LinkSettings, MqttLink
from tests.support.mqtt import Mosquitto, subscribed
from tests.support.polling import until
from tests.tls_ca import make_ca

FAST = BackoffPolicy(0.1, 0.5)


@contextlib.asynccontextmanager
async def running(link: MqttLink) -> AsyncIterator[MqttLink]:
    task = asyncio.create_task(link.run(), name="test.mqtt.link")
    try:
        yield link
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


# paho-mqtt 2.2.0 (Client._ssl_wrap_socket) leaves the socket open when the TLS
# handshake fails, as it must here for the untrusted link: the SSLSocket is reported
# unclosed when dropped. Not ours to close (the socket never reaches aiomqtt or us).
@pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <ssl.SSLSocket:pytest.PytestUnraisableExceptionWarning"
)
async def test_mqtts_verifies_the_broker_with_the_given_ca(tmp_path: Path) -> None:
    certs = make_ca(tmp_path)
    broker = Mosquitto(tmp_path, tls=(certs.cert, certs.key))
    broker.start()
    try:
        assert broker.tls_port is not None
        trusted = MqttLink(
            LinkSettings("127.0.0.1", broker.tls_port, tls=True, ca_file=certs.ca, backoff=FAST),
            availability_topic="t/trusted/status",
        )
        # The system's CAs do not know the test's CA: the link must refuse the broker.
        untrusted = MqttLink(
            LinkSettings("127.0.0.1", broker.tls_port, tls=True, backoff=FAST),
            availability_topic="t/untrusted/status",
        )
        async with (
            subscribed(broker.port, "t/#") as subscriber,
            running(trusted),
            running(untrusted),
        ):
            trusted.offer("t/value", "42.0")
            await until(lambda: subscriber.last("t/value") == "42.0")
            assert subscriber.last("t/trusted/status") == "online"
            await until(lambda: untrusted.counters.failures >= 2)
            assert untrusted.counters.connects == 0
            assert subscriber.last("t/untrusted/status") is None
    finally:
        broker.kill()


async def test_a_full_queue_drops_the_oldest_and_retained_messages_come_back(
    tmp_path: Path,
) -> None:
    broker = Mosquitto(tmp_path)
    link = MqttLink(
        LinkSettings("127.0.0.1", broker.port, max_queued=3, backoff=FAST),
        availability_topic="t/link/status",
    )
    for n in range(5):  # no broker yet: only the newest three stay
        link.offer("t/n", str(n))
    link.retain("t/config", "{}")
    assert (link.queued, link.counters.dropped) == (3, 2)
    broker.start()
    try:
        async with subscribed(broker.port, "t/#") as subscriber, running(link):
            await until(
                lambda: (
                    [m.payload for m in subscriber.by_topic.get("t/n", [])]
                    == [
                        "2",
                        "3",
                        "4",
                    ]
                )
            )
            await until(lambda: subscriber.last("t/config") == "{}")
            await asyncio.to_thread(broker.restart)  # no persistence: nothing retained
            await until(lambda: link.counters.connects >= 2, within=60)
        async with subscribed(broker.port, "t/#") as fresh:
            # Sent again on the new connection, retained by the new broker.
            await until(lambda: fresh.last("t/config") == "{}")
    finally:
        broker.kill()
