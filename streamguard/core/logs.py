"""Logging: JSON lines with bound context when not on a terminal, readable text when on one.

Under systemd with stderr connected to the journal (``$JOURNAL_STREAM`` names stderr), each
line starts with its syslog priority (``<3>`` error … ``<7>`` debug), which journald takes as
the entry's priority and strips: ``journalctl -p warning`` filters, the entry stays JSON.

Every line of the process goes this way — ours, aiohttp's, asyncio's and Python warnings
(``logging.captureWarnings``) — so a log collector sees one format, and every line passes
``core.redact``: a password in a stream URL is never written out, whoever logs it.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from streamguard.core.redact import redact, redact_json

__all__ = ["BoundLogger", "configure_logging", "journal_priority", "on_journal", "stream_logger"]

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}

LIBRARY_LEVEL = logging.WARNING
"""What other libraries' loggers (aiohttp, asyncio, py.warnings) write at least."""


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    """The fields bound to a record (``extra``), redacted."""
    fields = {k: v for k, v in vars(record).items() if k not in _STANDARD}
    return dict(redact_json(fields))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and every bound field."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        entry.update(_fields(record))
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        elif record.stack_info:
            entry["stack"] = redact(self.formatStack(record.stack_info))
        return json.dumps(entry, default=lambda value: redact(str(value)))


class TextFormatter(logging.Formatter):
    """``time level logger [field=value ...] message`` for people at a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        fields = " ".join(f"{k}={v}" for k, v in _fields(record).items())
        time = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        line = f"{time} {record.levelname:<7} {record.name}: {record.getMessage()}"
        if fields:
            line += f"  [{fields}]"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return redact(line)


_PRIORITIES = ((logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4), (logging.INFO, 6))


def journal_priority(level: int) -> int:
    """The syslog priority journald files a line of this logging level under."""
    return next((priority for floor, priority in _PRIORITIES if level >= floor), 7)


class JournalFormatter(logging.Formatter):
    """Another formatter's line behind journald's ``<priority>`` prefix."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self._inner = inner

    def format(self, record: logging.LogRecord) -> str:
        line = self._inner.format(record)
        # A multi-line entry (a traceback in text form) keeps one priority for all its lines.
        prefix = f"<{journal_priority(record.levelno)}>"
        return prefix + line.replace("\n", "\n" + prefix)


def on_journal(stream: TextIO, environ: dict[str, str] | None = None) -> bool:
    """Whether ``stream`` is the journal's (systemd sets ``$JOURNAL_STREAM`` to its
    ``device:inode``; a redirected stderr no longer matches)."""
    value = (os.environ if environ is None else environ).get("JOURNAL_STREAM", "")
    device, _, inode = value.partition(":")
    if not (device.isdigit() and inode.isdigit()):
        return False
    try:
        status = os.fstat(stream.fileno())
    except (OSError, ValueError):  # no file descriptor (a StringIO), or closed
        return False
    return (status.st_dev, status.st_ino) == (int(device), int(inode))


class _Handler(logging.StreamHandler[TextIO]):
    """The handler ``configure_logging`` installs (so that a second call replaces it)."""


def configure_logging(level: str = "INFO", stream: TextIO | None = None) -> None:
    """Route every logger to ``stream`` (stderr), JSON unless it is a TTY: the
    ``streamguard`` loggers at ``level``, other libraries' at warning and above, Python
    warnings included."""
    out = stream or sys.stderr
    handler = _Handler(out)
    formatter: logging.Formatter = TextFormatter() if out.isatty() else JsonFormatter()
    handler.setFormatter(JournalFormatter(formatter) if on_journal(out) else formatter)
    root = logging.getLogger()
    root.handlers[:] = [h for h in root.handlers if not isinstance(h, _Handler)] + [handler]
    root.setLevel(LIBRARY_LEVEL)
    ours = logging.getLogger("streamguard")
    ours.handlers[:] = [h for h in ours.handlers if not isinstance(h, _Handler)]
    ours.setLevel(level)
    ours.propagate = True
    logging.captureWarnings(True)


class BoundLogger(logging.LoggerAdapter[logging.Logger]):
    """A logger with fields bound once; a call's own ``extra`` adds to them."""

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        kwargs["extra"] = {**(self.extra or {}), **kwargs.get("extra", {})}
        return msg, kwargs


def stream_logger(logger: logging.Logger, stream_id: str) -> BoundLogger:
    """A logger with the stream id bound once, so every line about the stream carries it."""
    return BoundLogger(logger, {"stream_id": stream_id})
