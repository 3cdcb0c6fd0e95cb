"""Drive a Source the way the pipeline does, for tests and benchmarks."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import numpy as np

from streamguard.core.chunk import AudioChunk, Pcm
from streamguard.ingest.source import Source

__all__ = ["joined", "read_all", "read_until"]

GUARD_SECONDS = 60.0
"""A test that hangs fails after this, instead of hanging the suite (it is no assertion)."""


async def read_all(source: Source) -> list[AudioChunk]:
    """Every chunk until the source ends by itself."""
    async with asyncio.timeout(GUARD_SECONDS):
        return [chunk async for chunk in source]


async def read_until(
    source: Source,
    enough: Callable[[list[AudioChunk]], bool],
    on_chunk: Callable[[list[AudioChunk]], object] | None = None,
) -> list[AudioChunk]:
    """Read until ``enough(chunks)``, then detach and drain what was already decoded."""
    chunks: list[AudioChunk] = []
    async with asyncio.timeout(GUARD_SECONDS):
        async for chunk in source:
            chunks.append(chunk)
            if on_chunk is not None:
                outcome = on_chunk(chunks)
                if asyncio.iscoroutine(outcome):
                    await outcome
            if enough(chunks):
                source.detach()
    return chunks


def joined(chunks: list[AudioChunk]) -> Pcm:
    """All the samples of ``chunks`` in order."""
    return np.concatenate([chunk.samples for chunk in chunks])
