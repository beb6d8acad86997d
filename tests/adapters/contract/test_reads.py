"""Lock-free reads: catalog, schedules, rosters."""

from __future__ import annotations

import pytest

from rushgate.adapters.sql.engine import SqlStorage
from rushgate.domain.errors import NotFound
from rushgate.domain.model import HoldingStatus
from rushgate.services.ports.enrollment import SectionView
from tests.support import meeting, new_section, new_student, new_term, seed

TERM = new_term().code
STUDENTS = [new_student(f"s{n}") for n in range(1, 6)]


async def enroll(storage: SqlStorage, pk: int, section_id: str) -> None:
    async with storage.unit_of_work() as uow:
        section = await uow.enrollments.find_section(TERM, section_id)
        if await uow.enrollments.take_seat(section, pk) is None:
            assert await uow.enrollments.join_waitlist(section, pk) is not None
        await uow.commit()


async def drop(storage: SqlStorage, pk: int, section_id: str) -> None:
    async with storage.unit_of_work() as uow:
        section = await uow.enrollments.find_section(TERM, section_id)
        was = await uow.enrollments.remove_holding(pk, section.pk)
        if (
            was is HoldingStatus.ENROLLED
            and await uow.enrollments.promote_waitlist_head(section.pk) is None
        ):
            await uow.enrollments.release_seat(section.pk)
        await uow.commit()


@pytest.fixture
async def pks(storage: SqlStorage) -> dict[str, int]:
    sections = [
        new_section("MATH200-01", capacity=3, meetings=(meeting("TUE"), meeting("THU"))),
        new_section("CS101-01", capacity=1, waitlist_capacity=3),
        new_section("ART100-01", capacity=0, waitlist_capacity=0, meetings=()),
    ]
    return await seed(storage, sections=sections, students=STUDENTS)


def test_seats_left_never_negative() -> None:
    view = SectionView(
        "X", "X", "t", 3, capacity=2, enrolled=3, waitlist_capacity=0, waitlisted=0, meetings=()
    )
    assert view.seats_left == 0


async def test_catalog(storage: SqlStorage, pks: dict[str, int]) -> None:
    await enroll(storage, pks["s1"], "MATH200-01")
    await enroll(storage, pks["s1"], "CS101-01")
    await enroll(storage, pks["s2"], "CS101-01")
    catalog = await storage.reads().catalog(TERM)
    assert [s.section_id for s in catalog] == ["ART100-01", "CS101-01", "MATH200-01"]
    by_id = {s.section_id: s for s in catalog}
    assert (by_id["MATH200-01"].enrolled, by_id["MATH200-01"].seats_left) == (1, 2)
    assert (by_id["CS101-01"].seats_left, by_id["CS101-01"].waitlisted) == (0, 1)
    assert by_id["ART100-01"].seats_left == 0
    assert by_id["MATH200-01"].meetings == (meeting("TUE"), meeting("THU"))
    assert by_id["ART100-01"].meetings == ()
    with pytest.raises(NotFound):
        await storage.reads().catalog("nope")


async def test_catalog_is_per_term(storage: SqlStorage, pks: dict[str, int]) -> None:
    await seed(storage, term=new_term("other"), sections=[new_section("BIO1-01")])
    assert [s.section_id for s in await storage.reads().catalog("other")] == ["BIO1-01"]


async def test_schedule_with_waitlist_positions(storage: SqlStorage, pks: dict[str, int]) -> None:
    for student in ("s1", "s2", "s3", "s4"):
        await enroll(storage, pks[student], "CS101-01")
    await enroll(storage, pks["s4"], "MATH200-01")

    async def positions() -> dict[str, list[tuple[str, HoldingStatus, int | None]]]:
        return {
            s: [
                (e.section.section_id, e.status, e.waitlist_position)
                for e in await storage.reads(fresh=True).schedule(pks[s], TERM)
            ]
            for s in ("s1", "s2", "s3", "s4")
        }

    W, E = HoldingStatus.WAITLISTED, HoldingStatus.ENROLLED
    assert await positions() == {
        "s1": [("CS101-01", E, None)],
        "s2": [("CS101-01", W, 1)],
        "s3": [("CS101-01", W, 2)],
        "s4": [("CS101-01", W, 3), ("MATH200-01", E, None)],
    }
    await drop(storage, pks["s2"], "CS101-01")  # leaves the waitlist: the rest move up
    assert (await positions())["s4"][0] == ("CS101-01", W, 2)
    await drop(storage, pks["s1"], "CS101-01")  # frees the seat: s3 is promoted
    assert await positions() == {
        "s1": [],
        "s2": [],
        "s3": [("CS101-01", E, None)],
        "s4": [("CS101-01", W, 1), ("MATH200-01", E, None)],
    }
    assert await storage.reads().schedule(pks["s4"], "nope") == []


async def test_roster_order(storage: SqlStorage, pks: dict[str, int]) -> None:
    for student in ("s3", "s1", "s5", "s2"):
        await enroll(storage, pks[student], "CS101-01")
    roster = await storage.reads(fresh=True).roster(TERM, "CS101-01")
    assert [e.student_id for e in roster.enrolled] == ["s3"]
    assert [(e.student_id, e.waitlist_position) for e in roster.waitlisted] == [
        ("s1", 1),
        ("s5", 2),
        ("s2", 3),
    ]
    assert roster.enrolled[0].waitlist_position is None
    assert roster.enrolled[0].email == "s3@example.test"
    assert roster.enrolled[0].enrolled_at.tzinfo is not None
    await drop(storage, pks["s3"], "CS101-01")
    roster = await storage.reads(fresh=True).roster(TERM, "CS101-01")
    assert [e.student_id for e in roster.enrolled] == ["s1"]
    assert [(e.student_id, e.waitlist_position) for e in roster.waitlisted] == [
        ("s5", 1),
        ("s2", 2),
    ]
    empty = await storage.reads().roster(TERM, "ART100-01")
    assert (list(empty.enrolled), list(empty.waitlisted)) == ([], [])
    with pytest.raises(NotFound):
        await storage.reads().roster(TERM, "NOPE-01")
    with pytest.raises(NotFound):
        await storage.reads().roster("nope", "CS101-01")
