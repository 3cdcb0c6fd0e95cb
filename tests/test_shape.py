"""The shape of the code: imports point down the layers, and nothing grows too long.

The layers, lowest first (README, "Architecture")::

    core ← config ← state ← tencentcloud ← ingest ← engines ← emulator ← moderation ← bus
         ← streams ← api ← app ← cli ← demo ← testing

A module may import its own layer and any layer below it, never one above.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import streamguard

PACKAGE = Path(streamguard.__file__).parent

LAYERS = [
    "core",
    "config",
    "state",
    "tencentcloud",
    "ingest",
    "engines",
    "emulator",
    "moderation",
    "bus",
    "streams",
    "api",
    "app",
    "cli",
    "demo",
    "testing",
]

MAX_FUNCTION_LINES = 60
MAX_CLASS_LINES = 300
DECLARATIVE_BASES = {"BaseModel", "Section", "Enum", "StrEnum", "IntEnum", "TypedDict"}
"""Classes that declare data (config and API models, enums) and may be long."""


def _modules() -> Iterator[tuple[Path, ast.Module]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        yield path, ast.parse(path.read_text(), str(path))


def _layer(path: Path) -> str | None:
    parts = path.relative_to(PACKAGE).parts
    return parts[0] if len(parts) > 1 else None


def _imported_layers(tree: ast.Module) -> Iterator[tuple[int, str]]:
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "streamguard" and len(parts) > 1 and parts[1] in LAYERS:
                yield getattr(node, "lineno", 0), parts[1]


def test_every_folder_is_a_known_layer() -> None:
    folders = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    assert folders <= set(LAYERS), folders - set(LAYERS)


def test_imports_point_down() -> None:
    upward = []
    for path, tree in _modules():
        layer = _layer(path)
        if layer is None:
            continue
        rank = LAYERS.index(layer)
        for line, imported in _imported_layers(tree):
            if LAYERS.index(imported) > rank:
                upward.append(f"{path.relative_to(PACKAGE)}:{line} imports {imported}")
    assert upward == []


def _lines(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> int:
    assert node.end_lineno is not None
    # Counted from the first decorator, so a decorated definition is measured whole.
    start = min([node.lineno] + [d.lineno for d in node.decorator_list])
    return node.end_lineno - start + 1


def _base_names(node: ast.ClassDef) -> set[str]:
    names = set()
    for base in node.bases:
        if isinstance(base, ast.Name):
            names.add(base.id)
        elif isinstance(base, ast.Attribute):
            names.add(base.attr)
    return names


def test_no_function_is_longer_than_the_limit() -> None:
    long = [
        f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name} ({_lines(node)} lines)"
        for path, tree in _modules()
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and _lines(node) > MAX_FUNCTION_LINES
    ]
    assert long == []


def test_no_behaviour_class_is_longer_than_the_limit() -> None:
    long = [
        f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name} ({_lines(node)} lines)"
        for path, tree in _modules()
        if _layer(path) != "config"
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef)
        and not (_base_names(node) & DECLARATIVE_BASES)
        and not node.name.endswith(("Error", "Exception"))
        and _lines(node) > MAX_CLASS_LINES
    ]
    assert long == []


@pytest.mark.parametrize("layer", LAYERS)
def test_layer_is_listed_in_the_readme(layer: str) -> None:
    readme = (PACKAGE.parent / "README.md").read_text()
    if (PACKAGE / layer).is_dir():
        assert f"`{layer}/`" in readme


def test_the_risk_decision_is_made_in_one_place() -> None:
    callers = sorted(
        f"{path.relative_to(PACKAGE)}:{node.lineno}"
        for path, tree in _modules()
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name | ast.Attribute)
        and (node.func.id if isinstance(node.func, ast.Name) else node.func.attr) == "decide"
        and path.name != "outcomes.py"
    )
    assert callers == []
    outcomes = (PACKAGE / "moderation" / "outcomes.py").read_text()
    assert outcomes.count("decide(self._profiles") == 1
