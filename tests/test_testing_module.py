"""The daemon does not use ``streamguard.testing``: it is for the tests and the benchmarks.

``test_shape`` already keeps the lower layers from importing the top one; this also covers
the top-level modules, relative imports, import specs named in strings (``importlib``, the
emulator's ``--engine MODULE:FACTORY``) and what importing the daemon's modules loads.
"""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import streamguard

PACKAGE = Path(streamguard.__file__).parent
TESTING = "streamguard.testing"


def _daemon_sources() -> Iterator[tuple[str, Path]]:
    """Every module of the package outside ``streamguard/testing``, with its dotted name."""
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[1:2] == ("testing",):
            continue
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield ".".join(parts), path


def _is_testing(name: str) -> bool:
    return name == TESTING or name.startswith(TESTING + ".")


def _imported(module: str, path: Path, node: ast.AST) -> list[str]:
    """The absolute names ``node`` imports, relative imports resolved against ``module``."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    base = node.module or ""
    if node.level:
        package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        anchor = package[: len(package) - node.level + 1]
        base = ".".join([*anchor, *([base] if base else [])])
    # ``from streamguard import testing`` names the module in the alias.
    return [base] + [f"{base}.{alias.name}" for alias in node.names]


def _references(module: str, path: Path) -> Iterator[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    for node in ast.walk(tree):
        where = f"{path.relative_to(PACKAGE)}:{getattr(node, 'lineno', 0)}"
        for name in _imported(module, path, node):
            if _is_testing(name):
                yield f"{where} imports {name}"
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and _is_testing(node.value.partition(":")[0])
        ):
            yield f"{where} names {node.value!r}"


def test_no_daemon_module_refers_to_the_testing_module() -> None:
    found = [ref for module, path in _daemon_sources() for ref in _references(module, path)]
    assert found == []


def test_the_testing_module_is_found_by_the_check() -> None:
    """The walk above does see the testing module's own imports, so it is not vacuous."""
    path = PACKAGE / "testing" / "broker.py"
    assert list(_references("streamguard.testing.broker", path)) != []
    relative = ast.parse("from ..testing import net\nfrom .. import testing\n")
    names = [
        name
        for node in ast.walk(relative)
        for name in _imported("streamguard.cli.emulator", PACKAGE / "cli" / "emulator.py", node)
    ]
    assert {"streamguard.testing.net", "streamguard.testing"} <= set(names)


def test_importing_every_daemon_module_does_not_load_it() -> None:
    """In a fresh interpreter, import all of the daemon's modules; none loads the testing one."""
    modules = [
        info.name
        for info in pkgutil.walk_packages([str(PACKAGE)], "streamguard.")
        if not _is_testing(info.name) and info.name != "streamguard.__main__"
    ]
    script = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        f"print(sorted(m for m in sys.modules if m.startswith({TESTING!r})))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        cwd=PACKAGE.parent,
    )
    assert result.stdout.strip() == "[]"
