"""The operator's metrics, read from their owners at scrape time."""

from __future__ import annotations

from collections import Counter

from prometheus_client import generate_latest

from streamguard.core.metrics import Metrics
from streamguard.core.version import __version__


def test_per_stream_alert_webhook_and_build_families() -> None:
    metrics = Metrics()
    metrics.watch_stream_details(lambda: {"lobby": ("online", 2.5), "new": ("connecting", None)})
    metrics.watch_alerts(lambda: Counter({("Abuse", "high"): 3, ("Spam", "medium"): 1}))
    metrics.watch_evidence(lambda: 12_345)
    metrics.watch_webhooks(
        lambda: {
            "ops": {
                "delivered": 5,
                "failed_attempts": 2,
                "dead_lettered": 0,
                "filtered": 1,
                "oldest_age": 7.0,
            }
        }
    )
    text = generate_latest(metrics.registry).decode()
    lines = set(text.splitlines())
    assert 'streamguard_stream_state{state="online",stream="lobby"} 1.0' in lines
    assert 'streamguard_stream_state{state="connecting",stream="new"} 1.0' in lines
    assert 'streamguard_stream_last_audio_age_seconds{stream="lobby"} 2.5' in lines
    assert not any(
        line.startswith('streamguard_stream_last_audio_age_seconds{stream="new"}') for line in lines
    )
    assert 'streamguard_alerts_raised_total{label="Abuse",risk="high"} 3.0' in lines
    assert "streamguard_evidence_bytes 12345.0" in lines
    assert 'streamguard_webhook_delivered_total{webhook="ops"} 5.0' in lines
    assert 'streamguard_webhook_oldest_age_seconds{webhook="ops"} 7.0' in lines
    assert any(
        line.startswith("streamguard_build_info{") and f'version="{__version__}"' in line
        for line in lines
    )
    for family in ("process_resident_memory_bytes", "python_gc_objects_collected_total"):
        assert any(line.startswith(family) for line in lines), family
