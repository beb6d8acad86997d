"""The enrollment repository contract: ``SqliteEnrollmentRepository`` on SQLite and
``PgEnrollmentRepository`` on PostgreSQL pass the same tests.

Each step commits its own unit of work, as the service does, and the seat invariants are
checked against the rows after every step.
"""

from __future__ import annotations

import pytest

from rushgate.adapters.sql.engine import SqlStorage
from rushgate.domain.errors import AlreadyEnrolled, NotFound
from rushgate.domain.model import HoldingStatus
from rushgate.services.ports.enrollment import (
    EnrollmentContext,
    Receipt,
    SectionForEnrollment,
    StoredResult,
)
from tests.support import (
    check_invariants,
    holding_rows,
    meeting,
    new_section,
    new_student,
    new_term,
    seed,
)

TERM = new_term().code
STUDENTS = [new_student(f"s{n}") for n in range(1, 7)]


async def find(storage: SqlStorage, section_id: str) -> SectionForEnrollment:
    async with storage.unit_of_work() as uow:
        return await uow.enrollments.find_section(TERM, section_id)


async def counts(storage: SqlStorage, section_id: str) -> tuple[int, int]:
    view = next(
        s for s in await storage.reads(fresh=True).catalog(TERM) if s.section_id == section_id
    )
    return view.enrolled, view.waitlisted


async def take(storage: SqlStorage, section: SectionForEnrollment, pk: int) -> int | None:
    """The seats left after taking one, or None when none was free."""
    async with storage.unit_of_work() as uow:
        taken = await uow.enrollments.take_seat(section, pk)
        await uow.commit()
    await check_invariants(storage)
    return taken


async def wait(storage: SqlStorage, section: SectionForEnrollment, pk: int) -> int | None:
    async with storage.unit_of_work() as uow:
        position = await uow.enrollments.join_waitlist(section, pk)
        await uow.commit()
    await check_invariants(storage)
    return position


async def user_pk_of(storage: SqlStorage, student_pk: int) -> int:
    for student in STUDENTS:
        account = await storage.reads(fresh=True).account(student.student_id)
        if account is not None and account.student_pk == student_pk:
            return account.user_pk
    raise AssertionError(f"no account for student {student_pk}")


async def drop(storage: SqlStorage, section: SectionForEnrollment, pk: int) -> int | None:
    """The service's drop sequence, minus the checks: remove, then promote or release.
    The promoted student's pk."""
    async with storage.unit_of_work() as uow:
        repo = uow.enrollments
        await repo.lock_section(section.pk)
        was = await repo.remove_holding(pk, section.pk)
        promoted = None
        if was is HoldingStatus.ENROLLED:
            promoted = await repo.promote_waitlist_head(section.pk)
            if promoted is None:
                await repo.release_seat(section.pk)
        await uow.commit()
    await check_invariants(storage)
    if promoted is None:
        return None
    assert promoted.user_pk == await user_pk_of(storage, promoted.student_pk)
    return promoted.student_pk


@pytest.fixture
async def pks(storage: SqlStorage) -> list[int]:
    sections = [
        new_section("CS101-01", capacity=2, waitlist_capacity=2),
        new_section("CS101-02", capacity=1, meetings=(meeting("TUE"),)),
        new_section("ART100-01", capacity=0, waitlist_capacity=1, meetings=(meeting("FRI"),)),
    ]
    by_id = await seed(storage, sections=sections, students=STUDENTS)
    return [by_id[s.student_id] for s in STUDENTS]


async def test_find_section_and_unknowns(storage: SqlStorage, pks: list[int]) -> None:
    section = await find(storage, "CS101-01")
    assert (section.capacity, section.waitlist_capacity) == (2, 2)
    assert section.ref.course_code == "CS101"
    assert section.ref.meetings == (meeting(),)
    assert section.window.opens_at == new_term().window.opens_at
    async with storage.unit_of_work() as uow:
        with pytest.raises(NotFound):
            await uow.enrollments.find_section(TERM, "NOPE-01")
        with pytest.raises(NotFound):
            await uow.enrollments.find_section("no-term", "CS101-01")
        with pytest.raises(NotFound):
            await uow.enrollments.lock_student(max(pks) + 100)
        profile = await uow.enrollments.lock_student(pks[0])
    assert (profile.student_id, profile.class_year, profile.max_credits) == ("s1", 2, 18)
    assert profile.user_pk == await user_pk_of(storage, pks[0])
    assert section.title == "Title of CS101-01"


async def test_take_seat_never_exceeds_capacity(storage: SqlStorage, pks: list[int]) -> None:
    section = await find(storage, "CS101-01")
    assert await take(storage, section, pks[0]) == 1
    assert await counts(storage, "CS101-01") == (1, 0)
    assert await take(storage, section, pks[1]) == 0, "the last seat"
    assert await counts(storage, "CS101-01") == (2, 0)
    assert await take(storage, section, pks[2]) is None
    assert await counts(storage, "CS101-01") == (2, 0)
    assert [r[1] for r in await holding_rows(storage)] == ["s1", "s2"]


async def test_take_seat_of_zero_capacity_section(storage: SqlStorage, pks: list[int]) -> None:
    section = await find(storage, "ART100-01")
    assert await take(storage, section, pks[0]) is None
    assert await holding_rows(storage) == []


async def test_join_waitlist_only_when_full(storage: SqlStorage, pks: list[int]) -> None:
    section = await find(storage, "CS101-01")
    assert await wait(storage, section, pks[0]) is None, "a section with seats has no waitlist"
    assert await holding_rows(storage) == []
    for pk in pks[:2]:
        assert await take(storage, section, pk) is not None
    assert await wait(storage, section, pks[2]) == 1
    assert await wait(storage, section, pks[3]) == 2
    assert await wait(storage, section, pks[4]) is None, "the waitlist is full"
    assert await counts(storage, "CS101-01") == (2, 2)
    waitlisted = [r for r in await holding_rows(storage) if r[2] == "waitlisted"]
    assert [r[1] for r in waitlisted] == ["s3", "s4"]


async def test_no_waitlist_capacity_means_no_waitlist(storage: SqlStorage, pks: list[int]) -> None:
    section = await find(storage, "CS101-02")
    assert await take(storage, section, pks[0]) == 0, "its only seat"
    assert await wait(storage, section, pks[1]) is None
    assert await counts(storage, "CS101-02") == (1, 0)


async def test_remove_holding_uncounts_waitlisted_only(storage: SqlStorage, pks: list[int]) -> None:
    section = await find(storage, "CS101-01")
    for pk in pks[:2]:
        await take(storage, section, pk)
    await wait(storage, section, pks[2])
    async with storage.unit_of_work() as uow:
        assert await uow.enrollments.remove_holding(pks[2], section.pk) is HoldingStatus.WAITLISTED
        assert await uow.enrollments.remove_holding(pks[2], section.pk) is None
        assert await uow.enrollments.remove_holding(pks[5], section.pk) is None
        await uow.commit()
    await check_invariants(storage)
    assert await counts(storage, "CS101-01") == (2, 0)
    # The next waitlist entry is position 1 again.
    assert await wait(storage, section, pks[3]) == 1


async def test_drop_enrolled_promotes_head_in_order(storage: SqlStorage, pks: list[int]) -> None:
    section = await find(storage, "CS101-01")
    for pk in pks[:2]:
        await take(storage, section, pk)
    await wait(storage, section, pks[2])
    await wait(storage, section, pks[3])
    assert await drop(storage, section, pks[0]) == pks[2]
    assert await counts(storage, "CS101-01") == (2, 1)
    assert await drop(storage, section, pks[1]) == pks[3]
    assert await counts(storage, "CS101-01") == (2, 0)
    assert await drop(storage, section, pks[2]) is None
    assert await counts(storage, "CS101-01") == (1, 0)
    rows = await holding_rows(storage)
    assert rows == [("CS101-01", "s4", "enrolled", None)]


async def test_promote_on_empty_waitlist_is_none(storage: SqlStorage, pks: list[int]) -> None:
    section = await find(storage, "CS101-01")
    async with storage.unit_of_work() as uow:
        assert await uow.enrollments.promote_waitlist_head(section.pk) is None
    assert await counts(storage, "CS101-01") == (0, 0)


async def test_seats_free(storage: SqlStorage, pks: list[int]) -> None:
    section = await find(storage, "CS101-02")
    async with storage.unit_of_work() as uow:
        assert await uow.enrollments.seats_free(section.pk)
    await take(storage, section, pks[0])
    async with storage.unit_of_work() as uow:
        assert not await uow.enrollments.seats_free(section.pk)


@pytest.mark.parametrize("held_as", ["seat", "waitlist"])
async def test_unique_constraint_reports_already_enrolled(
    storage: SqlStorage, pks: list[int], held_as: str
) -> None:
    """Bypassing the rules, a second place in one course hits the constraint, uncounted."""
    one = await find(storage, "CS101-01")
    two = await find(storage, "CS101-02")
    if held_as == "seat":
        assert await take(storage, two, pks[0]) is not None
        target = one
    else:
        await take(storage, one, pks[1])
        await take(storage, one, pks[2])
        assert await wait(storage, one, pks[0]) == 1
        target = two
    before = await holding_rows(storage)
    catalog_before = await storage.reads(fresh=True).catalog(TERM)
    async with storage.unit_of_work() as uow:
        with pytest.raises(AlreadyEnrolled) as caught:
            await uow.enrollments.take_seat(target, pks[0])
        assert caught.value.code == "already_enrolled"
    assert await holding_rows(storage) == before
    assert await storage.reads(fresh=True).catalog(TERM) == catalog_before
    await check_invariants(storage)


async def test_duplicate_waitlist_entry_is_already_enrolled(
    storage: SqlStorage, pks: list[int]
) -> None:
    section = await find(storage, "ART100-01")  # capacity 0, waitlist 1
    assert await wait(storage, section, pks[0]) == 1
    bigger = await find(storage, "CS101-01")
    for pk in pks[1:3]:
        await take(storage, bigger, pk)
    await wait(storage, bigger, pks[3])
    async with storage.unit_of_work() as uow:
        with pytest.raises(AlreadyEnrolled):
            await uow.enrollments.join_waitlist(bigger, pks[3])
    assert await counts(storage, "CS101-01") == (2, 1)
    await check_invariants(storage)


async def context(
    storage: SqlStorage, student_pk: int, section_id: str, key: str | None = None
) -> EnrollmentContext:
    async with storage.unit_of_work() as uow:
        await uow.enrollments.lock_student(student_pk)
        return await uow.enrollments.enrollment_context(student_pk, TERM, section_id, key)


async def test_context_lists_holdings_of_both_statuses(storage: SqlStorage, pks: list[int]) -> None:
    art = await find(storage, "ART100-01")
    cs = await find(storage, "CS101-02")
    await wait(storage, art, pks[0])
    await take(storage, cs, pks[0])
    mine = await context(storage, pks[0], "CS101-01")
    assert (await context(storage, pks[1], "CS101-01")).holdings == []
    assert mine.section == await find(storage, "CS101-01")
    assert {(h.section.section_id, h.status) for h in mine.holdings} == {
        ("ART100-01", HoldingStatus.WAITLISTED),
        ("CS101-02", HoldingStatus.ENROLLED),
    }
    by_id = {h.section.section_id: h.section for h in mine.holdings}
    assert by_id["CS101-02"] == cs.ref


async def test_context_of_an_unknown_section_has_no_section(
    storage: SqlStorage, pks: list[int]
) -> None:
    result = await context(storage, pks[0], "NOPE-01")
    assert result.section is None
    assert result.holdings == []


async def test_idempotency_remember_and_recall(storage: SqlStorage, pks: list[int]) -> None:
    stored = StoredResult("a" * 64, {"section_id": "CS101-01", "status": "enrolled", "n": None})
    assert (await context(storage, pks[0], "CS101-01", "k1")).stored is None
    async with storage.unit_of_work() as uow:
        await uow.enrollments.remember_result(pks[0], "k1", stored)
        await uow.commit()
    assert (await context(storage, pks[0], "CS101-01", "k1")).stored == stored
    assert (await context(storage, pks[0], "NOPE-01", "k1")).stored == stored
    assert (await context(storage, pks[1], "CS101-01", "k1")).stored is None, "per student"
    assert (await context(storage, pks[0], "CS101-01", "k2")).stored is None
    assert (await context(storage, pks[0], "CS101-01", None)).stored is None


async def test_take_seat_stores_its_receipt_only_with_the_seat(
    storage: SqlStorage, pks: list[int]
) -> None:
    section = await find(storage, "CS101-01")  # capacity 2
    receipt = Receipt("k1", StoredResult("b" * 64, {"section_id": "CS101-01"}))
    async with storage.unit_of_work() as uow:
        assert await uow.enrollments.take_seat(section, pks[0], receipt) == 1
        await uow.commit()
    assert (await context(storage, pks[0], "CS101-01", "k1")).stored == receipt.result
    assert await take(storage, section, pks[1]) == 0
    async with storage.unit_of_work() as uow:
        refused = Receipt("k9", StoredResult("c" * 64, {"section_id": "CS101-01"}))
        assert await uow.enrollments.take_seat(section, pks[2], refused) is None
        await uow.commit()
    assert (await context(storage, pks[2], "CS101-01", "k9")).stored is None
    assert await counts(storage, "CS101-01") == (2, 0)


async def test_remember_without_commit_is_forgotten(storage: SqlStorage, pks: list[int]) -> None:
    async with storage.unit_of_work() as uow:
        await uow.enrollments.remember_result(pks[0], "k1", StoredResult("h", {"x": 1}))
    assert (await context(storage, pks[0], "CS101-01", "k1")).stored is None


async def test_uncommitted_seat_is_rolled_back(storage: SqlStorage, pks: list[int]) -> None:
    section = await find(storage, "CS101-01")
    async with storage.unit_of_work() as uow:
        assert await uow.enrollments.take_seat(section, pks[0]) == 1
    assert await counts(storage, "CS101-01") == (0, 0)
    assert await holding_rows(storage) == []
