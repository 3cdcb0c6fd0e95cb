"""Leases on a real PostgreSQL: claim, renew, expiry and takeover, release, even spread,
capacity, and concurrent claims that never take the same stream twice."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from streamguard.config import load_config
from streamguard.config.streams import StreamConfig
from streamguard.state.desired import Origin
from streamguard.state.postgres.database import PgDatabase
from streamguard.state.postgres.desired import PgDesiredStreams
from streamguard.state.postgres.fleet import Fleet, fair_share

LEASE = 30.0  # long: only tests that let a lease expire use a short one


def stream(n: int) -> StreamConfig:
    return StreamConfig(id=f"room-{n}", url=f"https://live.example.invalid/{n}.m3u8", room=f"r{n}")


@pytest.fixture
async def db(pg_url: str) -> AsyncIterator[PgDatabase]:
    async with PgDatabase(pg_url) as database:
        yield database


async def desire(db: PgDatabase, count: int) -> None:
    desired = PgDesiredStreams(db)
    for n in range(count):
        await desired.put(stream(n), Origin.CONFIG)


async def members(
    db: PgDatabase, count: int, lease: float = LEASE, capacity: int | None = None
) -> list[Fleet]:
    fleet = [Fleet(db, f"i{n}", lease_seconds=lease, capacity=capacity) for n in range(count)]
    for member in fleet:
        await member.join()
    return fleet


async def until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll ``check`` until true; a generous bound only turns a hang into a failure."""
    async with asyncio.timeout(60):
        while not await check():  # noqa: ASYNC110 - the database changes, no event says so
            await asyncio.sleep(0.05)
    assert await check(), what


async def test_a_lone_instance_claims_every_stream_once_each_with_its_own_generation(
    db: PgDatabase,
) -> None:
    await desire(db, 3)
    (only,) = await members(db, 1)
    leases = await only.claim()
    assert sorted(lease.stream_id for lease in leases) == ["room-0", "room-1", "room-2"]
    assert sorted(lease.generation for lease in leases) == [1, 2, 3]
    assert {lease.previous_owner for lease in leases} == {None}
    assert leases[0].config["url"].startswith("https://live.example.invalid/")
    assert await only.claim() == []  # nothing left: a second claim takes nothing
    assert await only.renew() == []  # renewing keeps every lease
    status = await only.status()
    assert (status.instances_alive, status.streams, status.streams_unowned) == (1, 3, 0)


async def test_streams_spread_evenly_and_a_grown_fleet_rebalances(db: PgDatabase) -> None:
    await desire(db, 10)
    first, second, third = await members(db, 3)
    for member in (first, second, third):
        await member.claim()
    held = [len(m.fences) for m in (first, second, third)]
    assert sum(held) == 10
    assert max(held) <= 10 // 3 + 1

    # A fourth joins: the others give back their excess, the newcomer claims it.
    fourth = Fleet(db, "i3", lease_seconds=LEASE)
    await fourth.join()
    for member in (first, second, third):
        excess = await member.excess()
        await member.release(list(member.fences)[:excess])
    await fourth.claim()
    held = [len(m.fences) for m in (first, second, third, fourth)]
    assert sum(held) == 10
    assert max(held) <= 10 // 4 + 1
    assert min(held) >= 10 // 4 - 1


async def test_capacity_caps_an_instance_and_the_rest_take_the_remainder(
    db: PgDatabase,
) -> None:
    await desire(db, 10)
    small = Fleet(db, "small", lease_seconds=LEASE, capacity=2)
    big = Fleet(db, "big", lease_seconds=LEASE)
    for member in (small, big):
        await member.join()
    await small.claim()
    await big.claim()
    assert (len(small.fences), len(big.fences)) == (2, 8)
    assert fair_share(10, [2, None]) == 8
    assert fair_share(3, [None, None]) == 2
    assert fair_share(0, [None]) == 0


async def test_concurrent_claims_never_take_a_stream_twice(db: PgDatabase) -> None:
    await desire(db, 30)
    fleet = await members(db, 5)
    for _ in range(3):
        await asyncio.gather(*(m.claim() for m in fleet))
    owners = Counter(s for m in fleet for s in m.fences)
    assert len(owners) == 30
    assert set(owners.values()) == {1}
    assert max(len(m.fences) for m in fleet) <= 30 // 5 + 1


async def test_an_expired_lease_is_taken_over_and_its_old_owner_learns_it_lost_it(
    db: PgDatabase,
) -> None:
    await desire(db, 2)
    (old,) = await members(db, 1, lease=0.5)
    await old.claim()
    assert set(old.fences) == {"room-0", "room-1"}
    new = Fleet(db, "new", lease_seconds=0.5)
    await new.join()

    # ``old`` stops renewing (paused, partitioned); ``new`` renews and takes over.
    async def taken() -> bool:
        await new.renew()
        await new.claim()
        return len(new.fences) == 2

    await until(taken, "the new instance took both streams over")
    assert sorted(new.fences.values()) == [3, 4]  # new generations: the old ones are fenced
    lost = await old.renew()
    assert sorted(lost) == ["room-0", "room-1"]
    assert old.fences == {}
    status = await new.status()
    assert status.takeovers == 2


async def test_a_released_stream_is_claimed_at_once_without_a_takeover(db: PgDatabase) -> None:
    await desire(db, 4)
    leaving, staying = await members(db, 2)
    await leaving.claim()
    await staying.claim()
    await leaving.drain()
    assert await leaving.claim() == []  # a draining instance claims nothing
    await leaving.release(list(leaving.fences))
    assert leaving.fences == {}
    leases = await staying.claim()
    assert len(leases) == 2
    assert {lease.previous_owner for lease in leases} == {None}
    assert len(staying.fences) == 4
    assert (await staying.status()).takeovers == 0


async def test_a_detached_stream_is_lost_by_its_owner(db: PgDatabase) -> None:
    await desire(db, 2)
    (owner,) = await members(db, 1)
    await owner.claim()
    assert await PgDesiredStreams(db).remove("room-1")
    assert await owner.renew() == ["room-1"]
    # Its fence stays till the member stopped it (its tail still records), then goes.
    assert sorted(owner.fences) == ["room-0", "room-1"]
    owner.forget("room-1")
    assert list(owner.fences) == ["room-0"]
    assert await owner.renew() == []


async def test_an_instance_restarted_under_the_same_id_does_not_strand_its_streams(
    db: PgDatabase,
) -> None:
    await desire(db, 3)
    (first_life,) = await members(db, 1)
    assert len(await first_life.claim()) == 3
    # It crashes (nothing released); its successor with the same id joins at once.
    restarted = Fleet(db, "i0", lease_seconds=LEASE)
    await restarted.join()
    other = Fleet(db, "other", lease_seconds=LEASE)
    await other.join()
    for _ in range(3):  # a few turns of renewal and claim, well within the old leases
        for member in (restarted, other):
            await member.renew()
            await member.claim()
    assert sorted([*restarted.fences, *other.fences]) == ["room-0", "room-1", "room-2"]
    assert (await other.status()).streams_unowned == 0


async def test_rows_held_without_a_fence_are_released_at_the_next_renewal(
    db: PgDatabase,
) -> None:
    await desire(db, 2)
    (holder,) = await members(db, 1)
    await holder.claim()
    holder.fences.pop("room-1")  # the claim committed but its answer never came back
    assert await holder.renew() == []
    assert list(holder.fences) == ["room-0"]
    assert (await holder.status()).streams_unowned == 1
    [lease] = await holder.claim()
    assert (lease.stream_id, lease.previous_owner) == ("room-1", None)
    assert sorted(holder.fences) == ["room-0", "room-1"]


async def test_an_api_attach_is_held_where_it_was_asked_unless_another_holds_it(
    db: PgDatabase,
) -> None:
    here, there = await members(db, 2)
    config = stream(1).model_dump(mode="json")
    assert await there.keep_and_take("room-1", "api", config) is None
    assert await here.keep_and_take("room-1", "api", config) == "i1"
    generation = there.fences["room-1"]
    assert await there.keep_and_take("room-1", "api", config) is None  # a change: kept
    assert there.fences["room-1"] == generation
    assert here.fences == {}


async def test_the_desired_set_keeps_every_origin(db: PgDatabase) -> None:
    desired = PgDesiredStreams(db)
    await desired.put(stream(1), Origin.CONFIG)
    await desired.put(stream(2), Origin.API)
    assert [d.stream_id for d in await desired.all()] == ["room-2"]
    assert {d.stream_id for d in await desired.all(None)} == {"room-1", "room-2"}
    assert StreamConfig.model_validate((await desired.all())[0].config) == stream(2)


@pytest.mark.parametrize("name", ["a", "b", "c"])
def test_the_compose_examples_configs_are_valid_fleet_configs(name: str) -> None:
    deploy = Path(__file__).parents[2] / "deploy" / "fleet"
    config = load_config(deploy / f"streamguard-{name}.toml")
    assert config.state.fleet
    assert config.instance.id == f"streamguard-{name}"
    assert f"./streamguard-{name}.toml:/etc/streamguard/streamguard.toml" in (
        deploy / "compose.yaml"
    ).read_text(encoding="utf-8")


async def test_a_renewal_during_an_api_attach_leaves_the_attached_stream_held(
    db: PgDatabase,
) -> None:
    (here,) = await members(db, 1)
    for n in range(20):
        config = stream(n).model_dump(mode="json")
        await asyncio.gather(here.renew(), here.keep_and_take(f"room-{n}", "api", config))
    assert await here.renew() == []
    assert sorted(here.fences) == sorted(f"room-{n}" for n in range(20))
    assert (await here.status()).streams_unowned == 0
