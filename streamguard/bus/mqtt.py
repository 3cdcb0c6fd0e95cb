"""How streamguard reaches the broker: a new ``aiomqtt.Client`` per connection attempt."""

from __future__ import annotations

import socket
import ssl

import aiomqtt

from streamguard.config.bus import MqttConfig

__all__ = ["mqtt_client"]


def mqtt_client(
    config: MqttConfig,
    *,
    identifier: str | None,
    protocol: aiomqtt.ProtocolVersion,
    will: aiomqtt.Will | None = None,
) -> aiomqtt.Client:
    """A fresh client for one connection attempt, with the configured credentials and TLS."""
    tls_params = None
    tls_insecure = None
    if config.tls is not None:
        tls = config.tls
        tls_params = aiomqtt.TLSParameters(
            ca_certs=str(tls.ca_file) if tls.ca_file else None,
            certfile=str(tls.cert_file) if tls.cert_file else None,
            keyfile=str(tls.key_file) if tls.key_file else None,
            cert_reqs=ssl.CERT_NONE if tls.insecure else ssl.CERT_REQUIRED,
        )
        tls_insecure = tls.insecure
    return aiomqtt.Client(
        config.host,
        config.port,
        username=config.username,
        password=config.password.get_secret_value() if config.password else None,
        identifier=identifier,
        protocol=protocol,
        will=will,
        timeout=config.timeout,
        keepalive=config.keepalive,
        max_inflight_messages=config.inflight,
        tls_params=tls_params,
        tls_insecure=tls_insecure,
        # Small QoS 1 packets otherwise wait for Nagle's algorithm (~40 ms per window).
        socket_options=((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),),
    )
