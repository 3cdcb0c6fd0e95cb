"""scripts/demo keeps stdout for JSON lines: everything else it prints goes to stderr."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_demo_prints_only_json_lines_on_stdout() -> None:
    lines = (ROOT / "scripts" / "demo").read_text(encoding="utf-8").splitlines()
    commands = [
        line.strip()
        for line in lines
        if line.strip() and not line.strip().startswith("#") and not line.startswith(("if", "fi"))
    ]
    talking = [c for c in commands if c.startswith(("setup_", "echo", ".venv/bin/python"))]
    assert talking, "the demo installs and says what it does"
    assert all(c.endswith(">&2") for c in talking), talking
    # The one command left on stdout is the moderation itself (JSON lines; summary on stderr).
    assert commands[-1].startswith(".venv/bin/streamguard moderate ")
