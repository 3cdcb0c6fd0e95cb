"""SIGHUP in fleet mode, at the function: a reload while the shared PostgreSQL is away is
refused (the config in force unchanged, systemd told it is over) instead of ending the
daemon, and the same file is taken once the database is back."""

from __future__ import annotations

import socket
from contextlib import AsyncExitStack
from pathlib import Path

from streamguard.app.fleet import open_fleet_state, reload_fleet, sync_config_streams
from streamguard.app.notify import Notifier
from streamguard.config.loading import load_config
from streamguard.moderation.profiles import Profiles
from streamguard.state.desired import Origin
from streamguard.state.spool import Spool
from streamguard.testing.postgres import PostgresServer


def config_text(pg_url: str, streams: list[str], profiles: str = "") -> str:
    listed = "".join(
        f'[[streams]]\nid = "{s}"\nurl = "https://live.example.invalid/{s}.m3u8"\n'
        f'room = "room-{s}"\n'
        for s in streams
    )
    return f'[state]\nurl = "{pg_url}"\n[profiles.default]\n{profiles}{listed}'


def notices(server: socket.socket) -> list[list[str]]:
    """Every datagram the notifier sent so far, each as its lines."""
    sent = []
    while True:
        try:
            sent.append(server.recv(4096).decode().splitlines())
        except BlockingIOError:
            return sent


async def test_a_reload_while_the_database_is_away_is_refused_and_taken_once_it_is_back(
    postgres: PostgresServer, pg_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "streamguard.toml"
    path.write_text(config_text(pg_url, ["s1"]))
    old = load_config(path)
    profiles = Profiles(old.profiles)
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(tmp_path / "notify.sock"))
        server.setblocking(False)
        notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "notify.sock")})
        async with AsyncExitStack() as stack, Spool() as spool:
            state = await open_fleet_state(stack, old, spool)
            await sync_config_streams(state, old)
            path.write_text(
                config_text(pg_url, ["s1", "s2"], '[profiles.kids]\nmin_risk = "low"\n')
            )
            postgres.stop()
            try:
                refused = await reload_fleet(path, old, state, profiles, notifier)
            finally:
                postgres.start()
            assert not refused.ok
            assert refused.summary == "reload refused: state database unreachable"
            assert refused.config is old
            assert profiles["default"] == old.profiles["default"]
            assert notices(server)[-1] == ["READY=1", f"STATUS={refused.summary}"]

            taken = await reload_fleet(path, old, state, profiles, notifier)
            assert taken.ok
            assert sorted(taken.config.profiles) == sorted(profiles) == ["default", "kids"]
            kept = await state.desired.all(Origin.CONFIG)
            assert sorted(s.stream_id for s in kept) == ["s1", "s2"]
            assert notices(server)[-1] == ["READY=1", f"STATUS={taken.summary}"]
