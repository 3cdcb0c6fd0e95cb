"""A stand-in sentence embedder for tests: texts that share words are near, deterministically.

Each word gets a fixed random unit vector (seeded by its CRC32); a text is the normalised
sum of its words' vectors. No model, no CPU dependence: the semantic layer's rules and
classifier can be tested exactly.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence

import numpy as np

from streamguard.engines.local.embedder import Vectors

DIMENSIONS = 64


def word_vector(word: str) -> Vectors:
    rng = np.random.default_rng(zlib.crc32(word.encode()))
    vector = rng.standard_normal(DIMENSIONS).astype(np.float32)
    return vector / np.linalg.norm(vector)


class WordEmbedder:
    """``Embedder`` by bags of words; counts the texts it embedded, and can be made to fail."""

    name = "words (test)"

    def __init__(self) -> None:
        self.embedded = 0
        self.fail: Exception | None = None

    def embed(self, texts: Sequence[str]) -> Vectors:
        if self.fail is not None:
            raise self.fail
        self.embedded += len(texts)
        rows = []
        for text in texts:
            words = re.findall(r"[a-z']+", text.lower()) or ["<empty>"]
            total = np.sum([word_vector(w) for w in words], axis=0)
            rows.append(total / max(float(np.linalg.norm(total)), 1e-6))
        return np.stack(rows).astype(np.float32)


EXAMPLES_TOML = """
[[library]]
id = "threat"
name = "Threats"
label = "Abuse"
sub_label = "Threat"
kind = "flag"
score = 90
block_score = 80
examples = [
    "i know where you live",
    "i know your address and where you live",
    "watch your back i know where you live",
    "i am outside your house tonight",
]
held_out = ["we know where you live now"]

[[library]]
id = "drugs"
name = "Drug sales"
label = "Illegal"
sub_label = "Drugs"
kind = "flag"
score = 80
block_score = 80
examples = [
    "selling pills and weed dm me",
    "pills for sale cheap weed",
    "buy weed and pills from me",
]

[[library]]
id = "benign"
name = "Benign"
label = "Normal"
kind = "benign"
score = 0
block_score = 101
examples = [
    "the weather is nice today",
    "good game everyone that was fun",
    "let us play another round of the game",
    "the weather tomorrow is rain",
    "nice game today everyone",
]
"""
