"""Redaction of the credentials a stream URL may carry (``http://user:password@host/…``).

A password in a URL must never leave the process: ``redact`` is applied where text does —
every log line (``core.logs``), every API answer (``api.routes``) and every status and
health event on the bus (``core.status``) — rather than at each place an error message is
built, which would always miss one. The user name stays, so an operator can still tell
which account a source uses: ``http://alice:***@host/live``.
"""

from __future__ import annotations

import re
from typing import Any, overload

__all__ = ["MASK", "redact", "redact_json"]

MASK = "***"

# A scheme, then the userinfo up to the last "@" before the host: a password written without
# percent-encoding may itself hold "@" or ":". The userinfo ends at whatever ends an
# authority ("/", "?", "#") or the text around it (white space, "<", ">"), so the
# first part of a sentence after a URL is never taken for its userinfo. The scheme's length
# is bounded so that a long run of letters costs linear time, not quadratic.
_USERINFO = re.compile(
    r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]{0,31}://)"
    r"(?P<user>[^:@/?#\s<>]*):(?P<password>[^/?#\s<>]*)@",
)


@overload
def redact(text: str) -> str: ...


@overload
def redact(text: None) -> None: ...


def redact(text: str | None) -> str | None:
    """``text`` with the password of every URL in it replaced by ``***``."""
    if text is None or "://" not in text:
        return text
    return _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)


def redact_json(value: Any) -> Any:
    """A JSON-like value (dicts, lists, strings, …) with every string in it ``redact``-ed;
    what holds no URL is returned as it was."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redact_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_json(v) for v in value]
    return value
