"""Waiting-room arithmetic: the lottery permutation, places and admission budgets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rushgate.domain.waiting_room import (
    MAX_POLL_SECONDS,
    QueueState,
    RoomPhase,
    RoomSnapshot,
    keyed_permutation,
    place_of,
    plan_admission,
)

NOW = datetime(2026, 2, 10, 10, 0, tzinfo=UTC)


def snapshot(**changes: object) -> RoomSnapshot:
    values: dict[str, object] = {
        "term": "t",
        "phase": RoomPhase.OPEN,
        "issued": 100,
        "serving": 10,
        "prequeue_size": 20,
        "seed": b"seed-one........",
        "active": 10,
        "admission_rate": 0.0,
        "admit_per_second": 5,
        "paused": False,
        "opens_at": NOW,
        "taken_at": NOW,
    }
    values.update(changes)
    return RoomSnapshot(**values)  # type: ignore[arg-type]


# --- the lottery -----------------------------------------------------------------------


@given(size=st.integers(1, 3000), seed=st.binary(min_size=16, max_size=16))
def test_the_lottery_is_a_permutation(size: int, seed: bytes) -> None:
    assert sorted(keyed_permutation(seed, size, i) for i in range(size)) == list(range(size))


def test_one_seed_gives_one_order_and_seeds_differ() -> None:
    order = [keyed_permutation(b"a" * 16, 500, i) for i in range(500)]
    assert order == [keyed_permutation(b"a" * 16, 500, i) for i in range(500)]
    other = [keyed_permutation(b"b" * 16, 500, i) for i in range(500)]
    assert other != order
    assert order != list(range(500))


def test_the_lottery_is_not_biased_toward_early_tickets() -> None:
    # Over many seeds, ticket 1 lands in the front half about as often as in the back.
    front = sum(keyed_permutation(n.to_bytes(16, "big"), 1000, 0) < 500 for n in range(2000))
    assert 850 < front < 1150


def test_out_of_range_indexes_are_refused() -> None:
    with pytest.raises(ValueError, match="out of range"):
        keyed_permutation(b"s" * 16, 10, 10)


# --- places ----------------------------------------------------------------------------


def test_fifo_tickets_wait_behind_the_serving_counter() -> None:
    place = place_of(50, snapshot(), NOW)
    assert (place.state, place.position, place.ahead) == (QueueState.WAITING, 40, 39)
    assert place.eta_seconds == 8  # 40 places at the configured 5/s: nothing measured yet
    measured = place_of(50, snapshot(admission_rate=20.0), NOW)
    assert measured.eta_seconds == 2


def test_prequeue_tickets_take_their_lottery_position() -> None:
    room = snapshot(serving=0)
    positions = [room.position_of(t) for t in range(1, 21)]
    assert sorted(positions) == list(range(1, 21))  # type: ignore[type-var]
    assert positions != list(range(1, 21))
    assert room.position_of(21) == 21


def test_before_the_draw_nobody_has_a_position() -> None:
    room = snapshot(
        prequeue_size=None,
        seed=None,
        serving=0,
        phase=RoomPhase.PREQUEUE,
        opens_at=NOW + timedelta(seconds=90),
    )
    place = place_of(3, room, NOW)
    assert (place.state, place.position, place.eta_seconds) == (QueueState.PREQUEUE, None, 90)


def test_served_positions_are_admitted_and_closed_rooms_closed() -> None:
    room = snapshot(prequeue_size=0, serving=10)
    assert place_of(10, room, NOW).state is QueueState.ADMITTED
    assert place_of(11, room, NOW).state is QueueState.WAITING
    closed = place_of(11, snapshot(phase=RoomPhase.CLOSED), NOW)
    assert (closed.state, closed.reason) == (QueueState.CLOSED, "window_closed")


def test_far_back_students_are_told_to_poll_rarely() -> None:
    near = place_of(12, snapshot(prequeue_size=0), NOW)
    far = place_of(100_000, snapshot(prequeue_size=0, issued=100_000), NOW)
    assert near.poll_after_seconds == 1
    assert far.poll_after_seconds == MAX_POLL_SECONDS


# --- admission budget ------------------------------------------------------------------


def plan(**changes: float | int | bool) -> tuple[int, float, float]:
    values: dict[str, float | int | bool] = {
        "waiting": 1000,
        "active": 0,
        "max_active": 10_000,
        "admit_per_second": 10,
        "elapsed_seconds": 0.25,
        "carry": 0.0,
        "admission_rate": 0.0,
        "healthy": True,
    }
    values.update(changes)
    result = plan_admission(**values)  # type: ignore[arg-type]
    return result.grant, result.carry, result.admission_rate


def test_the_budget_accrues_at_the_configured_rate() -> None:
    granted, carry = 0, 0.0
    for _ in range(40):  # ten seconds of quarter-second ticks
        grant, carry, _ = plan(carry=carry)
        granted += grant
    assert granted in (99, 100)


def test_the_budget_is_capped_by_active_slots_waiting_and_health() -> None:
    assert plan(elapsed_seconds=1.0, active=995, max_active=1000)[0] == 5
    assert plan(elapsed_seconds=1.0, waiting=3)[0] == 3
    assert plan(elapsed_seconds=1.0, healthy=False)[0] == 0
    assert plan(elapsed_seconds=1.0, active=2000, max_active=1000)[0] == 0


def test_a_long_gap_does_not_release_a_flood() -> None:
    assert plan(elapsed_seconds=60.0, carry=500.0)[0] == 10  # at most one second's worth


@given(st.lists(st.tuples(st.integers(0, 50), st.booleans()), min_size=1, max_size=200))
def test_never_more_than_the_rate_allows(ticks: list[tuple[int, bool]]) -> None:
    carry, rate, granted = 0.0, 0.0, 0
    for waiting, healthy in ticks:
        result = plan_admission(
            waiting=waiting,
            active=0,
            max_active=10_000,
            admit_per_second=8,
            elapsed_seconds=0.25,
            carry=carry,
            admission_rate=rate,
            healthy=healthy,
        )
        assert 0 <= result.grant <= waiting
        carry, rate, granted = result.carry, result.admission_rate, granted + result.grant
    # the bucket starts empty and holds at most one second of budget
    assert granted <= 8 * 0.25 * len(ticks) + 8


def test_the_measured_rate_follows_a_drained_queue_only() -> None:
    rate, carry = 0.0, 0.0
    for _ in range(100):
        _, carry, rate = plan(admission_rate=rate, carry=carry)
    assert 9.0 < rate < 11.0
    # an empty queue says nothing about how fast a queue drains: the rate is kept
    assert plan(admission_rate=rate, waiting=0)[2] == rate
