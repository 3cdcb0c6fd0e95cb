"""SIGHUP: re-read the config file and apply what changed in streams and profiles.

A broken file, or one that drops a profile a running stream still uses, is refused and the
old config kept; any other changed section is reported as needing a restart. Each stream is
applied on its own, so one refusal does not stop the others, and the config returned is what
was applied, so the next reload diffs against reality and retries the rest.

Streams attached through the API are not the file's: a reload never detaches or changes
them, except that a stream the new file defines under the same id takes that id over. Kept
API streams that could not run (``Streams.restore``) are tried again once the new profiles
are in force.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from streamguard.app.notify import Notifier
from streamguard.config import Config, load_config
from streamguard.config.streams import StreamConfig
from streamguard.core.errors import ConfigError, StreamGuardError
from streamguard.moderation.profiles import Profiles
from streamguard.streams.registry import Streams

__all__ = ["apply_reload"]

log = logging.getLogger("streamguard.daemon")

RESTART_SECTIONS = ("instance", "ingest", "engine", "mqtt", "evidence", "api")


async def apply_reload(
    path: Path, old: Config, streams: Streams, profiles: Profiles, notifier: Notifier
) -> Config:
    """Apply ``path`` over ``old``; return the config now in force."""
    try:
        new = await asyncio.to_thread(load_config, path)
    except ConfigError as exc:
        log.error("reload refused, config unchanged: %s", exc)
        notifier.status(f"reload refused: {len(exc.problems)} problem(s)")
        return old
    wanted_ids = {s.id for s in new.streams}
    orphaned = sorted(
        report.stream_id
        for report in streams.reports()
        if report.config.profile not in new.profiles and report.stream_id not in wanted_ids
    )
    if orphaned:
        log.error("reload refused: streams %s use profiles the new config drops", orphaned)
        notifier.status("reload refused: profiles in use were removed")
        return old
    for section in RESTART_SECTIONS:
        if getattr(old, section) != getattr(new, section):
            log.warning("reload: [%s] changed; it takes effect after a restart", section)
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
    notifier.status(summary)
    return old.model_copy(update={"profiles": new.profiles, "streams": applied})


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
