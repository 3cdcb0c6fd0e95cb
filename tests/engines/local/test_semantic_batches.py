"""What keeps the semantic layer's cost down: shared embedder calls and the model's window."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import numpy as np
import pytest

from streamguard.engines.local.embedder import (
    MAX_TOKENS,
    E5Embedder,
    SharedBatches,
    Vectors,
    _within_window,
)
from tests.engines.local.words import WordEmbedder


class HeldEmbedder(WordEmbedder):
    """A ``WordEmbedder`` whose first call waits until ``release`` is set; records calls."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[list[str]] = []
        self.entered = threading.Event()
        self.release = threading.Event()

    def embed(self, texts: Sequence[str]) -> Vectors:
        self.calls.append(list(texts))
        self.entered.set()
        assert self.release.wait(30)
        return super().embed(texts)


def wait_until(condition: object, what: str) -> None:
    deadline = time.monotonic() + 30  # a hang guard, not a timing assertion
    while not callable(condition) or not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.005)


def test_texts_asked_for_while_the_embedder_is_busy_share_its_next_call() -> None:
    inner = HeldEmbedder()
    shared = SharedBatches(inner)
    results: dict[str, Vectors] = {}

    def ask(name: str, texts: list[str]) -> None:
        results[name] = shared.embed(texts)

    first = threading.Thread(target=ask, args=("first", ["gg all"]))
    first.start()
    assert inner.entered.wait(30)
    others = [
        threading.Thread(target=ask, args=("second", ["nice map today"])),
        threading.Thread(target=ask, args=("third", ["nice map today", "see you tomorrow"])),
    ]
    for thread in others:
        thread.start()
    wait_until(lambda: len(shared._queue) == 2, "the other requests' texts waiting")
    inner.release.set()
    for thread in (first, *others):
        thread.join(30)
    # One call for the first request, one for both others; the shared text embedded once.
    assert inner.calls[0] == ["gg all"]
    assert sorted(inner.calls[1]) == ["nice map today", "see you tomorrow"]
    assert shared.calls == len(inner.calls) == 2
    alone = WordEmbedder()
    assert np.allclose(results["third"], alone.embed(["nice map today", "see you tomorrow"]))
    assert np.allclose(results["second"], alone.embed(["nice map today"]))


def test_a_failed_shared_call_fails_every_caller_in_it_and_the_next_call_works() -> None:
    inner = WordEmbedder()
    shared = SharedBatches(inner)
    inner.fail = RuntimeError("model gone")
    with pytest.raises(RuntimeError, match="model gone"):
        shared.embed(["a b c"])
    inner.fail = None
    assert shared.embed(["a b c"]).shape == (1, 64)
    assert shared.embed([]).shape[0] == 0


def test_a_text_longer_than_the_models_window_is_cut_to_it() -> None:
    embedder = E5Embedder()
    model = embedder.model
    long = " ".join(f"word{n} is here" for n in range(900))  # ~8 KB, far past one window
    short = "nice stream today"
    vectors = embedder.embed([long, short])
    assert vectors.shape == (2, 384)
    read = _within_window(model, long)
    assert long.startswith(read)
    assert MAX_TOKENS - 5 < model.token_count(f"passage: {read}") <= MAX_TOKENS
    assert _within_window(model, short) == short
    # The cut text is what the model read: the same vector as embedding the cut text.
    assert np.allclose(vectors[0], embedder.embed([read])[0], atol=1e-5)
