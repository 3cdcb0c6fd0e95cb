"""``check-config`` (and ``run``, with the same words) refuses a file stream whose host is an
address the address policy denies (issue 11, item 7)."""

from __future__ import annotations

from pathlib import Path

from streamguard.ingest.addresses import POLICY_REFUSAL
from tests.cli.test_check_config import streamguard

CONFIG = """
[ingest.addresses]
deny = ["127.0.0.2/32"]
[[streams]]
id = "metadata"
url = "http://169.254.169.254/latest/meta-data/"
[[streams]]
id = "neighbour"
url = "rtsp://127.0.0.2:8554/room"
[[streams]]
id = "lobby"
url = "http://127.0.0.1:9/live.mp3"
"""


def test_check_config_and_run_refuse_file_streams_to_denied_addresses(tmp_path: Path) -> None:
    path = tmp_path / "streamguard.toml"
    path.write_text(f'[instance]\nstate_dir = "{tmp_path / "state"}"\n{CONFIG}', encoding="utf-8")
    expected = [
        f"streams[0].url: {POLICY_REFUSAL}: its host is an address ingest.addresses denies "
        "(stream 'metadata')",
        f"streams[1].url: {POLICY_REFUSAL}: its host is an address ingest.addresses denies "
        "(stream 'neighbour')",
        "2 problem(s) found",
    ]
    for command in ("check-config", "run"):
        done = streamguard(command, "-c", str(path), cwd=tmp_path)
        assert done.returncode != 0, done.stdout
        for text in expected:
            assert text in done.stderr, (command, done.stderr)
        assert "streams[2]" not in done.stderr
        assert "Traceback" not in done.stderr
