"""streamguard: attach to live rooms' audio, moderate it in segments, alert on risk."""

from streamguard.config import Config, load_config
from streamguard.core.errors import (
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
from streamguard.core.segment import Segment, SegmentFlag
from streamguard.core.verdict import KeywordHit, Outcome, Suggestion, Verdict
from streamguard.core.version import __version__ as __version__
from streamguard.engines.base import Engine

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
