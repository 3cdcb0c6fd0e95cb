"""The embedded, offline moderation engine: speech gate, whisper, keyword libraries."""

from streamguard.engines.gate import SpeechGate, SpeechRegion, SpeechReport
from streamguard.engines.local.engine import LocalEngine
from streamguard.engines.local.keywords import (
    KeywordLibrary,
    KeywordMatcher,
    LibraryError,
    LibraryKind,
    LibrarySet,
    load_library_file,
)
from streamguard.engines.local.recognizer import Recognizer, Transcript
from streamguard.engines.local.stats import EngineCounters, HealthEvent, HealthKind

__all__ = [
    "EngineCounters",
    "HealthEvent",
    "HealthKind",
    "KeywordLibrary",
    "KeywordMatcher",
    "LibraryError",
    "LibraryKind",
    "LibrarySet",
    "LocalEngine",
    "Recognizer",
    "SpeechGate",
    "SpeechRegion",
    "SpeechReport",
    "Transcript",
    "load_library_file",
]
