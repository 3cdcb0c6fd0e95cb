"""Tencent Cloud AMS 2020-12-29 API client: TC3 signing, models, errors, rate limits.

It knows requests and answers, nothing of segments or streams.
"""

from streamguard.tencentcloud.client import AmsClient, RetryPolicy
from streamguard.tencentcloud.errors import (
    AmsError,
    AmsInvalidResponse,
    AmsNetworkError,
    AmsRetryableError,
)
from streamguard.tencentcloud.signing import Credentials

__all__ = [
    "AmsClient",
    "AmsError",
    "AmsInvalidResponse",
    "AmsNetworkError",
    "AmsRetryableError",
    "Credentials",
    "RetryPolicy",
]
