"""The daemon's Prometheus metrics, in one registry the /metrics route serves."""

from __future__ import annotations

from collections import Counter as CountOf
from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["Metrics"]


class Metrics:
    """Every metric the daemon exports; components get this object and update their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self._stream_states: Callable[[], list[str]] = list
        self._ams_outcomes: Callable[[], Mapping[tuple[str, str], int]] = dict
        self._gate_saved: Callable[[], float] = lambda: 0.0
        self._late_verdicts: Callable[[], int] = lambda: 0
        self._dead_letters: Callable[[], int] = lambda: 0
        r.register(_Collected(self))
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
        self.loop_restarts = Counter(
            "streamguard_loop_restarts",
            "Background loops restarted after they raised, by loop name.",
            ["loop"],
            registry=r,
        )

    def watch_ams(
        self,
        outcomes: Callable[[], Mapping[tuple[str, str], int]],
        gate_saved: Callable[[], float],
    ) -> None:
        """Report the AMS client's call counts (by action and result code) and the audio
        seconds the speech gate kept from the bill, read at scrape time."""
        self._ams_outcomes = outcomes
        self._gate_saved = gate_saved

    def watch_late(self, handled: Callable[[], int]) -> None:
        """Count verdicts that came after nobody waited for them (AMS tasks settled after a
        restart), read at scrape time."""
        self._late_verdicts = handled

    def watch_dead_letters(self, moved: Callable[[], int]) -> None:
        """Count outbox messages moved to the dead letters (never deliverable), read at
        scrape time."""
        self._dead_letters = moved

    def watch_streams(self, states: Callable[[], list[str]]) -> None:
        """Count attached streams by state at scrape time (detached ones drop out)."""
        self._stream_states = states

    def watch_outbox(self, depth: Callable[[], float], oldest_age: Callable[[], float]) -> None:
        """Read the outbox gauges at scrape time rather than keeping copies in step."""
        self.outbox_depth.set_function(depth)
        self.outbox_oldest_age.set_function(oldest_age)


class _Collected(Collector):
    """Metrics read from their owners when Prometheus scrapes, not kept in step by hand."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        m = self._metrics
        streams = GaugeMetricFamily(
            "streamguard_streams", "Attached streams by state.", labels=["state"]
        )
        for state, count in sorted(CountOf(m._stream_states()).items()):
            streams.add_metric([state], count)
        yield streams
        calls = CounterMetricFamily(
            "streamguard_ams_calls",
            "AMS API calls by action and result code.",
            labels=["action", "code"],
        )
        for (action, code), count in sorted(m._ams_outcomes().items()):
            calls.add_metric([action, code], count)
        yield calls
        yield CounterMetricFamily(
            "streamguard_gate_saved_seconds",
            "Audio seconds the speech gate kept from the billed engine (AMS).",
            value=m._gate_saved(),
        )
        yield CounterMetricFamily(
            "streamguard_late_verdicts",
            "Verdicts recorded and alerted on after nobody waited for them (AMS tasks that "
            "settled after a restart).",
            value=m._late_verdicts(),
        )
        yield CounterMetricFamily(
            "streamguard_outbox_dead_letters",
            "Outbox messages that could not be published and were moved to the dead letters "
            "(the outbox_dead_letters table) so the messages behind them go on.",
            value=m._dead_letters(),
        )
