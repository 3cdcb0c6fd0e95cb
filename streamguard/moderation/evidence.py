"""Evidence: the clips of risky segments, kept with their SHA-256 and transcript.

Each kept clip lives at ``{directory}/{stream}/{segment id}{suffix}`` next to a
``{segment id}.json`` that records its SHA-256, the segment and the verdict (with the
transcript). Retention deletes evidence older than ``keep_days`` and then the oldest until
the directory fits ``max_megabytes`` — never the evidence just kept, which an alert is about
to point at. Clips of safe segments are deleted at once. All file
work runs in a worker thread, never on the event loop.

A clip that cannot be kept (the disk is full, the directory unwritable) raises
``EvidenceNotKept`` with nothing of it left behind: the alert goes out without evidence.

In fleet mode each kept clip is also shared (``state.postgres.evidence``): any instance
serves it, under the same retention. A clip the database cannot take now (it is away, the
clip is too big) stays served by this instance only; the alert is not held back for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from streamguard.config.alerts import EvidenceConfig
from streamguard.core.errors import StreamGuardError
from streamguard.core.private import FILE_MODE, private_dir, write_private
from streamguard.core.segment import Segment, SegmentInfo
from streamguard.core.topics import topic_level
from streamguard.core.verdict import Verdict
from streamguard.state.db import StateError
from streamguard.state.postgres.evidence import MAX_CLIP_BYTES, SharedClip

__all__ = ["Evidence", "EvidenceNotKept", "EvidenceStore"]

log = logging.getLogger(__name__)


class SharedClips(Protocol):
    """Where fleet mode shares clips: ``state.postgres.evidence.PgEvidenceClips``."""

    async def put(self, stream_id: str, clip: SharedClip) -> int: ...

    async def delete(self, segment_id: str) -> None: ...


class EvidenceNotKept(StreamGuardError):
    """A risky segment's clip could not be kept as evidence (it was deleted)."""


@dataclass(frozen=True, slots=True)
class Evidence:
    """A kept clip: where it is, its digest and size, and the record beside it."""

    clip_path: Path
    sha256: str
    bytes: int
    record_path: Path
    clip_url: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "clip_path": str(self.clip_path),
            "clip_url": self.clip_url,
            "sha256": self.sha256,
            "bytes": self.bytes,
            "record_path": str(self.record_path),
        }


class EvidenceStore:
    """Keeps risky clips under a retention policy and deletes safe ones."""

    def __init__(
        self,
        directory: Path,
        *,
        keep_seconds: float,
        max_bytes: int,
        base_url: str | None = None,
        clock: Callable[[], float] = time.time,
        shared: SharedClips | None = None,
    ) -> None:
        self.directory = directory
        self.shared = shared
        """Fleet mode: the shared database every kept clip goes to as well."""
        self.keep_seconds = keep_seconds
        self.max_bytes = max_bytes
        self.disk_bytes = 0
        """Bytes of clips and records kept, as last measured (``measure``, retention)."""
        self.base_url = base_url.rstrip("/") if base_url else None
        self._clock = clock

    @classmethod
    def from_config(
        cls, config: EvidenceConfig, state_dir: Path, shared: SharedClips | None = None
    ) -> EvidenceStore:
        """The store a config describes (default directory: ``state_dir/evidence``)."""
        return cls(
            config.directory or state_dir / "evidence",
            keep_seconds=config.keep_days * 86_400,
            max_bytes=int(config.max_megabytes * 1_000_000),
            base_url=config.base_url,
            shared=shared,
        )

    async def keep(self, segment: Segment | SegmentInfo, verdict: Verdict, clip: Path) -> Evidence:
        """Move ``clip`` into the store with its record, then apply retention;
        ``EvidenceNotKept`` (the clip deleted) when the disk refuses."""
        try:
            evidence = await asyncio.to_thread(self._keep, segment, verdict, clip)
        except OSError as exc:
            await asyncio.to_thread(self._forget, segment, clip)
            raise EvidenceNotKept(f"clip of segment {segment.id} not kept: {exc}") from exc
        try:
            await asyncio.to_thread(self._prune, evidence.record_path)
        except OSError as exc:  # the evidence is kept; retention tries again next time
            log.warning("evidence retention failed: %s", exc)
        if self.shared is not None:
            await self._share(self.shared, segment, evidence)
        return evidence

    async def _share(
        self, shared: SharedClips, segment: Segment | SegmentInfo, evidence: Evidence
    ) -> None:
        """Put a kept clip in the fleet's database too (fleet mode), or say why not."""
        why = f"{evidence.bytes} bytes is over {MAX_CLIP_BYTES}"
        if evidence.bytes <= MAX_CLIP_BYTES:
            try:
                body = await asyncio.to_thread(evidence.clip_path.read_bytes)
                name = evidence.clip_path.name
                await shared.put(
                    segment.stream_id, SharedClip(segment.id, name, evidence.sha256, body)
                )
                return
            except (OSError, StateError, ValueError) as exc:
                why = str(exc)
        log.warning(
            "evidence of segment %s is served by this instance only: %s",
            segment.id,
            why,
            extra={"stream_id": segment.stream_id},
        )

    def _forget(self, segment: Segment | SegmentInfo, clip: Path) -> None:
        """Delete whatever a failed ``_keep`` left: the clip, wherever it got to, and the
        record or its partial (half a record would point at nothing)."""
        folder = self.directory / topic_level(segment.stream_id)
        for path in (
            clip,
            folder / f"{segment.id}{clip.suffix}",
            folder / f"{segment.id}.json.partial",
            folder / f"{segment.id}.json",
        ):
            try:
                path.unlink(missing_ok=True)
            except OSError as exc:
                log.warning("could not delete %s: %s", path, exc)

    async def forget(self, segment: Segment | SegmentInfo, clip: Path) -> None:
        """Delete the evidence kept of ``segment`` (from ``clip``): its writes were refused
        as stale, nothing points at it."""
        await asyncio.to_thread(self._forget, segment, clip)
        if self.shared is not None:
            try:
                await self.shared.delete(segment.id)
            except StateError as exc:
                log.warning("the shared clip of segment %s stays: %s", segment.id, exc)

    async def discard(self, clip: Path) -> None:
        """Delete the clip of a safe segment."""
        await asyncio.to_thread(clip.unlink, missing_ok=True)

    def measure(self) -> int:
        """Bytes the evidence takes on disk now (blocking: call it off the event loop);
        ``disk_bytes`` keeps it, and every retention pass updates it."""
        total = 0
        if self.directory.is_dir():
            for path in self.directory.glob("*/*"):
                with contextlib.suppress(FileNotFoundError):
                    total += path.stat().st_size
        self.disk_bytes = total
        return total

    async def prune(self) -> int:
        """Apply retention now; return how many clips were deleted."""
        return await asyncio.to_thread(self._prune, None)

    def _keep(self, segment: Segment | SegmentInfo, verdict: Verdict, clip: Path) -> Evidence:
        folder = private_dir(self.directory / topic_level(segment.stream_id))
        target = folder / f"{segment.id}{clip.suffix}"
        if clip.resolve() != target.resolve():
            shutil.move(clip, target)
        os.chmod(target, FILE_MODE)  # a copy across file systems may bring a laxer mode
        digest = hashlib.sha256()
        with target.open("rb") as file:
            for block in iter(lambda: file.read(1 << 16), b""):
                digest.update(block)
        size = target.stat().st_size
        record = folder / f"{segment.id}.json"
        relative = target.relative_to(self.directory).as_posix()
        evidence = Evidence(
            clip_path=target,
            sha256=digest.hexdigest(),
            bytes=size,
            record_path=record,
            clip_url=f"{self.base_url}/{relative}" if self.base_url else None,
        )
        # Written to a temporary name first so a crash never leaves half a record.
        partial = record.with_suffix(".json.partial")
        write_private(
            partial,
            json.dumps(
                {
                    "clip": relative,
                    "sha256": evidence.sha256,
                    "bytes": size,
                    "segment": segment.metadata(),
                    "verdict": verdict.to_json(),
                },
                ensure_ascii=False,
                indent=2,
            ).encode("utf-8"),
        )
        os.replace(partial, record)
        return evidence

    def _prune(self, just_kept: Path | None) -> int:
        if not self.directory.is_dir():
            return 0
        entries: list[tuple[float, int, list[Path]]] = []
        for record in self.directory.glob("*/*.json"):
            clips = [p for p in record.parent.glob(f"{record.stem}.*") if p != record]
            files = [*clips, record]
            try:
                mtime = record.stat().st_mtime
                size = sum(p.stat().st_size for p in files)
            except FileNotFoundError:
                continue
            entries.append((mtime, size, files))
        entries.sort(key=lambda entry: entry[0])
        total = sum(size for _, size, _ in entries)
        cutoff = self._clock() - self.keep_seconds
        removed = 0
        for mtime, size, files in entries:
            if mtime >= cutoff and total <= self.max_bytes:
                break
            if files[-1] == just_kept:
                continue  # the alert about to be sent points at it
            for path in files:
                path.unlink(missing_ok=True)
            total -= size
            removed += 1
        self.disk_bytes = total
        return removed
