"""Alerts: policy, incidents, the alert JSON, the durable outbox and the MQTT publisher.

Use ``Alerting`` in front of an ``AlertSink`` (``MqttAlerts`` or ``JsonLinesAlerts``)::

    async with Database(path) as db, MqttAlerts(config.mqtt, db, instance) as sink:
        async with Alerting(config.profiles, sink, instance_id=instance) as alerting:
            await alerting.handle(stream, segment, verdict, clip)
"""

from streamguard.alerts.alert import SCHEMA_VERSION, Alert, alert_schema
from streamguard.alerts.alerting import Alerting
from streamguard.alerts.evidence import Evidence, EvidenceStore
from streamguard.alerts.incidents import Incident, IncidentEvent, IncidentTracker
from streamguard.alerts.outbox import Outbox
from streamguard.alerts.policy import Decision, RiskLevel, decide
from streamguard.alerts.publisher import Publisher, PublisherState
from streamguard.alerts.sink import AlertSink, BusHealth, JsonLinesAlerts, MqttAlerts
from streamguard.alerts.status import StreamEvent, StreamEventKind, StreamState, StreamStatus
from streamguard.alerts.topics import Topics, topic_level

__all__ = [
    "SCHEMA_VERSION",
    "Alert",
    "AlertSink",
    "Alerting",
    "BusHealth",
    "Decision",
    "Evidence",
    "EvidenceStore",
    "Incident",
    "IncidentEvent",
    "IncidentTracker",
    "JsonLinesAlerts",
    "MqttAlerts",
    "Outbox",
    "Publisher",
    "PublisherState",
    "RiskLevel",
    "StreamEvent",
    "StreamEventKind",
    "StreamState",
    "StreamStatus",
    "Topics",
    "alert_schema",
    "decide",
    "topic_level",
]
