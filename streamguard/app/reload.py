"""SIGHUP: re-read the config file and apply what changed in streams and profiles.

A broken file, or one that drops a profile a running stream still uses, is refused and the
old config kept; any other changed section is reported as needing a restart. Each stream is
applied on its own, so one refusal does not stop the others, and the config returned is what
was applied, so the next reload diffs against reality and retries the rest.

systemd sees the reload begin (``RELOADING=1``) and end (``READY=1`` with the result as
``STATUS``); the result is also written to ``reload.json`` (``ReloadResults``) for
``streamguard reload``, the unit's ``ExecReload``, which waits for it and fails when the
reload was refused.

Streams attached through the API are not the file's: a reload never detaches or changes
them, except that a stream the new file defines under the same id takes that id over. Kept
API streams that could not run (``Streams.restore``) are tried again once the new profiles
are in force.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from streamguard.app.notify import Notifier
from streamguard.config import Config, load_config
from streamguard.config.streams import StreamConfig
from streamguard.core.errors import ConfigError, StreamGuardError
from streamguard.engines.local.moderator import TextModerator
from streamguard.moderation.profiles import Profiles
from streamguard.streams.registry import Streams

__all__ = [
    "RELOAD_RESULT",
    "ReloadResults",
    "Reloaded",
    "apply_reload",
    "reload_result_path",
    "warn_restart_sections",
]

RELOAD_RESULT = "reload.json"
"""The file a reload's result is written to (``reload_result_path``)."""


def reload_result_path(state_dir: Path) -> Path:
    """Where the daemon writes its reload results: systemd's ``$RUNTIME_DIRECTORY`` when
    set (the same for the daemon and ``ExecReload``), else its state directory."""
    runtime = os.environ.get("RUNTIME_DIRECTORY")
    base = Path(runtime.split(":")[0]) if runtime else state_dir
    return base / RELOAD_RESULT


@dataclass(frozen=True, slots=True)
class Reloaded:
    """What a reload did: the config now in force, whether the file was taken, and why."""

    config: Config
    ok: bool
    summary: str


class ReloadResults:
    """Writes each reload's result, numbered, to one small JSON file (atomically)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.generation = 0

    async def write(self, reloaded: Reloaded) -> None:
        """Record ``reloaded`` as the next generation; an unwritable file is only logged."""
        self.generation += 1
        body = {
            "pid": os.getpid(),
            "generation": self.generation,
            "ok": reloaded.ok,
            "summary": reloaded.summary,
            "at": time.time(),
        }
        try:
            await asyncio.to_thread(_write_atomically, self.path, json.dumps(body))
        except OSError as exc:
            log.warning("reload result not written to %s: %s", self.path, exc)


def _write_atomically(path: Path, text: str) -> None:
    partial = path.with_suffix(".partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)


log = logging.getLogger("streamguard.daemon")

RESTART_SECTIONS = ("instance", "state", "ingest", "engine", "mqtt", "webhooks", "evidence", "api")


def warn_restart_sections(old: Config, new: Config) -> list[str]:
    """Log (and return) the sections of ``new`` that differ from ``old`` but apply only
    after a restart."""
    changed = [s for s in RESTART_SECTIONS if getattr(old, s) != getattr(new, s)]
    for section in changed:
        log.warning("reload: [%s] changed; it takes effect after a restart", section)
    return changed


async def apply_reload(
    path: Path,
    old: Config,
    streams: Streams,
    profiles: Profiles,
    notifier: Notifier,
    text: TextModerator | None = None,
) -> Reloaded:
    """Apply ``path`` over ``old``; return the config now in force and the result, which
    systemd is told (``RELOADING=1`` first, ``READY=1`` with the result at the end).

    ``text`` (the text API's judge) reloads its example files and fits the classifiers of
    the new profiles first, off the event loop; a file a profile newly names that is
    broken refuses the reload."""
    notifier.reloading()
    summary = "reload failed"
    try:
        reloaded = await _apply(path, old, streams, profiles, text)
        summary = reloaded.summary
    finally:
        # Whatever happened, systemd must not be left waiting in "reloading".
        notifier.reloaded(summary)
    return reloaded


async def _apply(
    path: Path, old: Config, streams: Streams, profiles: Profiles, text: TextModerator | None
) -> Reloaded:
    try:
        new = await asyncio.to_thread(load_config, path)
    except ConfigError as exc:
        log.error("reload refused, config unchanged: %s", exc)
        return Reloaded(old, False, f"reload refused: {len(exc.problems)} problem(s)")
    wanted_ids = {s.id for s in new.streams}
    orphaned = sorted(
        report.stream_id
        for report in streams.reports()
        if report.config.profile not in new.profiles and report.stream_id not in wanted_ids
    )
    if orphaned:
        log.error("reload refused: streams %s use profiles the new config drops", orphaned)
        return Reloaded(old, False, "reload refused: profiles in use were removed")
    if text is not None:
        try:
            await asyncio.to_thread(text.reload_examples, new.profiles)
        except ConfigError as exc:
            log.error("reload refused, config unchanged: %s", exc)
            return Reloaded(old, False, f"reload refused: {len(exc.problems)} problem(s)")
    warn_restart_sections(old, new)
    profiles.replace(new.profiles)
    applied, failed = await _apply_streams(old, new, streams)
    try:
        restored = await streams.restore()
    except StreamGuardError as exc:  # the database could not be read: try at the next reload
        log.error("reload: streams attached through the API not restored: %s", exc)
    else:
        if restored:
            log.info("reload: streams %s attached through the API run again", restored)
    summary = f"reloaded: {len(applied)} stream(s)" + (f", {failed} refused" if failed else "")
    log.info(summary)
    config = old.model_copy(update={"profiles": new.profiles, "streams": applied})
    return Reloaded(config, True, summary)


async def _apply_streams(
    old: Config, new: Config, streams: Streams
) -> tuple[list[StreamConfig], int]:
    wanted = {s.id: s for s in new.streams}
    applied = {s.id: s for s in old.streams}
    failed = 0
    for stream_id in applied.keys() - wanted.keys():
        await streams.detach(stream_id, from_api=False)
        del applied[stream_id]
    for stream_id, stream in wanted.items():
        if applied.get(stream_id) == stream:
            continue
        try:
            await streams.change(stream, from_api=False)
        except StreamGuardError as exc:
            failed += 1
            log.error("reload: stream %s not applied: %s", stream_id, exc)
            continue
        applied[stream_id] = stream
    return list(applied.values()), failed
