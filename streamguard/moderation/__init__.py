"""Moderation: from a verdict to a decision, an incident, evidence and the alert to publish.

``decide`` gives a verdict its risk under a profile; ``Alerting`` keeps incidents and
evidence and emits alerts to an ``AlertSink`` (implemented in ``streamguard.bus``).
"""

from streamguard.moderation.alert import SCHEMA_VERSION, Alert, alert_schema
from streamguard.moderation.alerting import Alerting
from streamguard.moderation.evidence import Evidence, EvidenceStore
from streamguard.moderation.incidents import Incident, IncidentEvent, IncidentTracker
from streamguard.moderation.policy import Decision, RiskLevel, decide

__all__ = [
    "SCHEMA_VERSION",
    "Alert",
    "Alerting",
    "Decision",
    "Evidence",
    "EvidenceStore",
    "Incident",
    "IncidentEvent",
    "IncidentTracker",
    "RiskLevel",
    "alert_schema",
    "decide",
]
