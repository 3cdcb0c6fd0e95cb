"""TLS to a real mosquitto: verified against the configured CA, refused with another CA
unless ``insecure`` is asked for."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import pytest

from streamguard.bus.publisher import PublisherState
from streamguard.bus.sink import MqttAlerts
from streamguard.config.bus import MqttConfig, MqttTlsConfig
from streamguard.config.ingest import BackoffConfig
from streamguard.config.policy import ProfileConfig
from streamguard.moderation.alerting import Alerting
from streamguard.moderation.outcomes import Outcomes
from streamguard.state.db import Database
from streamguard.testing.alerts import risky, segment, stream
from streamguard.testing.broker import Mosquitto
from tests.support.tls import Certificates, make_certificates


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def tls_broker(
    tmp_path_factory: pytest.TempPathFactory, certificates: Certificates
) -> Iterator[Mosquitto]:
    broker = Mosquitto(tmp_path_factory.mktemp("mosquitto-tls"))
    text = broker.config.read_text(encoding="utf-8")
    broker.config.write_text(
        text
        + f"cafile {certificates.ca}\n"
        + f"certfile {certificates.server_cert}\n"
        + f"keyfile {certificates.server_key}\n",
        encoding="utf-8",
    )
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def bus(port: int, tls: MqttTlsConfig) -> MqttConfig:
    return MqttConfig(
        host="127.0.0.1",
        port=port,
        topic_prefix="tls",
        tls=tls,
        timeout=2,
        reconnect=BackoffConfig(initial=0.1, maximum=0.3),
    )


async def test_alerts_over_verified_tls(
    tls_broker: Mosquitto, certificates: Certificates, tmp_path: Path
) -> None:
    params = aiomqtt.TLSParameters(ca_certs=str(certificates.ca))
    async with aiomqtt.Client("127.0.0.1", tls_broker.port, tls_params=params) as consumer:
        await consumer.subscribe("tls/v1/alerts/+", qos=1)
        config = bus(tls_broker.port, MqttTlsConfig(ca_file=certificates.ca))
        profiles = {"default": ProfileConfig()}
        async with (
            Database(tmp_path / "state.db") as db,
            MqttAlerts(config, db, "i-1") as sink,
            Alerting(profiles, sink, instance_id="i-1") as alerting,
        ):
            seg = segment()
            (alert,) = await Outcomes(alerting.profiles, alerting).handle(
                stream(), seg, risky(seg), None
            )
            async with asyncio.timeout(30):
                message = await anext(aiter(consumer.messages))
    assert alert.alert_id.encode() in message.payload


# paho-mqtt 2.2 leaves the SSLSocket of a failed handshake for the garbage collector
# (Client._ssl_wrap_socket does not close it); its ResourceWarning is that leak, not ours.
@pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <ssl.SSLSocket:pytest.PytestUnraisableExceptionWarning"
)
async def test_a_broker_certificate_from_another_ca_is_refused(
    tls_broker: Mosquitto, certificates: Certificates, tmp_path: Path
) -> None:
    wrong = bus(tls_broker.port, MqttTlsConfig(ca_file=certificates.other_ca))
    async with Database(tmp_path / "a.db") as db, MqttAlerts(wrong, db, "i-1") as sink:
        async with asyncio.timeout(30):
            await sink.publisher.wait_state(PublisherState.RECONNECTING)
        assert "CERTIFICATE_VERIFY_FAILED" in (sink.publisher.last_error or "")
        assert not sink.health().ok
    insecure = bus(tls_broker.port, MqttTlsConfig(ca_file=certificates.other_ca, insecure=True))
    async with Database(tmp_path / "b.db") as db, MqttAlerts(insecure, db, "i-1") as sink:
        async with asyncio.timeout(30):
            await sink.publisher.wait_state(PublisherState.CONNECTED)
    gc.collect()  # collect the leaked sockets while this test's warning filter applies
