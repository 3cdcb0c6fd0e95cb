"""deploy/: the compose file, the Prometheus rules and the Grafana dashboard agree with the
daemon (its config, its shutdown budget, the metrics it exports)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]

from streamguard.config import load_config
from streamguard.config.bus import MqttConfig
from streamguard.config.instance import InstanceConfig
from streamguard.core.metrics import Metrics
from streamguard.engines.local.stats import EngineStats

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
METRIC = re.compile(r"\b((?:streamguard|process|python)_[a-z0-9_]+)\b")


def exported_names() -> set[str]:
    """Every series name the daemon can export, with every optional part watched."""
    metrics = Metrics()
    counters = EngineStats().snapshot(
        backlog_depth=0, backlog_limit=4, running=0, library_reloads=0, library_reload_failures=0
    )
    metrics.watch_local_engine(counters.to_json)
    metrics.watch_evidence(lambda: 0)
    names: set[str] = set()
    for family in metrics.registry.collect():
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
        suffixes = {
            "counter": ["_total"],
            "histogram": ["_bucket", "_sum", "_count"],
            "info": ["_info"],
        }.get(family.type, [])
        names.update(family.name + suffix for suffix in suffixes)
    return names


def test_compose_stops_slower_than_the_daemon_and_its_config_loads() -> None:
    compose: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text("utf-8"))
    assert set(compose["services"]) == {"streamguard", "mosquitto"}
    daemon = compose["services"]["streamguard"]
    grace = int(re.fullmatch(r"(\d+)s", daemon["stop_grace_period"]).group(1))  # type: ignore[union-attr]
    mqtt = MqttConfig(host="mosquitto")
    budget = InstanceConfig().shutdown_seconds + 2 * mqtt.shutdown_drain_seconds + 2 * mqtt.timeout
    assert grace > budget
    assert daemon["environment"]["CREDENTIALS_DIRECTORY"] == "/run/secrets"
    assert "api-token" in daemon["secrets"]
    config = load_config(DEPLOY / "streamguard.toml")
    assert config.mqtt is not None
    assert config.mqtt.host == "mosquitto"  # the broker's service name
    assert f"{config.api.port}:{config.api.port}" in daemon["ports"][0]
    mounted = {volume.split(":")[1] for volume in daemon["volumes"]}
    assert {"/etc/streamguard/streamguard.toml", "/var/lib/streamguard"} <= mounted


def test_prometheus_rules_use_only_exported_metrics() -> None:
    rules = yaml.safe_load((DEPLOY / "prometheus" / "streamguard.rules.yml").read_text("utf-8"))
    names = exported_names()
    (group,) = rules["groups"]
    assert len(group["rules"]) >= 10
    for rule in group["rules"]:
        assert rule["alert"].startswith("Streamguard")
        assert rule["annotations"]["summary"]
        unknown = set(METRIC.findall(rule["expr"])) - names
        assert not unknown, (rule["alert"], unknown)


def test_the_grafana_dashboard_uses_only_exported_metrics() -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "streamguard.dashboard.json").read_text("utf-8"))
    names = exported_names()
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    assert len(exprs) >= 15
    used = {name for expr in exprs for name in METRIC.findall(expr)}
    assert not used - names, used - names
    for family in ("streamguard_stream_state", "streamguard_alerts_raised_total"):
        assert family in names
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
