"""A stream's frame flagged by the REAL offline image engine (open_nsfw), end to end.

The flagged picture is ``streamguard.testing.images.flagged``: a synthetic drawing found by
searching against this model (``bench/nsfw_probe.py``), not a nude picture. It is drawn into
a generated H.264 video, sampled from its keyframes by PyAV, judged by ``OpenNsfwEngine``
with the packaged weights, decided by the profile's image rules, alerted with the frame's
JPEG and recorded as a result. It proves the wiring and the score path, not the model's
accuracy on real pictures (``docs/frames.md``).
"""

from __future__ import annotations

from pathlib import Path

import jsonschema

from streamguard.config.frames import FramesConfig
from streamguard.config.image import OpenNsfwConfig
from streamguard.config.ingest import IngestConfig
from streamguard.config.policy import ProfileConfig
from streamguard.config.streams import StreamConfig
from streamguard.core.frame import FrameReason, Picture
from streamguard.core.metrics import Metrics
from streamguard.core.status import StreamState
from streamguard.core.verdict import Outcome, Suggestion
from streamguard.engines.image.opennsfw import OpenNsfwEngine
from streamguard.moderation.alert import alert_schema
from streamguard.moderation.alerting import Alerting
from streamguard.moderation.outcomes import Outcomes
from streamguard.moderation.profiles import Profiles
from streamguard.state.db import Database
from streamguard.state.results import ResultQuery, Results
from streamguard.streams.frames import FrameResult
from streamguard.streams.pipeline import SegmentResult
from streamguard.streams.runner import StreamRunner
from streamguard.testing.alerts import RecordingSink
from streamguard.testing.engines import ToneEngine
from streamguard.testing.images import flagged
from streamguard.testing.video import SceneShow

PROFILES = {"default": ProfileConfig(cooldown_seconds=0)}


class FlaggedShow(SceneShow):
    """A scene show whose ``marked`` scenes show the flagged drawing."""

    def patterns(self) -> list[Picture]:
        shown = super().patterns()
        for n in self.marked:
            shown[n] = flagged(self.height, self.width)
        return shown


async def test_a_drawn_frame_the_real_model_flags_is_a_hit_alert_and_result(
    tmp_path: Path,
) -> None:
    show = FlaggedShow(seeds=(1, 2, 3), scene_seconds=2, marked=(1,))
    media = tmp_path / "show.ts"
    media.write_bytes(show.encode())
    config = StreamConfig(id="room-1", url=str(media), segment_seconds=15, room="lobby")
    frames: list[FrameResult] = []
    sink = RecordingSink()
    engine, metrics = OpenNsfwEngine(), Metrics()
    async with (
        Database(tmp_path / "state.db") as db,
        Alerting(Profiles(PROFILES), sink, instance_id="i1") as alerting,
    ):
        results = Results(db)
        moderation = Outcomes(Profiles(PROFILES), alerting, results)

        async def on_frame(stream: StreamConfig, result: FrameResult) -> None:
            frames.append(result)
            await moderation.handle_frame(stream, result.frame.info(), result.verdict, None)

        async def on_result(stream: StreamConfig, result: SegmentResult) -> None:
            await moderation.handle(stream, result.segment, result.verdict, None)

        async def on_state(stream: StreamConfig, state: StreamState, error: str | None) -> None:
            pass

        runner = StreamRunner(
            config,
            ingest=IngestConfig(frames=FramesConfig(interval=60.0, scene_threshold=0.1)),
            engine=ToneEngine(),
            clip_dir=tmp_path / "clips",
            on_result=on_result,
            on_state=on_state,
            metrics=metrics,
            biz_type=lambda stream: None,
            image_engine=engine,
            on_frame=on_frame,
        )
        await runner.run()
        rows = await results.query(ResultQuery(room_id="lobby"))
    await engine.aclose()
    assert runner.state is StreamState.ENDED
    assert [r.frame.reason for r in frames] == [
        FrameReason.FIRST,
        FrameReason.SCENE_CHANGE,
        FrameReason.SCENE_CHANGE,
    ]
    verdicts = [r.verdict for r in frames]
    assert all(v.outcome is Outcome.MODERATED and v.engine == "opennsfw" for v in verdicts)
    assert [v.hit for v in verdicts] == [False, True, False]
    hit = verdicts[1]
    assert hit.label == "Porn"
    assert hit.suggestion in (Suggestion.BLOCK, Suggestion.REVIEW)
    assert hit.score >= OpenNsfwConfig().hit_score
    assert engine.judged == 3
    judged = metrics.registry.get_sample_value("streamguard_frames_total", {"outcome": "moderated"})
    assert judged == 3

    # The incident the frame opened, and its end when the alerting closed.
    assert [a.payload["incident"]["event"] for a in sink.alerts] == ["new", "end"]
    for alert in sink.alerts:
        jsonschema.validate(alert.payload, alert_schema())
        assert alert.payload["frame"]["id"] == frames[1].frame.id
        assert (alert.payload["risk"]["label"], alert.payload["risk"]["score"]) == (
            "Porn",
            hit.score,
        )
        assert alert.payload["stream"]["room_id"] == "lobby"
    recorded = {row["segment"]["segment_id"]: row for row in rows}
    assert recorded[frames[1].frame.id]["risk"] in ("high", "medium")
    assert recorded[frames[0].frame.id]["risk"] not in ("high", "medium")
