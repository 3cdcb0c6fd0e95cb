"""The soak's world: the daemon's config, its rooms (half in the file, half attached through
the API, so both kinds must come back after every SIGKILL), and the AMS emulator's keys."""

from __future__ import annotations

from pathlib import Path

from bench.soak.sources import LiveRoom

__all__ = ["ENV", "SECRET_ID", "SECRET_KEY", "SEGMENT_SECONDS", "config", "file_rooms"]

SECRET_ID = "AKIDsoak000000000000000000000000"
SECRET_KEY = "soak-secret-key"
ENV = {"TENCENTCLOUD_SECRET_ID": SECRET_ID, "TENCENTCLOUD_SECRET_KEY": SECRET_KEY}
SEGMENT_SECONDS = 15


def file_rooms(rooms: dict[str, LiveRoom]) -> dict[str, LiveRoom]:
    """The rooms the config file names (every other one); the rest are attached by API."""
    return {name: room for index, (name, room) in enumerate(rooms.items()) if index % 2 == 0}


def config(
    workdir: Path,
    *,
    api_port: int,
    broker_port: int,
    emulator_url: str,
    delivery_port: int,
    rooms: dict[str, LiveRoom],
) -> str:
    """The daemon's TOML: fast reconnects, AMS through the emulator, every risky segment
    alerted (no cooldown), evidence capped well under the small disk."""
    head = f"""
[instance]
id = "soak"
state_dir = "{workdir / "state"}"
shutdown_seconds = 60
[api]
port = {api_port}
[mqtt]
host = "127.0.0.1"
port = {broker_port}
topic_prefix = "soak"
[mqtt.reconnect]
initial = 0.2
maximum = 2.0
[ingest]
segment_seconds = {SEGMENT_SECONDS}
open_timeout = 3
read_timeout = 3
stall_timeout = 4
[ingest.backoff]
initial = 0.2
maximum = 2.0
[engine]
type = "ams"
endpoint = "{emulator_url}"
delivery_listen = "127.0.0.1:{delivery_port}"
batch_window = 0.3
poll_interval = 1.0
request_timeout = 5
retry_total_seconds = 20
task_deadline = 60
[evidence]
max_megabytes = 8
[profiles.default]
cooldown_seconds = 0
incident_quiet_seconds = 10
"""
    streams = "".join(
        f'[[streams]]\nid = "{name}"\nurl = "{room.url}"\nroom = "{name}"\n'
        for name, room in file_rooms(rooms).items()
    )
    return head + streams
