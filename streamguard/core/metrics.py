"""The daemon's Prometheus metrics, in one registry the /metrics route serves."""

from __future__ import annotations

import platform
from collections import Counter as CountOf
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from streamguard.core.version import __version__

__all__ = ["Metrics"]


def _outcome_counters(registry: CollectorRegistry) -> tuple[Counter, Counter]:
    """Segments and video frames, by outcome."""
    segments = Counter(
        "streamguard_segments", "Segments by outcome.", ["outcome"], registry=registry
    )
    frames = Counter(
        "streamguard_frames",
        "Video frames taken from streams, by outcome: the verdict's (moderated, failed) or "
        "dropped (the image engine fell behind).",
        ["outcome"],
        registry=registry,
    )
    return segments, frames


class Metrics:
    """Every metric the daemon exports; components get this object and update their own."""

    def __init__(self, version: str = __version__) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self._stream_states: Callable[[], list[str]] = list
        self._stream_details: Callable[[], Mapping[str, tuple[str, float | None]]] = dict
        self._ams_outcomes: Callable[[], Mapping[tuple[str, str], int]] = dict
        self._gate_saved: Callable[[], float] = lambda: 0.0
        self._late_verdicts: Callable[[], int] = lambda: 0
        self._local_engine: Callable[[], Mapping[str, Any]] | None = None
        self._dead_letters: Callable[[], int] = lambda: 0
        self._refused: Callable[[], Mapping[str, int]] = dict
        self._refused_topics: Callable[[], int] = lambda: 0
        self._spool_lost: Callable[[], Mapping[str, int]] = dict
        self._evidence_not_kept: Callable[[], int] = lambda: 0
        self._evidence_bytes: Callable[[], float] | None = None
        self._alerts_raised: Callable[[], Mapping[tuple[str, str], int]] = dict
        self._webhooks: Callable[[], Mapping[str, Mapping[str, float]]] = dict
        r.register(_Collected(self))
        # The process (CPU, memory, open files), the Python runtime and its GC.
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)
        Info("streamguard_build", "The running streamguard's version.", registry=r).info(
            {"version": version, "python": platform.python_version()}
        )
        self.audio_seconds = Counter(
            "streamguard_audio_seconds",
            "Audio seconds by what happened to them (ingested, moderated, skipped_silent, "
            "skipped_overloaded, failed).",
            ["kind"],
            registry=r,
        )
        self.segments, self.frames = _outcome_counters(r)
        self.engine_latency = Histogram(
            "streamguard_engine_latency_seconds",
            "Seconds from a segment's end to its verdict, by engine.",
            ["engine"],
            buckets=(0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120, 300),
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
        self._storage_gauges(r)

    def _storage_gauges(self, r: CollectorRegistry) -> None:
        self.outbox_depth = Gauge(
            "streamguard_outbox_depth", "Messages waiting in the outbox.", registry=r
        )
        self.outbox_oldest_age = Gauge(
            "streamguard_outbox_oldest_age_seconds",
            "Age of the oldest message waiting in the outbox (0 when empty).",
            registry=r,
        )
        self.spool_depth = Gauge(
            "streamguard_spool_depth",
            "Writes (results, alerts, events) waiting in memory for the state disk to take "
            "them (0 while it does).",
            registry=r,
        )
        self.spool_limit = Gauge(
            "streamguard_spool_limit",
            "Writes the spool keeps in memory at most; more are lost (spool_lost_total).",
            registry=r,
        )

    def watch_alerts(self, raised: Callable[[], Mapping[tuple[str, str], int]]) -> None:
        """Count the alerts raised by (label, risk level), read at scrape time."""
        self._alerts_raised = raised

    def watch_evidence(self, disk_bytes: Callable[[], float]) -> None:
        """Report the bytes the evidence takes on disk, read at scrape time."""
        self._evidence_bytes = disk_bytes

    def watch_stream_details(
        self, details: Callable[[], Mapping[str, tuple[str, float | None]]]
    ) -> None:
        """Report each attached stream's state and the age of its last audio (``{stream id:
        (state, seconds since the last audio or None)}``), read at scrape time."""
        self._stream_details = details

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

    def watch_local_engine(self, counters: Callable[[], Mapping[str, Any]]) -> None:
        """Report the local engine's counters (``EngineCounters.to_json()``: segments by
        outcome, audio seconds, health events by kind, backlog) at scrape time."""
        self._local_engine = counters

    def watch_dead_letters(self, moved: Callable[[], int]) -> None:
        """Count outbox messages moved to the dead letters (never deliverable), read at
        scrape time."""
        self._dead_letters = moved

    def watch_refusals(
        self, refused: Callable[[], Mapping[str, int]], held: Callable[[], int]
    ) -> None:
        """Count publishes the broker refused (MQTT 5 PUBACK failure codes) by reason, and
        the topics held back for it now, read at scrape time."""
        self._refused = refused
        self._refused_topics = held

    def watch_spool(
        self,
        depth: Callable[[], float],
        limit: float,
        lost: Callable[[], Mapping[str, int]],
        evidence_not_kept: Callable[[], int],
    ) -> None:
        """Report the writes waiting for the disk, the bound, the writes lost by kind and the
        clips not kept as evidence, read at scrape time."""
        self.spool_depth.set_function(depth)
        self.spool_limit.set(limit)
        self._spool_lost = lost
        self._evidence_not_kept = evidence_not_kept

    def watch_streams(self, states: Callable[[], list[str]]) -> None:
        """Count attached streams by state at scrape time (detached ones drop out)."""
        self._stream_states = states

    def watch_webhooks(self, stats: Callable[[], Mapping[str, Mapping[str, float]]]) -> None:
        """Report each webhook destination's deliveries (``Webhooks.stats``) at scrape time."""
        self._webhooks = stats

    def watch_outbox(self, depth: Callable[[], float], oldest_age: Callable[[], float]) -> None:
        """Read the outbox gauges at scrape time rather than keeping copies in step."""
        self.outbox_depth.set_function(depth)
        self.outbox_oldest_age.set_function(oldest_age)

    def watch_fleet(self, gauges: Callable[[], Mapping[str, float]]) -> None:
        """Fleet mode: export ``streamguard_fleet_<name>`` for each of ``FLEET_GAUGES``,
        read at scrape time from ``gauges()`` (kept current by the lease loop)."""
        for name, description in FLEET_GAUGES.items():
            Gauge(f"streamguard_fleet_{name}", description, registry=self.registry).set_function(
                lambda name=name: float(gauges().get(name, 0))  # type: ignore[misc]
            )


FLEET_GAUGES = {
    "instances_alive": "Instances of the fleet that renewed within a lease length.",
    "streams": "Streams in the fleet's desired set.",
    "streams_unowned": "Streams of the desired set no live lease holds.",
    "takeovers": "Streams taken over from an instance whose lease expired, fleet-wide, ever.",
    "streams_held": "Streams this instance holds a lease on.",
}


_LOCAL_OUTCOMES = ("moderated", "no_speech", "skipped_overloaded", "failed")
_LOCAL_SECONDS = {
    "audio": "audio_seconds",
    "speech": "speech_seconds",
    "recognised": "recognised_seconds",
    "rechecked": "rechecked_seconds",
    "no_speech_saved": "no_speech_seconds_saved",
}


def _local_engine_metrics(c: Mapping[str, Any]) -> Iterator[Metric]:
    """The local engine's families, from one snapshot of its counters."""
    prefix = "streamguard_local_engine"
    segments = CounterMetricFamily(
        f"{prefix}_segments", "Segments the local engine judged, by outcome.", labels=["outcome"]
    )
    for outcome in _LOCAL_OUTCOMES:
        segments.add_metric([outcome], c[outcome])
    yield segments
    seconds = CounterMetricFamily(
        f"{prefix}_audio_seconds", "Audio seconds by what the engine did.", labels=["kind"]
    )
    for kind, key in _LOCAL_SECONDS.items():
        seconds.add_metric([kind], c[key])
    yield seconds
    health = CounterMetricFamily(
        f"{prefix}_health_events", "Health events raised, by kind.", labels=["kind"]
    )
    for kind, count in sorted(c["health_events"].items()):
        health.add_metric([str(kind)], count)
    yield health
    reloads = CounterMetricFamily(
        f"{prefix}_library_reloads", "Keyword library reloads, by result.", labels=["result"]
    )
    reloads.add_metric(["ok"], c["library_reloads"])
    reloads.add_metric(["failed"], c["library_reload_failures"])
    yield reloads
    yield CounterMetricFamily(f"{prefix}_hits", "Segments with keyword hits.", value=c["hits"])
    yield CounterMetricFamily(
        f"{prefix}_busy_seconds", "Seconds workers spent judging.", value=c["busy_seconds"]
    )
    for gauge, doc in (
        ("backlog_depth", "Segments admitted and waiting now."),
        ("backlog_limit", "Segments the backlog admits before skipping."),
        ("running", "Segments being judged on a worker thread now."),
    ):
        yield GaugeMetricFamily(f"{prefix}_{gauge}", doc, value=c[gauge])


_WEBHOOK_COUNTERS = {
    "delivered": "Alerts the webhook receiver answered 2xx to, by destination.",
    "failed_attempts": "POSTs that failed (refused, timed out, not 2xx), by destination.",
    "dead_lettered": "Alerts given up on after dead_letter_after_seconds, by destination.",
    "filtered": "Alerts not sent because the destination's label/risk filter excludes them.",
}


def _refusal_metrics(refused: Mapping[str, int], topics: int) -> Iterator[Metric]:
    """Publishes the broker refused (``bus.refusals``) and the topics held for it."""
    counted = CounterMetricFamily(
        "streamguard_bus_publishes_refused",
        "Publishes the broker refused with an MQTT 5 PUBACK failure reason code (kept in the "
        "outbox and retried), by reason code.",
        labels=["reason"],
    )
    for reason, count in sorted(refused.items()):
        counted.add_metric([reason], count)
    yield counted
    yield GaugeMetricFamily(
        "streamguard_bus_refused_topics",
        "Topics whose messages wait because the broker refused a publish on them.",
        value=topics,
    )


def _webhook_metrics(stats: Mapping[str, Mapping[str, float]]) -> Iterator[Metric]:
    """The webhook families: one series per configured destination."""
    for key, doc in _WEBHOOK_COUNTERS.items():
        family = CounterMetricFamily(f"streamguard_webhook_{key}", doc, labels=["webhook"])
        for name, values in sorted(stats.items()):
            family.add_metric([name], values[key])
        yield family
    age = GaugeMetricFamily(
        "streamguard_webhook_oldest_age_seconds",
        "Age of the alert the destination is trying to deliver now (0 when none waits).",
        labels=["webhook"],
    )
    for name, values in sorted(stats.items()):
        age.add_metric([name], values["oldest_age"])
    yield age


def _stream_metrics(details: Mapping[str, tuple[str, float | None]]) -> Iterator[Metric]:
    """One series per attached stream in each family (cardinality: the streams attached)."""
    state = GaugeMetricFamily(
        "streamguard_stream_state",
        "1 for each attached stream, labelled with its current state.",
        labels=["stream", "state"],
    )
    age = GaugeMetricFamily(
        "streamguard_stream_last_audio_age_seconds",
        "Seconds since each stream's last audio was heard (segments are cut from it); "
        "absent until the stream was first heard.",
        labels=["stream"],
    )
    for stream_id, (current, last_age) in sorted(details.items()):
        state.add_metric([stream_id, current], 1)
        if last_age is not None:
            age.add_metric([stream_id], last_age)
    yield state
    yield age


def _alert_metrics(
    raised: Mapping[tuple[str, str], int], evidence_bytes: Callable[[], float] | None
) -> Iterator[Metric]:
    """Alerts raised by label and risk, and the evidence kept on disk."""
    family = CounterMetricFamily(
        "streamguard_alerts_raised",
        "Alerts raised (written for the bus or printed), by label and risk level.",
        labels=["label", "risk"],
    )
    for (label, risk), count in sorted(raised.items()):
        family.add_metric([label, risk], count)
    yield family
    if evidence_bytes is not None:
        yield GaugeMetricFamily(
            "streamguard_evidence_bytes",
            "Bytes of evidence (clips and records) on disk, as of the last retention pass.",
            value=evidence_bytes(),
        )


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
        if m._local_engine is not None:
            yield from _local_engine_metrics(m._local_engine())
        yield from _webhook_metrics(m._webhooks())
        yield from _stream_metrics(m._stream_details())
        yield from _alert_metrics(m._alerts_raised(), m._evidence_bytes)
        yield CounterMetricFamily(
            "streamguard_outbox_dead_letters",
            "Outbox messages that could not be published and were moved to the dead letters "
            "(the outbox_dead_letters table) so the messages behind them go on.",
            value=m._dead_letters(),
        )
        yield from _refusal_metrics(m._refused(), m._refused_topics())
        lost = CounterMetricFamily(
            "streamguard_spool_lost",
            "Writes lost because the state disk refused them and the in-memory spool was full "
            "(or, at shutdown, still refused them), by kind.",
            labels=["kind"],
        )
        for kind, count in sorted(m._spool_lost().items()):
            lost.add_metric([kind], count)
        yield lost
        yield CounterMetricFamily(
            "streamguard_evidence_not_kept",
            "Clips of alerting segments that could not be kept as evidence (the alert went "
            "out without).",
            value=m._evidence_not_kept(),
        )
