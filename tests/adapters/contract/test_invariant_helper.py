"""``check_invariants`` must catch what it claims to: break each invariant on purpose."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from rushgate.adapters.sql.engine import SqlStorage
from tests.support import (
    check_invariants,
    invariant_violations,
    new_section,
    new_student,
    reset_enrollments,
    seed,
)
from tests.support import new_term as make_term

TERM = make_term().code


@pytest.fixture
async def filled(storage: SqlStorage) -> SqlStorage:
    pks = await seed(
        storage,
        sections=[new_section("CS101-01", capacity=1, waitlist_capacity=2)],
        students=[new_student("s1"), new_student("s2")],
    )
    async with storage.unit_of_work() as uow:
        section = await uow.enrollments.find_section(TERM, "CS101-01")
        assert await uow.enrollments.take_seat(section, pks["s1"]) == 0
        assert await uow.enrollments.join_waitlist(section, pks["s2"]) == 1
        await uow.commit()
    await check_invariants(storage)
    return storage


async def corrupt(storage: SqlStorage, *statements: str) -> None:
    async with storage.primary.begin() as conn:
        for statement in statements:
            await conn.execute(text(statement))


@pytest.mark.parametrize(
    ("statements", "expected"),
    [
        (["UPDATE sections SET enrolled = 0"], "seat count"),
        (["UPDATE sections SET waitlisted = 0"], "waitlist count"),
        (["UPDATE sections SET waitlisted = 2"], "waitlist count"),
        (["DELETE FROM enrollments WHERE status = 'enrolled'"], "seat count"),
        (["UPDATE sections SET capacity = 2"], "students wait while a seat is free"),
        (["UPDATE enrollments SET course_code = 'X'"], "disagrees"),
        (["UPDATE sections SET waitlist_seq = 0"], "ticket"),
    ],
)
async def test_each_violation_is_reported(
    filled: SqlStorage, statements: list[str], expected: str
) -> None:
    await corrupt(filled, *statements)
    found = await invariant_violations(filled)
    assert any(expected in line for line in found), found
    with pytest.raises(AssertionError, match="seat invariants violated"):
        await check_invariants(filled)


async def test_accepts_a_database_url(filled: SqlStorage, database_url: str) -> None:
    await check_invariants(database_url)
    await corrupt(filled, "UPDATE sections SET enrolled = 0")
    assert await invariant_violations(database_url)


async def test_reset_restores_a_fresh_state(filled: SqlStorage) -> None:
    await reset_enrollments(filled)
    await check_invariants(filled)
    view = (await filled.reads(fresh=True).catalog(TERM))[0]
    assert (view.enrolled, view.waitlisted) == (0, 0)
    async with filled.unit_of_work() as uow:
        section = await uow.enrollments.find_section(TERM, "CS101-01")
        student = await filled.reads().account("s2")
        assert student is not None
        assert student.student_pk is not None
        assert await uow.enrollments.take_seat(section, student.student_pk) is not None
        await uow.commit()
    await check_invariants(filled)
