"""How an IMS error is taken (IMS spec §5): the AMS client's error tree, IMS's meanings.

IMS answers with the same envelope as AMS, so its errors are the same exceptions
(``AmsError`` and its subclasses, see ``errors``); the codes differ. These sort them:

- ``retry_ims``: worth another attempt: ``InternalError*``,
  ``ResourceUnavailable.ModelCallFailed`` / ``InQueueError``, a lost answer, and
  ``ResourceUnavailable.ImageDownloadError`` once (then send the bytes instead). Throttling
  and expired signatures are not in it: the transport (``AmsClient``) retries those itself;
- ``bad_image``: the image itself is refused (too small, undecodable, too large, bad
  aspect): another attempt meets the same answer, the picture is unjudgeable;
- ``operator_problem``: the account cannot use IMS (not activated, in arrears) or the
  credentials are wrong: an alert for the operator, never retried.
"""

from __future__ import annotations

from streamguard.core.errors import AmsError
from streamguard.tencentcloud.errors import AmsNetworkError, unprocessed

__all__ = [
    "BAD_IMAGE_CODES",
    "DOWNLOAD_FAILED",
    "bad_image",
    "operator_problem",
    "retry_ims",
]

DOWNLOAD_FAILED = "ResourceUnavailable.ImageDownloadError"
BAD_IMAGE_CODES = frozenset(
    {
        "InvalidParameter.ImageAspectRatioTooLarge",
        "InvalidParameter.ImageDataTooSmall",
        "InvalidParameter.ImageSizeTooSmall",
        "InvalidParameter.InvalidImageContent",
        "InvalidParameterValue.EmptyImageContent",
        "InvalidParameterValue.ImageSizeTooSmall",
        "InvalidParameterValue.InvalidContent",
        "InvalidParameterValue.InvalidFileContentSize",
        "InvalidParameterValue.InvalidImageContent",
        "ResourceUnavailable.InvalidImageContent",
    }
)
"""The codes that mean "this image cannot be judged" (two say "too small", three "bad
content": matched as a set, spec §6.8)."""
_SERVER_TROUBLE = (
    "InternalError",
    "ServiceUnavailable",
    "ResourceUnavailable.ModelCallFailed",
    "ResourceUnavailable.InQueueError",
)


def _in(code: str, families: tuple[str, ...]) -> bool:
    return any(code == family or code.startswith(family + ".") for family in families)


def bad_image(exc: AmsError) -> bool:
    """True when IMS refused the image itself (no retry will judge it)."""
    return exc.code in BAD_IMAGE_CODES


def operator_problem(exc: AmsError) -> bool:
    """True when the account or credentials are at fault (alert the operator)."""
    return _in(exc.code, ("UnauthorizedOperation", "AuthFailure")) and not unprocessed(exc.code)


def retry_ims(exc: AmsError, attempt: int) -> bool:
    """True when attempt ``attempt`` (1 = the first) failing with ``exc`` is worth another.

    A download failure is retried once only (the spec: then fall back to FileContent)."""
    if exc.code == DOWNLOAD_FAILED:
        return attempt < 2
    if isinstance(exc, AmsNetworkError):
        return exc.sent  # one that never left was retried by the transport already
    return _in(exc.code, _SERVER_TROUBLE)
