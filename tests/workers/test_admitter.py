"""The admitter, the seat-hint keeper and the waiting-room service on real storage, with
in-process coordination and a fixed clock: one ticking node, pauses, gauges, closing."""

from __future__ import annotations

from datetime import timedelta

import pytest

from rushgate.adapters.memory.coordination import MemoryCoordination
from rushgate.adapters.security import AdmissionTokens
from rushgate.adapters.sql.engine import SqlStorage
from rushgate.domain.clock import FixedClock
from rushgate.domain.waiting_room import QueueState
from rushgate.observability.metrics import RoomGauges
from rushgate.services.waiting_room import RoomFeed, TermDirectory, WaitingRoomService
from rushgate.workers.admitter import Admitter, database_health
from rushgate.workers.seat_hints import SeatHintKeeper
from tests.support import SECRET, new_term, seed

TICK = 0.25
TERM = new_term("room", waiting_room_enabled=True, admit_per_second=8, max_active=1000)


class Node:
    """One node's waiting-room parts over shared coordination."""

    def __init__(
        self,
        coordination: MemoryCoordination,
        storage: SqlStorage,
        clock: FixedClock,
        *,
        healthy: bool = True,
    ) -> None:
        self.healthy = healthy
        self.terms = TermDirectory(storage.reads)
        self.feed = RoomFeed()
        self.gauges = RoomGauges()

        async def backend_healthy() -> bool:
            return self.healthy

        self.admitter = Admitter(
            coordination.store,
            coordination.lock,
            coordination.bus,
            self.feed,
            self.terms,
            clock,
            self.gauges,
            tick_seconds=TICK,
            backend_healthy=backend_healthy,
        )
        self.service = WaitingRoomService(
            coordination.store,
            AdmissionTokens(SECRET, clock),
            self.terms,
            self.feed,
            clock,
            tick_seconds=TICK,
        )


@pytest.fixture
async def pks(storage: SqlStorage) -> dict[str, int]:
    from tests.support import new_student

    students = [new_student(f"w{n}") for n in range(1, 21)]
    return await seed(storage, term=TERM, sections=[], students=students)


@pytest.fixture
def coordination(clock: FixedClock) -> MemoryCoordination:
    return MemoryCoordination(clock)


async def join_all(node: Node, pks: dict[str, int]) -> None:
    for n in range(1, 21):
        await node.service.join(student_pk=pks[f"w{n}"], term_code=TERM.code)


async def admitted(node: Node, pks: dict[str, int]) -> int:
    states = [
        (await node.service.status(student_pk=pks[f"w{n}"], term_code=TERM.code)).place.state
        for n in range(1, 21)
    ]
    return states.count(QueueState.ADMITTED)


async def test_one_node_ticks_and_another_takes_over_when_it_dies(
    storage: SqlStorage, clock: FixedClock, coordination: MemoryCoordination, pks: dict[str, int]
) -> None:
    first, second = (Node(coordination, storage, clock) for _ in range(2))
    await join_all(first, pks)
    clock.set(clock.now() + timedelta(seconds=TICK))
    assert await first.admitter.tick_once()
    assert not await second.admitter.tick_once()  # the lock is held
    assert await admitted(second, pks) == 2
    # the first node stops ticking (it died): its lease runs out, the second takes over
    clock.set(clock.now() + timedelta(milliseconds=first.admitter.lease_ttl_ms + 1))
    assert await second.admitter.tick_once()
    assert not await first.admitter.tick_once()
    assert await admitted(second, pks) == 10  # 2 + one second's worth (the burst cap)


async def test_one_keeper_rebuilds_the_seat_hints_and_another_takes_over(
    storage: SqlStorage, clock: FixedClock, coordination: MemoryCoordination, pks: dict[str, int]
) -> None:
    def keeper() -> SeatHintKeeper:
        terms = TermDirectory(storage.reads)
        return SeatHintKeeper(
            coordination.hints, coordination.lock, storage, terms, clock, reconcile_seconds=30
        )

    async def rebuilds_so_far() -> int:
        # Every rebuild, and this probe too, starts a new term generation.
        return (await coordination.hints.begin_rebuild(TERM.code)).term_generation - 1

    first, second, third = keeper(), keeper(), keeper()
    for each in (first, second, third):
        await each.check()
    assert await rebuilds_so_far() == 1  # only the lock holder read the database
    await first.release()  # a node shutting down hands over
    await second.check()
    await third.check()
    assert await rebuilds_so_far() == 3  # the new holder rebuilt at once, the probe is 2
    # the holder dies without handing over: its lease runs out, another takes over
    clock.set(clock.now() + timedelta(milliseconds=SeatHintKeeper.LEASE_TTL_MS + 1))
    await third.check()
    assert await rebuilds_so_far() == 5


async def test_admission_pauses_while_the_database_is_unwell(
    storage: SqlStorage, clock: FixedClock, coordination: MemoryCoordination, pks: dict[str, int]
) -> None:
    node = Node(coordination, storage, clock, healthy=False)
    await join_all(node, pks)
    for _ in range(8):
        clock.set(clock.now() + timedelta(seconds=TICK))
        await node.admitter.tick_once()
        node.admitter._health.checked_at = float("-inf")  # re-check at every tick
    assert await admitted(node, pks) == 0
    gauge = node.gauges.rooms()[TERM.code]
    assert gauge.paused
    assert (gauge.waiting, gauge.active, gauge.admitted_total) == (20, 0, 0)
    node.healthy = True
    node.admitter._health.checked_at = float("-inf")
    clock.set(clock.now() + timedelta(seconds=TICK))
    await node.admitter.tick_once()
    assert await admitted(node, pks) == 2
    gauge = node.gauges.rooms()[TERM.code]
    assert not gauge.paused
    assert (gauge.waiting, gauge.active, gauge.admitted_last_tick) == (18, 2, 2)


async def test_the_database_health_probe_measures_a_real_ping(storage: SqlStorage) -> None:
    assert await database_health(storage, 5.0)()
    assert not await database_health(storage, 0.0)()  # nothing answers in no time


async def test_a_closed_room_admits_nobody_and_says_so(
    storage: SqlStorage, clock: FixedClock, coordination: MemoryCoordination, pks: dict[str, int]
) -> None:
    node = Node(coordination, storage, clock)
    await join_all(node, pks)
    clock.set(TERM.window.closes_at)
    await node.admitter.tick_once()
    standing = await node.service.status(student_pk=pks["w1"], term_code=TERM.code)
    assert standing.place.state is QueueState.CLOSED
    late = await node.service.join(student_pk=pks["w1"], term_code=TERM.code)
    assert (late.place.state, late.place.reason) == (QueueState.CLOSED, "window_closed")
    assert (await coordination.store.counters(TERM.code)).serving == 0


async def test_other_nodes_follow_the_ticking_node_through_the_bus(
    storage: SqlStorage, clock: FixedClock, coordination: MemoryCoordination, pks: dict[str, int]
) -> None:
    import asyncio

    ticking, following = Node(coordination, storage, clock), Node(coordination, storage, clock)
    follow = asyncio.create_task(following.feed.follow(coordination.bus))
    await asyncio.sleep(0)
    await join_all(ticking, pks)
    clock.set(clock.now() + timedelta(seconds=TICK))
    await ticking.admitter.tick_once()
    await asyncio.sleep(0)
    snapshot = following.feed.fresh(TERM.code, 60)
    follow.cancel()
    assert snapshot is not None
    assert (snapshot.serving, snapshot.issued) == (2, 20)
