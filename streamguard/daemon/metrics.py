"""The daemon's Prometheus metrics, in one registry the /metrics route serves."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

__all__ = ["Metrics"]


class Metrics:
    """Every metric the daemon exports; components get this object and update their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.streams = Gauge("streamguard_streams", "Streams by state.", ["state"], registry=r)
        self.audio_seconds = Counter(
            "streamguard_audio_seconds",
            "Audio seconds by what happened to them (ingested, moderated, skipped_silent, "
            "skipped_overloaded, failed).",
            ["kind"],
            registry=r,
        )
        self.segments = Counter(
            "streamguard_segments", "Segments by outcome.", ["outcome"], registry=r
        )
        self.engine_latency = Histogram(
            "streamguard_engine_latency_seconds",
            "Seconds from a segment's end to its verdict, by engine.",
            ["engine"],
            buckets=(0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120, 300),
            registry=r,
        )
        self._ams_outcomes: Callable[[], Mapping[tuple[str, str], int]] = dict
        r.register(_AmsCalls(lambda: self._ams_outcomes()))
        self.outbox_depth = Gauge(
            "streamguard_outbox_depth", "Messages waiting in the outbox.", registry=r
        )
        self.outbox_oldest_age = Gauge(
            "streamguard_outbox_oldest_age_seconds",
            "Age of the oldest message waiting in the outbox (0 when empty).",
            registry=r,
        )
        self.alerts_published = Counter(
            "streamguard_alerts_published", "Alerts the broker acknowledged.", registry=r
        )
        self.reconnects = Counter(
            "streamguard_source_reconnects", "Source reconnects, all streams.", registry=r
        )

    def watch_ams(self, outcomes: Callable[[], Mapping[tuple[str, str], int]]) -> None:
        """Report the AMS client's own call counts (by action and result code) at scrape time."""
        self._ams_outcomes = outcomes

    def watch_outbox(self, depth: Callable[[], float], oldest_age: Callable[[], float]) -> None:
        """Read the outbox gauges at scrape time rather than keeping copies in step."""
        self.outbox_depth.set_function(depth)
        self.outbox_oldest_age.set_function(oldest_age)


class _AmsCalls(Collector):
    """``streamguard_ams_calls_total{action,code}``, read from the AMS client's counts."""

    def __init__(self, outcomes: Callable[[], Mapping[tuple[str, str], int]]) -> None:
        self._outcomes = outcomes

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "streamguard_ams_calls",
            "AMS API calls by action and result code.",
            labels=["action", "code"],
        )
        for (action, code), count in sorted(self._outcomes().items()):
            family.add_metric([action, code], count)
        yield family
