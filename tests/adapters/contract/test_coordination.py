"""Contract of the coordination ports: the in-process and the Redis implementations must
behave alike, under concurrency too. Redis runs for real (a key prefix per test)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from rushgate.adapters.memory.coordination import MemoryCoordination
from rushgate.domain.clock import SystemClock
from rushgate.domain.waiting_room import RoomPhase, RoomSnapshot
from rushgate.services.ports.coordination import Coordination
from rushgate.services.ports.enrollment import SectionView
from rushgate.services.ports.locks import Lease
from rushgate.services.ports.seat_hints import HintVerdict, SeatOutcome
from rushgate.services.ports.waiting_room import Advance, QueueCounters
from tests.support import REDIS_URL, redis_reachable, require_service

TERM = "2026-spring"
SEED = b"0123456789abcdef"


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def coord(request: pytest.FixtureRequest) -> AsyncIterator[Coordination]:
    if request.param == "memory":
        yield MemoryCoordination(SystemClock())
        return
    reason = await redis_reachable()
    if reason is not None:
        require_service("Redis", reason)
    from rushgate.adapters.redis.coordination import RedisCoordination

    prefix = f"rgtest:{uuid.uuid4().hex[:12]}:"
    redis_coord = RedisCoordination.from_url(REDIS_URL, prefix=prefix)
    try:
        yield redis_coord
    finally:
        await redis_coord.delete_all_keys()
        await redis_coord.close()


def now_ms() -> int:
    return int(datetime.now(UTC).timestamp() * 1000)


async def held(coord: Coordination) -> Lease:
    lease = Lease("admitter", uuid.uuid4().hex)
    assert await coord.lock.acquire(lease, 10_000)
    return lease


def step(
    grant: int,
    *,
    previous: int | None,
    at: int | None = None,
    expire_before: int = 0,
    **kw: object,
) -> Advance:
    return Advance(
        now_ms=now_ms() if at is None else at,
        grant=grant,
        carry=0.25,
        admission_rate=3.5,
        expire_before_ms=expire_before,
        previous_tick_ms=previous,
        **kw,  # type: ignore[arg-type]
    )


async def advance(
    coord: Coordination, lease: Lease, grant: int, **kw: object
) -> QueueCounters | None:
    """One tick planned on the current counters, as the admitter does."""
    previous = (await coord.store.counters(TERM)).last_tick_ms
    return await coord.store.advance(TERM, lease, step(grant, previous=previous, **kw))  # type: ignore[arg-type]


# --- tickets ---------------------------------------------------------------------------


async def test_a_student_holds_one_ticket_whatever_the_repeats(coord: Coordination) -> None:
    assert await coord.store.join(TERM, 7, freeze_seed=None) == 1
    assert await coord.store.join(TERM, 7, freeze_seed=None) == 1
    assert await coord.store.join(TERM, 8, freeze_seed=None) == 2
    assert await coord.store.ticket(TERM, 7) == 1
    assert await coord.store.ticket(TERM, 9) is None
    assert await coord.store.ticket("other-term", 7) is None


async def test_concurrent_joins_hand_out_each_number_once(coord: Coordination) -> None:
    students = list(range(1, 301))
    # every student joins three times at once, as from three tabs or nodes
    tickets = await asyncio.gather(
        *(coord.store.join(TERM, s, freeze_seed=None) for s in students * 3)
    )
    by_student: dict[int, set[int]] = {}
    for student, ticket in zip(students * 3, tickets, strict=True):
        by_student.setdefault(student, set()).add(ticket)
    assert all(len(t) == 1 for t in by_student.values())
    assert sorted(t.pop() for t in by_student.values()) == list(range(1, 301))
    assert (await coord.store.counters(TERM)).issued == 300


async def test_freezing_closes_the_prequeue_once_and_keeps_the_first_seed(
    coord: Coordination,
) -> None:
    for student in (1, 2, 3):
        await coord.store.join(TERM, student, freeze_seed=None)
    before = await coord.store.counters(TERM)
    assert before.prequeue_size is None
    assert before.seed is None
    assert await coord.store.join(TERM, 4, freeze_seed=SEED) == 4
    assert await coord.store.join(TERM, 5, freeze_seed=b"another seed....") == 5
    after = await coord.store.counters(TERM)
    assert (after.prequeue_size, after.seed, after.issued) == (3, SEED, 5)


# --- admission -------------------------------------------------------------------------


async def test_advance_serves_who_waits_and_counts_them_active(coord: Coordination) -> None:
    for student in range(1, 11):
        await coord.store.join(TERM, student, freeze_seed=SEED)
    lease = await held(coord)
    at = now_ms()
    counters = await advance(coord, lease, 4, at=at)
    assert counters is not None
    assert (counters.serving, counters.active, counters.issued) == (4, 4, 10)
    assert (counters.carry, counters.admission_rate, counters.last_tick_ms) == (0.25, 3.5, at)
    # never beyond the last ticket issued
    counters = await advance(coord, lease, 100, at=at + 1)
    assert counters is not None
    assert (counters.serving, counters.active) == (10, 10)
    assert await coord.store.admission(TERM, 1) is not None
    first = await coord.store.admission(TERM, 4)
    assert first is not None
    assert first.granted_at_ms == at
    late = await coord.store.admission(TERM, 5)
    assert late is not None
    assert late.granted_at_ms == at + 1
    assert await coord.store.admission(TERM, 11) is None


async def test_admissions_expire_and_free_their_slots(coord: Coordination) -> None:
    for student in range(1, 6):
        await coord.store.join(TERM, student, freeze_seed=SEED)
    lease = await held(coord)
    await advance(coord, lease, 2, at=1_000)
    await advance(coord, lease, 2, at=2_000)
    counters = await advance(coord, lease, 0, at=3_000, expire_before=1_500)
    assert counters is not None
    assert (counters.serving, counters.active) == (4, 2)
    assert await coord.store.admission(TERM, 1) is None
    assert await coord.store.admission(TERM, 2) is None
    assert await coord.store.admission(TERM, 3) is not None


async def test_advance_without_the_lease_writes_nothing(coord: Coordination) -> None:
    await coord.store.join(TERM, 1, freeze_seed=None)
    stranger = Lease("admitter", "not-the-holder")
    assert await advance(coord, stranger, 1, freeze_seed=SEED) is None
    holder = await held(coord)
    assert await advance(coord, stranger, 1) is None
    counters = await coord.store.counters(TERM)
    assert (counters.serving, counters.prequeue_size) == (0, None)
    assert await advance(coord, holder, 1) is not None


async def test_a_retried_tick_grants_nothing_more(coord: Coordination) -> None:
    for student in range(1, 11):
        await coord.store.join(TERM, student, freeze_seed=SEED)
    lease = await held(coord)
    planned = step(3, previous=None, at=1_000)
    first = await coord.store.advance(TERM, lease, planned)
    again = await coord.store.advance(TERM, lease, planned)  # e.g. resent after a timeout
    assert first is not None
    assert again == first
    assert (first.serving, first.active) == (3, 3)


async def test_advance_can_close_the_prequeue(coord: Coordination) -> None:
    await coord.store.join(TERM, 1, freeze_seed=None)
    await coord.store.join(TERM, 2, freeze_seed=None)
    counters = await advance(coord, await held(coord), 0, freeze_seed=SEED)
    assert counters is not None
    assert (counters.prequeue_size, counters.seed) == (2, SEED)


async def test_leaving_frees_the_slot_once_and_revokes_the_ticket(coord: Coordination) -> None:
    for student in (1, 2, 3):
        await coord.store.join(TERM, student, freeze_seed=SEED)
    lease = await held(coord)
    await advance(coord, lease, 2)
    for _ in range(2):  # a repeated leave frees nothing more
        await coord.store.leave(TERM, 1, ticket=1, position=1, revoke_ms=60_000)
    counters = await coord.store.counters(TERM)
    assert counters.active == 1
    assert await coord.store.ticket(TERM, 1) is None
    assert await coord.store.join(TERM, 1, freeze_seed=SEED) == 4  # back of the line
    revoked = await coord.hints.precheck(
        TERM, "S1", student_pk=1, idempotency_key=None, admission_ticket=1
    )
    fine = await coord.hints.precheck(
        TERM, "S1", student_pk=2, idempotency_key=None, admission_ticket=2
    )
    assert revoked.revoked
    assert not fine.revoked


async def test_replacing_a_ticket_is_a_compare_and_set(coord: Coordination) -> None:
    await coord.store.join(TERM, 1, freeze_seed=None)
    await coord.store.join(TERM, 2, freeze_seed=None)
    results = await asyncio.gather(*(coord.store.replace_ticket(TERM, 1, old=1) for _ in range(5)))
    assert set(results) == {3}
    assert await coord.store.replace_ticket(TERM, 1, old=1) == 3
    assert (await coord.store.counters(TERM)).issued == 3


# --- the cluster lock ------------------------------------------------------------------


async def test_the_lock_has_one_holder_and_expires(coord: Coordination) -> None:
    first, second = Lease("job", "a"), Lease("job", "b")
    assert await coord.lock.acquire(first, 200)
    assert not await coord.lock.acquire(second, 200)
    assert await coord.lock.acquire(first, 200)  # the holder extends
    await asyncio.sleep(0.35)
    assert await coord.lock.acquire(second, 5_000)
    assert not await coord.lock.acquire(first, 5_000)
    await coord.lock.release(first)  # not the holder: no effect
    assert not await coord.lock.acquire(first, 5_000)
    await coord.lock.release(second)
    assert await coord.lock.acquire(first, 5_000)


async def test_concurrent_acquires_have_one_winner(coord: Coordination) -> None:
    leases = [Lease("job", str(i)) for i in range(20)]
    won = await asyncio.gather(*(coord.lock.acquire(lease, 5_000) for lease in leases))
    assert sum(won) == 1


# --- the bus ---------------------------------------------------------------------------


async def test_snapshots_reach_listeners_intact(coord: Coordination) -> None:
    snapshot = RoomSnapshot(
        term=TERM,
        phase=RoomPhase.OPEN,
        issued=10,
        serving=4,
        prequeue_size=3,
        seed=SEED,
        active=4,
        admission_rate=2.5,
        admit_per_second=5,
        paused=False,
        opens_at=datetime(2026, 2, 10, 10, 0, tzinfo=UTC),
        taken_at=datetime(2026, 2, 10, 10, 0, 1, 250000, tzinfo=UTC),
    )
    received: list[RoomSnapshot] = []
    ready = asyncio.Event()

    async def listen() -> None:
        stream = coord.bus.listen()
        first = asyncio.ensure_future(anext(stream))
        await asyncio.sleep(0.1)  # let the subscription settle
        ready.set()
        received.append(await first)
        await stream.aclose()  # type: ignore[attr-defined]

    task = asyncio.create_task(listen())
    await ready.wait()
    await coord.bus.publish(snapshot)
    await asyncio.wait_for(task, 5)
    assert received == [snapshot]


# --- seat hints ------------------------------------------------------------------------


def section(
    section_id: str, capacity: int, enrolled: int, waitlist: int = 0, waitlisted: int = 0
) -> SectionView:
    return SectionView(
        section_id=section_id,
        course_code="C",
        title="T",
        credits=3,
        capacity=capacity,
        enrolled=enrolled,
        waitlist_capacity=waitlist,
        waitlisted=waitlisted,
        meetings=(),
    )


async def verdict(coord: Coordination, section_id: str, key: str | None = None) -> HintVerdict:
    check = await coord.hints.precheck(
        TERM, section_id, student_pk=1, idempotency_key=key, admission_ticket=None
    )
    return check.verdict


async def rebuild(coord: Coordination, *sections: SectionView) -> None:
    stamp = await coord.hints.begin_rebuild(TERM)
    await coord.hints.rebuild(TERM, sections, stamp)


async def test_unknown_sections_go_to_the_database(coord: Coordination) -> None:
    assert await verdict(coord, "nowhere") is HintVerdict.PROCEED


async def test_a_rebuild_tells_full_sections_apart(coord: Coordination) -> None:
    await rebuild(
        coord,
        section("full", 2, 2),
        section("open", 2, 1),
        section("waitlist-open", 2, 2, waitlist=2, waitlisted=1),
        section("all-full", 2, 2, waitlist=2, waitlisted=2),
    )
    assert await verdict(coord, "full") is HintVerdict.SECTION_FULL
    assert await verdict(coord, "open") is HintVerdict.PROCEED
    assert await verdict(coord, "waitlist-open") is HintVerdict.PROCEED
    assert await verdict(coord, "all-full") is HintVerdict.WAITLIST_FULL


async def test_outcomes_mark_unknown_sections_full(coord: Coordination) -> None:
    for section_id, outcome, expected in (
        ("A", SeatOutcome.SECTION_FULL, HintVerdict.SECTION_FULL),
        ("B", SeatOutcome.WAITLIST_FULL, HintVerdict.WAITLIST_FULL),
    ):
        check = await coord.hints.precheck(
            TERM, section_id, student_pk=1, idempotency_key=None, admission_ticket=None
        )
        await coord.hints.record(TERM, section_id, outcome, check.generation)
        assert await verdict(coord, section_id) is expected, section_id


async def test_an_outcome_overrides_the_counts_of_a_rebuild(coord: Coordination) -> None:
    # the rebuild counted room; a transaction since took the last place
    await rebuild(coord, section("S", 2, 1), section("W", 2, 2, waitlist=3, waitlisted=1))
    for section_id, outcome in (("S", SeatOutcome.SECTION_FULL), ("W", SeatOutcome.WAITLIST_FULL)):
        check = await coord.hints.precheck(
            TERM, section_id, student_pk=1, idempotency_key=None, admission_ticket=None
        )
        assert check.verdict is HintVerdict.PROCEED
        await coord.hints.record(TERM, section_id, outcome, check.generation)
    assert await verdict(coord, "S") is HintVerdict.SECTION_FULL
    assert await verdict(coord, "W") is HintVerdict.WAITLIST_FULL


async def test_a_drop_reopens_the_section_and_voids_older_outcomes(coord: Coordination) -> None:
    await rebuild(coord, section("S", 1, 1))
    stale = await coord.hints.precheck(
        TERM, "S", student_pk=1, idempotency_key=None, admission_ticket=None
    )
    await coord.hints.releasing(TERM, "S")
    assert await verdict(coord, "S") is HintVerdict.PROCEED
    await coord.hints.released(TERM, "S")
    # a transaction that saw "full" before the drop committed must not hide the freed seat
    await coord.hints.record(TERM, "S", SeatOutcome.SECTION_FULL, stale.generation)
    assert await verdict(coord, "S") is HintVerdict.PROCEED


async def test_a_rebuild_does_not_overwrite_a_drop_that_raced_it(coord: Coordination) -> None:
    stamp = await coord.hints.begin_rebuild(TERM)
    await coord.hints.releasing(TERM, "S")  # the drop commits after the rebuild's read
    await coord.hints.released(TERM, "S")
    await coord.hints.rebuild(TERM, [section("S", 1, 1), section("T", 1, 1)], stamp)
    assert await verdict(coord, "S") is HintVerdict.PROCEED
    assert await verdict(coord, "T") is HintVerdict.SECTION_FULL


async def test_a_rebuild_voids_outcomes_in_flight(coord: Coordination) -> None:
    await rebuild(coord, section("S", 3, 2))
    in_flight = await coord.hints.precheck(
        TERM, "S", student_pk=1, idempotency_key=None, admission_ticket=None
    )
    # the last seat was taken, then given back; the rebuild reads the freed seat before
    # the "full" of the transaction that took it is recorded
    await rebuild(coord, section("S", 3, 2))
    await coord.hints.record(TERM, "S", SeatOutcome.SECTION_FULL, in_flight.generation)
    assert await verdict(coord, "S") is HintVerdict.PROCEED
    check = await coord.hints.precheck(
        TERM, "S", student_pk=1, idempotency_key=None, admission_ticket=None
    )
    await coord.hints.record(TERM, "S", SeatOutcome.SECTION_FULL, check.generation)
    assert await verdict(coord, "S") is HintVerdict.SECTION_FULL


async def test_a_tried_idempotency_key_always_reaches_the_database(coord: Coordination) -> None:
    await rebuild(coord, section("S", 1, 0))
    assert await verdict(coord, "S", key="k1") is HintVerdict.PROCEED
    check = await coord.hints.precheck(
        TERM, "S", student_pk=2, idempotency_key=None, admission_ticket=None
    )
    await coord.hints.record(TERM, "S", SeatOutcome.SECTION_FULL, check.generation)
    assert await verdict(coord, "S", key="k1") is HintVerdict.PROCEED  # may be a replay
    assert await verdict(coord, "S", key="k2") is HintVerdict.SECTION_FULL
    assert await verdict(coord, "S", key="k2") is HintVerdict.SECTION_FULL  # not marked


async def test_the_epoch_is_stable_while_the_data_lives(coord: Coordination) -> None:
    first = await coord.hints.epoch()
    assert first
    assert await coord.hints.epoch() == first
    await coord.ping()
