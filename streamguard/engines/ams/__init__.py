"""The AMS engine adapter: segments to AMS tasks and back to verdicts.

``AmsEngine`` is the ``Engine``; ``ClipServer`` serves segment clips to AMS under signed URLs
and receives its callbacks. The API client is ``streamguard.tencentcloud``; the emulator
is ``streamguard.emulator``.
"""

from streamguard.engines.ams.credentials import credentials_from_config
from streamguard.engines.ams.delivery import ClipServer
from streamguard.engines.ams.engine import AmsEngine
from streamguard.engines.ams.live import JudgedSlice, LiveEngine, LiveStream

__all__ = [
    "AmsEngine",
    "ClipServer",
    "JudgedSlice",
    "LiveEngine",
    "LiveStream",
    "credentials_from_config",
]
