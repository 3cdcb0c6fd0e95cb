"""streamguard: attach to live rooms' audio, moderate it in segments, alert on risk."""

from streamguard.config import Config, load_config
from streamguard.engine.base import Engine
from streamguard.engine.verdict import KeywordHit, Outcome, Suggestion, Verdict
from streamguard.errors import (
    AmsError,
    BusError,
    ConfigError,
    EncodeError,
    EngineError,
    ProtocolNotAllowed,
    SourceError,
    SourceTimeout,
    StreamGuardError,
)
from streamguard.ingest.segment import Segment, SegmentFlag

__all__ = [
    "AmsError",
    "BusError",
    "Config",
    "ConfigError",
    "EncodeError",
    "Engine",
    "EngineError",
    "KeywordHit",
    "Outcome",
    "ProtocolNotAllowed",
    "Segment",
    "SegmentFlag",
    "SourceError",
    "SourceTimeout",
    "StreamGuardError",
    "Suggestion",
    "Verdict",
    "load_config",
]

__version__ = "0.1.0"
