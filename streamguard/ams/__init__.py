"""Tencent Cloud AMS 2020-12-29: signed client, clip delivery, task tracking, the engine.

``AmsEngine`` is the ``Engine``; ``AmsClient`` speaks the five actions; ``ClipServer``
serves segment clips to AMS under signed URLs and receives its callbacks. The emulator
lives in ``streamguard.ams.emulator``.
"""

from streamguard.ams.client import AmsClient, RetryPolicy
from streamguard.ams.delivery import ClipServer
from streamguard.ams.engine import AmsEngine, credentials_from_config
from streamguard.ams.errors import AmsError, AmsNetworkError, AmsRetryableError
from streamguard.ams.signing import Credentials
from streamguard.ams.tracking import SegmentState, TaskStore

__all__ = [
    "AmsClient",
    "AmsEngine",
    "AmsError",
    "AmsNetworkError",
    "AmsRetryableError",
    "ClipServer",
    "Credentials",
    "RetryPolicy",
    "SegmentState",
    "TaskStore",
    "credentials_from_config",
]
