"""The public surface is what ``__all__`` says, and nothing it names is missing."""

from __future__ import annotations

import streamguard


def test_all_names_exist() -> None:
    for name in streamguard.__all__:
        assert hasattr(streamguard, name), name


def test_public_names_are_exported() -> None:
    public = {
        name
        for name, value in vars(streamguard).items()
        if not name.startswith("_") and not isinstance(value, type(streamguard))
    }
    assert public == set(streamguard.__all__)
