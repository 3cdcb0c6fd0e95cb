"""``streamguard moderate`` on a file with video: frame verdicts beside the segments'."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from streamguard.engines.image.opennsfw import UNSUPPORTED
from streamguard.testing.video import SceneShow

COMMAND = [sys.executable, "-m", "streamguard", "moderate"]


@pytest.mark.slow
def test_a_video_file_gets_frame_verdicts_beside_the_segments(tmp_path: Path) -> None:
    show = SceneShow(seeds=(1, 2, 1, 3), scene_seconds=4)
    media = tmp_path / "show.ts"
    media.write_bytes(show.encode())
    result = subprocess.run(
        [*COMMAND, str(media), "--segment", "15", "--progress", "never"],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    out = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    segments = [line for line in out if line.get("type") == "segment"]
    frames = [line for line in out if line.get("type") == "frame"]
    assert [s["seq"] for s in segments] == [0, 1]
    # Default sampling (one per 5 s, scene changes, near-duplicates dropped): the first
    # picture, the second, and the third new one; the repeat of the first is not judged.
    reasons = [f["frame"]["reason"] for f in frames]
    assert reasons[:2] == ["first", "scene_change"]
    assert reasons[2:] in (["interval"], ["scene_change"])
    assert len({f["frame"]["fingerprint"] for f in frames}) == 3
    assert [f["seq"] for f in frames] == [1, 2, 3]
    assert [f["media_start"] for f in frames] == sorted(f["media_start"] for f in frames)
    for frame in frames:
        assert frame["segment_id"] == frame["frame"]["id"]
        assert frame["segment_id"].startswith("cli-")
        assert frame["segment_id"].endswith(f"-f{frame['seq']:05d}")
        assert (frame["frame"]["width"], frame["frame"]["height"]) == (show.width, show.height)
        verdict = frame["verdict"]
        assert (verdict["outcome"], verdict["suggestion"]) == ("moderated", "Pass")
        assert verdict["unsupported"] == list(UNSUPPORTED)
        assert frame["jpeg"] is None
    assert not [line for line in out if "alert_id" in line]
