"""EnrollmentService on SQLite and PostgreSQL: seats, waitlists, rules, drops, idempotency."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from rushgate.domain import errors
from rushgate.domain.model import HoldingStatus
from rushgate.services.enrollment import EnrollmentResult, EnrollmentService
from tests.services.conftest import SENIORS_OPEN, TERM, World
from tests.support import check_invariants, holding_rows

ENROLLED, WAITLISTED = HoldingStatus.ENROLLED, HoldingStatus.WAITLISTED


def result(
    section_id: str, status: HoldingStatus, position: int | None = None, replayed: bool = False
) -> EnrollmentResult:
    return EnrollmentResult(section_id, status, position, replayed)


async def refused(
    world: World,
    error: type[errors.DomainError],
    student: str,
    section_id: str,
    key: str | None = None,
) -> errors.DomainError:
    """Assert the enrollment is refused with ``error`` and changes nothing."""
    before = await holding_rows(world.storage)
    with pytest.raises(error) as caught:
        await world.enroll(student, section_id, key)
    assert caught.value.code == error.code
    assert await holding_rows(world.storage) == before
    await check_invariants(world.storage)
    return caught.value


async def test_enroll_takes_a_seat(world: World) -> None:
    assert await world.enroll("s1", "PHYS100-01") == result("PHYS100-01", ENROLLED)
    assert await world.counts("PHYS100-01") == (1, 0)
    assert await world.schedule("s1") == [("PHYS100-01", "enrolled", None)]
    await check_invariants(world.storage)


async def test_section_full_without_waitlist(world: World) -> None:
    await world.enroll("s1", "ART100-01")
    error = await refused(world, errors.SectionFull, "s2", "ART100-01")
    assert error.context == {"section_id": "ART100-01"}
    assert await world.counts("ART100-01") == (1, 0)


async def test_waitlist_positions_then_waitlist_full(world: World) -> None:
    assert await world.enroll("s1", "CS101-01") == result("CS101-01", ENROLLED)
    assert await world.enroll("s2", "CS101-01") == result("CS101-01", WAITLISTED, 1)
    assert await world.enroll("s3", "CS101-01") == result("CS101-01", WAITLISTED, 2)
    await refused(world, errors.WaitlistFull, "s4", "CS101-01")
    assert await world.counts("CS101-01") == (1, 2)
    assert await world.schedule("s3") == [("CS101-01", "waitlisted", 2)]


async def test_already_enrolled_in_course(world: World) -> None:
    await world.enroll("s1", "CS101-02")
    error = await refused(world, errors.AlreadyEnrolled, "s1", "CS101-01")
    assert error.context["held_section_id"] == "CS101-02"
    await refused(world, errors.AlreadyEnrolled, "s1", "CS101-02")


async def test_already_enrolled_when_waitlisted_for_course(world: World) -> None:
    await world.enroll("s1", "CS101-01")
    await world.enroll("s2", "CS101-01")  # waitlisted
    error = await refused(world, errors.AlreadyEnrolled, "s2", "CS101-02")
    assert error.context["held_status"] == "waitlisted"
    await refused(world, errors.AlreadyEnrolled, "s2", "CS101-01")


async def test_time_conflict(world: World) -> None:
    await world.enroll("s1", "CS101-01")
    error = await refused(world, errors.TimeConflict, "s1", "MATH200-01")
    assert error.context == {"conflicting_section_id": "CS101-01", "day": "MON"}


async def test_waitlisted_section_counts_for_time_conflicts(world: World) -> None:
    await world.enroll("s1", "CS101-01")
    await world.enroll("s2", "CS101-01")  # waitlisted, MON 09:00
    await refused(world, errors.TimeConflict, "s2", "MATH200-01")


async def test_credit_limit_exact_allowed_then_over_refused(world: World) -> None:
    # "light" may hold 7 credits: 3 + 4 is exactly the limit, one more section is over.
    await world.enroll("light", "ART100-01")
    await world.enroll("light", "PHYS100-01")
    error = await refused(world, errors.CreditLimit, "light", "CS101-02")
    assert error.context == {"max_credits": 7, "would_have": 10}


async def test_waitlisted_credits_count(world: World) -> None:
    await world.enroll("s1", "CS101-01")
    await world.enroll("light", "CS101-01")  # waitlisted, 3 credits
    await world.enroll("light", "PHYS100-01")  # 7 credits
    await refused(world, errors.CreditLimit, "light", "ART100-01")


async def test_drop_frees_the_seat(world: World) -> None:
    await world.enroll("s1", "ART100-01")
    assert await world.drop("s1", "ART100-01") is None
    assert await world.counts("ART100-01") == (0, 0)
    assert await world.schedule("s1") == []
    assert await world.enroll("s2", "ART100-01") == result("ART100-01", ENROLLED)
    await check_invariants(world.storage)


async def test_drop_promotes_waitlist_head(world: World) -> None:
    await world.enroll("s1", "CS101-01")
    await world.enroll("s2", "CS101-01")
    await world.enroll("s3", "CS101-01")
    assert await world.drop("s1", "CS101-01") == world.pks["s2"]
    assert await world.counts("CS101-01") == (1, 1)
    assert await world.schedule("s2") == [("CS101-01", "enrolled", None)]
    assert await world.schedule("s3") == [("CS101-01", "waitlisted", 1)]
    await check_invariants(world.storage)
    # The seat went to the head: a newcomer waits behind s3.
    assert await world.enroll("s4", "CS101-01") == result("CS101-01", WAITLISTED, 2)


async def test_drop_of_waitlisted_entry(world: World) -> None:
    await world.enroll("s1", "CS101-01")
    await world.enroll("s2", "CS101-01")
    await world.enroll("s3", "CS101-01")
    assert await world.drop("s2", "CS101-01") is None
    assert await world.counts("CS101-01") == (1, 1)
    assert await world.schedule("s1") == [("CS101-01", "enrolled", None)]
    assert await world.schedule("s3") == [("CS101-01", "waitlisted", 1)]
    assert await world.enroll("s4", "CS101-01") == result("CS101-01", WAITLISTED, 2)
    await check_invariants(world.storage)


async def test_drop_of_something_not_held(world: World) -> None:
    await world.enroll("s1", "PHYS100-01")
    for section_id in ("ART100-01", "NOPE-01"):
        with pytest.raises(errors.NotFound):
            await world.drop("s1", section_id)
    with pytest.raises(errors.NotFound):
        await world.drop("s2", "PHYS100-01")  # someone else's seat
    world.term = "no-such-term"
    with pytest.raises(errors.NotFound):
        await world.drop("s1", "PHYS100-01")
    world.term = TERM.code
    assert await world.counts("PHYS100-01") == (1, 0)
    assert await world.schedule("s1") == [("PHYS100-01", "enrolled", None)]


async def test_unknown_section_term_or_student(world: World) -> None:
    await refused(world, errors.NotFound, "s1", "NOPE-01")
    world.term = "no-such-term"
    await refused(world, errors.NotFound, "s1", "PHYS100-01")
    world.term = TERM.code
    with pytest.raises(errors.NotFound):
        await world.service.enroll(
            student_pk=max(world.pks.values()) + 100, term_code=TERM.code, section_id="BIO100-01"
        )


@pytest.mark.parametrize(
    "at",
    [
        pytest.param(TERM.window.opens_at - timedelta(seconds=1), id="before-open"),
        pytest.param(TERM.window.closes_at, id="at-close"),
        pytest.param(TERM.window.closes_at + timedelta(days=1), id="after-close"),
    ],
)
async def test_window_closed(world: World, at: datetime) -> None:
    await world.enroll("s1", "PHYS100-01")
    world.clock.set(at)
    error = await refused(world, errors.WindowClosed, "s2", "PHYS100-01")
    assert error.context["closes_at"] == TERM.window.closes_at.isoformat()
    with pytest.raises(errors.WindowClosed):
        await world.drop("s1", "PHYS100-01")
    assert await world.counts("PHYS100-01") == (1, 0)


async def test_seniors_open_earlier(world: World) -> None:
    world.clock.set(SENIORS_OPEN + timedelta(minutes=5))
    assert await world.enroll("senior", "ART100-01") == result("ART100-01", ENROLLED)
    error = await refused(world, errors.WindowClosed, "s1", "PHYS100-01")
    assert error.context["opens_at"] == TERM.window.opens_at.isoformat()
    world.clock.set(SENIORS_OPEN - timedelta(seconds=1))
    await refused(world, errors.WindowClosed, "senior", "PHYS100-01")


async def test_idempotent_replay_takes_no_second_seat(world: World) -> None:
    first = await world.enroll("s1", "PHYS100-01", key="k-1")
    assert first == result("PHYS100-01", ENROLLED)
    again = await world.enroll("s1", "PHYS100-01", key="k-1")
    assert again == result("PHYS100-01", ENROLLED, replayed=True)
    assert await world.counts("PHYS100-01") == (1, 0)
    # Without a key the repeat is a new request and meets the course rule.
    await refused(world, errors.AlreadyEnrolled, "s1", "PHYS100-01")


async def test_idempotent_replay_of_a_waitlist_place(world: World) -> None:
    await world.enroll("s1", "CS101-01")
    first = await world.enroll("s2", "CS101-01", key="k")
    assert first == result("CS101-01", WAITLISTED, 1)
    assert await world.enroll("s2", "CS101-01", key="k") == result(
        "CS101-01", WAITLISTED, 1, replayed=True
    )
    assert await world.counts("CS101-01") == (1, 1)


async def test_same_key_other_section_is_refused(world: World) -> None:
    await world.enroll("s1", "PHYS100-01", key="k")
    await refused(world, errors.IdempotencyKeyReused, "s1", "BIO100-01", key="k")
    assert await world.counts("BIO100-01") == (0, 0)


async def test_keys_are_per_student(world: World) -> None:
    await world.enroll("s1", "PHYS100-01", key="k")
    assert await world.enroll("s2", "BIO100-01", key="k") == result("BIO100-01", ENROLLED)
    assert await world.enroll("s3", "PHYS100-01", key="k") == result("PHYS100-01", ENROLLED)
    assert await world.counts("PHYS100-01") == (2, 0)


async def test_refusals_are_not_remembered(world: World) -> None:
    await world.enroll("s1", "ART100-01")
    await refused(world, errors.SectionFull, "s2", "ART100-01", key="retry")
    await world.drop("s1", "ART100-01")
    assert await world.enroll("s2", "ART100-01", key="retry") == result("ART100-01", ENROLLED)
    assert await world.enroll("s2", "ART100-01", key="retry") == result(
        "ART100-01", ENROLLED, replayed=True
    )
    # A refused key may even be reused for another section: nothing was stored.
    await refused(world, errors.NotFound, "s3", "NOPE-01", key="k3")
    assert await world.enroll("s3", "PHYS100-01", key="k3") == result("PHYS100-01", ENROLLED)


def test_result_record_roundtrip() -> None:
    for original in (result("A", ENROLLED), result("B", WAITLISTED, 3)):
        record = original.to_record()
        assert EnrollmentResult.from_record(record, replayed=True) == EnrollmentResult(
            original.section_id, original.status, original.waitlist_position, True
        )


async def test_schedule_reads_its_own_writes(world: World) -> None:
    service = EnrollmentService(world.storage, world.clock)
    await world.enroll("s1", "BIO100-01")
    entries = await service.schedule(student_pk=world.pks["s1"], term_code=TERM.code)
    assert [e.section.section_id for e in entries] == ["BIO100-01"]
