"""A small seeded term for the service tests, on both backends."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest

from rushgate.adapters.sql.engine import SqlStorage
from rushgate.domain.clock import FixedClock
from rushgate.services.enrollment import EnrollmentService
from tests.support import T0, meeting, new_section, new_student, new_term, seed, window

SENIORS_OPEN = T0 - timedelta(hours=1)
TERM = new_term(window=window(by_year={4: SENIORS_OPEN}))

SECTIONS = [
    new_section("CS101-01", capacity=1, waitlist_capacity=2),  # MON 09:00-10:15
    new_section("CS101-02", capacity=2, meetings=(meeting("TUE"),)),
    new_section("MATH200-01", capacity=2, credits=4, meetings=(meeting("MON", "10:00", "11:00"),)),
    new_section("PHYS100-01", capacity=5, credits=4, meetings=(meeting("WED"),)),
    new_section("ART100-01", capacity=1, meetings=(meeting("FRI"),)),
    new_section("BIO100-01", capacity=5, credits=5, meetings=(meeting("THU"),)),
]
STUDENTS = [
    *(new_student(f"s{n}") for n in range(1, 6)),
    new_student("senior", class_year=4),
    new_student("light", max_credits=7),
]


@dataclass
class World:
    storage: SqlStorage
    clock: FixedClock
    service: EnrollmentService
    pks: dict[str, int]
    term: str = TERM.code

    async def enroll(self, student: str, section_id: str, key: str | None = None) -> object:
        return await self.service.enroll(
            student_pk=self.pks[student],
            term_code=self.term,
            section_id=section_id,
            idempotency_key=key,
        )

    async def drop(self, student: str, section_id: str) -> int | None:
        return await self.service.drop(
            student_pk=self.pks[student], term_code=self.term, section_id=section_id
        )

    async def counts(self, section_id: str) -> tuple[int, int]:
        view = next(
            s
            for s in await self.storage.reads(fresh=True).catalog(self.term)
            if s.section_id == section_id
        )
        return view.enrolled, view.waitlisted

    async def schedule(self, student: str) -> list[tuple[str, str, int | None]]:
        entries = await self.service.schedule(student_pk=self.pks[student], term_code=self.term)
        return [(e.section.section_id, e.status.value, e.waitlist_position) for e in entries]


@pytest.fixture
async def world(storage: SqlStorage, clock: FixedClock) -> World:
    pks = await seed(storage, term=TERM, sections=SECTIONS, students=STUDENTS)
    return World(storage, clock, EnrollmentService(storage, clock), pks)
