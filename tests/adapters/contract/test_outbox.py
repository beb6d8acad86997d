"""The outbox contract, on SQLite and PostgreSQL: writes inside a unit of work
(``SqlOutboxWriter`` / ``PgOutboxWriter``) and the relay's claims (``SqlOutboxRelayStore``)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from rushgate.adapters.sql.engine import SqlStorage
from rushgate.adapters.sql.tables import outbox
from rushgate.domain.clock import FixedClock
from rushgate.services.ports.outbox import ClaimedMessage, OutboxMessage, OutboxStats
from tests.support import add_students, new_student

LEASE = 60.0


@pytest.fixture
async def user_pk(storage: SqlStorage) -> int:
    await add_students(storage, new_student("s1"))
    account = await storage.reads(fresh=True).account("s1")
    assert account is not None
    return account.user_pk


def message(key: str, user_pk: int, **payload: Any) -> OutboxMessage:
    return OutboxMessage("enrollment.enrolled", key, user_pk, payload or {"n": key})


async def write(storage: SqlStorage, *messages: OutboxMessage) -> None:
    async with storage.unit_of_work() as uow:
        for m in messages:
            await uow.outbox.add(m)
        await uow.commit()


async def claim(storage: SqlStorage, now: datetime, limit: int = 10) -> list[ClaimedMessage]:
    return await storage.outbox_relay().claim(limit=limit, lease_seconds=LEASE, now=now)


async def keys(storage: SqlStorage, now: datetime, limit: int = 10) -> list[str]:
    return [c.message.dedupe_key for c in await claim(storage, now, limit)]


async def row(storage: SqlStorage, key: str) -> Any:
    async with storage.primary_reads.connect() as conn:
        return (
            await conn.execute(
                select(
                    outbox.c.state,
                    outbox.c.attempts,
                    outbox.c.available_at,
                    outbox.c.delivered_at,
                    outbox.c.last_error,
                ).where(outbox.c.dedupe_key == key)
            )
        ).one()


async def test_a_message_round_trips(storage: SqlStorage, clock: FixedClock, user_pk: int) -> None:
    payload = {"term": "2026-spring", "title": "자료구조", "nested": {"list": [1, None]}}
    written_at = clock.now()
    await write(storage, OutboxMessage("enrollment.waitlisted", "k1", user_pk, payload))
    [claimed] = await claim(storage, written_at)
    assert claimed.message == OutboxMessage("enrollment.waitlisted", "k1", user_pk, payload)
    assert claimed.attempts == 1
    assert claimed.created_at == written_at
    assert claimed.lease_until == written_at + timedelta(seconds=LEASE)


async def test_a_duplicate_key_writes_nothing(
    storage: SqlStorage, clock: FixedClock, user_pk: int
) -> None:
    await write(storage, message("k1", user_pk, first=True), message("k1", user_pk, second=True))
    await write(storage, message("k1", user_pk, third=True))  # a later transaction too
    [claimed] = await claim(storage, clock.now())
    assert claimed.message.payload == {"first": True}


async def test_a_rolled_back_write_leaves_nothing(
    storage: SqlStorage, clock: FixedClock, user_pk: int
) -> None:
    async with storage.unit_of_work() as uow:
        await uow.outbox.add(message("k1", user_pk))  # no commit
    assert await claim(storage, clock.now()) == []
    assert await storage.outbox_relay().stats(now=clock.now()) == OutboxStats(0, 0, None)


async def test_claims_take_the_oldest_due_first_up_to_the_limit(
    storage: SqlStorage, clock: FixedClock, user_pk: int
) -> None:
    start = clock.now()
    for n in range(4):
        clock.set(start + timedelta(seconds=n))
        await write(storage, message(f"k{n}", user_pk))
    now = start + timedelta(seconds=10)
    # k0 failed once and is due again only later: the others go first.
    [k0] = await claim(storage, now, limit=1)
    await storage.outbox_relay().failed(
        k0.id, error="451", retry_at=now + timedelta(seconds=5), now=now
    )
    assert await keys(storage, now, limit=2) == ["k1", "k2"]
    assert await keys(storage, now, limit=2) == ["k3"]
    assert await keys(storage, now) == []
    assert await keys(storage, now + timedelta(seconds=5)) == ["k0"]


async def test_a_claimed_message_waits_for_its_lease_to_end(
    storage: SqlStorage, clock: FixedClock, user_pk: int
) -> None:
    now = clock.now()
    await write(storage, message("k1", user_pk))
    assert [c.attempts for c in await claim(storage, now)] == [1]
    assert await claim(storage, now) == []
    assert await claim(storage, now + timedelta(seconds=LEASE - 1)) == []
    # The relay died: once the lease is over the message is claimed again, counted again.
    [again] = await claim(storage, now + timedelta(seconds=LEASE))
    assert again.attempts == 2
    assert (await row(storage, "k1")).attempts == 2


async def test_delivered_is_final(storage: SqlStorage, clock: FixedClock, user_pk: int) -> None:
    now = clock.now()
    await write(storage, message("k1", user_pk))
    [claimed] = await claim(storage, now)
    relay = storage.outbox_relay()
    await relay.delivered([claimed.id], now=now + timedelta(seconds=1))
    stored = await row(storage, "k1")
    assert (stored.state, stored.delivered_at) == ("delivered", now + timedelta(seconds=1))
    assert await claim(storage, now + timedelta(days=1)) == []
    # A late report of a relay whose lease had ended changes nothing.
    await relay.failed(claimed.id, error="late", retry_at=now, now=now)
    assert (await row(storage, "k1")).state == "delivered"
    assert await relay.stats(now=now) == OutboxStats(0, 0, None)


async def test_deliveries_are_recorded_together(
    storage: SqlStorage, clock: FixedClock, user_pk: int
) -> None:
    now = clock.now()
    await write(storage, *(message(f"k{n}", user_pk) for n in range(3)))
    k0, _, k2 = await claim(storage, now)
    await storage.outbox_relay().delivered([k0.id, k2.id], now=now)
    assert [(await row(storage, k)).state for k in ("k0", "k1", "k2")] == [
        "delivered",
        "pending",
        "delivered",
    ]
    await storage.outbox_relay().delivered([], now=now)


async def test_a_failure_is_retried_when_due_or_dead(
    storage: SqlStorage, clock: FixedClock, user_pk: int
) -> None:
    now = clock.now()
    await write(storage, message("k1", user_pk))
    relay = storage.outbox_relay()
    [claimed] = await claim(storage, now)
    retry_at = now + timedelta(seconds=7)
    await relay.failed(claimed.id, error="451 try later", retry_at=retry_at, now=now)
    stored = await row(storage, "k1")
    assert (stored.state, stored.available_at, stored.last_error) == (
        "pending",
        retry_at,
        "451 try later",
    )
    assert await claim(storage, retry_at - timedelta(microseconds=1)) == []
    [again] = await claim(storage, retry_at)
    assert again.attempts == 2
    await relay.failed(again.id, error="550 no such user", retry_at=None, now=retry_at)
    stored = await row(storage, "k1")
    assert (stored.state, stored.attempts, stored.last_error) == ("dead", 2, "550 no such user")
    assert await claim(storage, retry_at + timedelta(days=1)) == []
    await relay.delivered([again.id], now=retry_at)  # dead stays dead
    assert (await row(storage, "k1")).state == "dead"


async def test_released_messages_are_due_at_once_and_uncounted(
    storage: SqlStorage, clock: FixedClock, user_pk: int
) -> None:
    now = clock.now()
    await write(storage, message("k1", user_pk), message("k2", user_pk))
    claimed = await claim(storage, now)
    later = now + timedelta(seconds=3)
    await storage.outbox_relay().release(claimed, now=later)
    assert await claim(storage, later - timedelta(seconds=1)) == []
    again = await claim(storage, later)
    assert [(c.message.dedupe_key, c.attempts) for c in again] == [("k1", 1), ("k2", 1)]


async def test_a_stale_release_leaves_another_relays_claim_alone(
    storage: SqlStorage, clock: FixedClock, user_pk: int
) -> None:
    now = clock.now()
    await write(storage, message("k1", user_pk))
    stale = await claim(storage, now)
    taken_over = now + timedelta(seconds=LEASE)
    [current] = await claim(storage, taken_over)  # the first relay's lease ran out
    await storage.outbox_relay().release(stale, now=taken_over)
    stored = await row(storage, "k1")
    assert (stored.attempts, stored.available_at) == (2, current.lease_until)
    assert await claim(storage, taken_over) == []


async def test_stats_count_pending_and_dead(
    storage: SqlStorage, clock: FixedClock, user_pk: int
) -> None:
    start = clock.now()
    relay = storage.outbox_relay()
    assert await relay.stats(now=start) == OutboxStats(0, 0, None)
    for n in range(4):
        clock.set(start + timedelta(minutes=n))
        await write(storage, message(f"k{n}", user_pk))
    now = start + timedelta(minutes=10)
    k0, k1, *_ = await claim(storage, now, limit=4)
    await relay.delivered([k0.id], now=now)
    await relay.failed(k1.id, error="550", retry_at=None, now=now)
    # Claimed (leased) messages are still pending until an outcome is recorded.
    assert await relay.stats(now=now) == OutboxStats(
        pending=2, dead=1, oldest_pending_at=start + timedelta(minutes=2)
    )


async def test_concurrent_claims_never_share_a_message(
    storage: SqlStorage, clock: FixedClock, user_pk: int, database_url: str
) -> None:
    """Many relays claim at the same moment (on PostgreSQL from two engines, i.e. like two
    processes): every message goes to exactly one of them, once."""
    total = 300
    for start in range(0, total, 100):
        await write(storage, *(message(f"k{n}", user_pk) for n in range(start, start + 100)))
    other = SqlStorage.from_urls(database_url, None, clock, pool_size=5)
    now = clock.now()
    got: list[list[ClaimedMessage]] = []

    async def relay(store: SqlStorage) -> None:
        while claimed := await claim(store, now, limit=7):
            got.append(claimed)
            await asyncio.sleep(0)

    try:
        await asyncio.gather(*(relay(s) for s in [storage, other] * 6))
    finally:
        await other.close()
    ids = [c.id for batch in got for c in batch]
    assert len(ids) == total, "a message was claimed twice, or not at all"
    assert len(set(ids)) == total
    assert {c.attempts for batch in got for c in batch} == {1}
    assert len(got) > 12, "the claims did interleave"


async def test_only_messages_delivered_before_the_cutoff_are_purged(
    storage: SqlStorage, clock: FixedClock, user_pk: int
) -> None:
    start = clock.now()
    await write(storage, *(message(f"old{i}", user_pk) for i in range(5)))
    await write(storage, message("pending", user_pk), message("dead", user_pk))
    relay = storage.outbox_relay()
    claimed = {c.message.dedupe_key: c.id for c in await claim(storage, start)}
    await relay.delivered([claimed[f"old{i}"] for i in range(5)], now=start)
    await relay.failed(claimed["dead"], error="refused", retry_at=None, now=start)
    await write(storage, message("recent", user_pk))
    later = start + timedelta(days=2)
    again = {c.message.dedupe_key: c.id for c in await claim(storage, later)}
    assert set(again) == {"pending", "recent"}
    await relay.delivered([again["recent"]], now=later)

    cutoff = start + timedelta(days=1)
    assert await relay.purge_delivered(before=cutoff, limit=3) == 3
    assert await relay.purge_delivered(before=cutoff, limit=3) == 2
    assert await relay.purge_delivered(before=cutoff, limit=3) == 0
    async with storage.primary_reads.connect() as conn:
        left = set((await conn.execute(select(outbox.c.dedupe_key))).scalars())
    assert left == {"pending", "dead", "recent"}
