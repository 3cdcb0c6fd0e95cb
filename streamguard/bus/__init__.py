"""The message bus: the durable outbox published to MQTT (QoS 1), topics and retained status.

``MqttAlerts`` (or ``JsonLinesAlerts`` without a broker) is the ``AlertSink``::

    async with Database(path) as db, MqttAlerts(config.mqtt, db, instance) as sink:
        await sink.emit(alert)
"""

from streamguard.bus.publisher import Publisher, PublisherState
from streamguard.bus.sink import BusHealth, JsonLinesAlerts, MqttAlerts

__all__ = ["BusHealth", "JsonLinesAlerts", "MqttAlerts", "Publisher", "PublisherState"]
