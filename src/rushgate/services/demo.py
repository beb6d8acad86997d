"""Demo data: a term that is open now, courses with sections, students to log in as, and
an admission round open for applications."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import time, timedelta

from rushgate.domain.admissions import AdmissionRound, FilingWindow, Track
from rushgate.domain.clock import Clock
from rushgate.domain.model import Day, Meeting, RegistrationWindow
from rushgate.services.ports.auth import PasswordHasher
from rushgate.services.ports.registry import NewSection, Term
from rushgate.services.ports.storage import Storage
from rushgate.services.registry import RegistryService, StudentInput

DEMO_TERM = "demo"
DEMO_ROUND = "demo-admissions"
DEMO_PASSWORD = "rushgate-demo"  # noqa: S105 - printed to the operator on purpose  # nosec B105

_SUBJECTS = ("CS", "MATH", "PHYS", "CHEM", "BIO", "ECON", "HIST", "LIT", "ART", "MUS")
_SLOTS = (
    ((Day.MON, Day.WED), time(9, 0), time(10, 15)),
    ((Day.MON, Day.WED), time(10, 30), time(11, 45)),
    ((Day.MON, Day.WED), time(13, 0), time(14, 15)),
    ((Day.TUE, Day.THU), time(9, 0), time(10, 15)),
    ((Day.TUE, Day.THU), time(10, 30), time(11, 45)),
    ((Day.TUE, Day.THU), time(13, 0), time(14, 15)),
    ((Day.FRI,), time(9, 0), time(11, 45)),
    ((Day.FRI,), time(13, 0), time(15, 45)),
)

Progress = Callable[[str, int, int], None]
"""Called as ``progress(stage, done, total)``."""


@dataclass(frozen=True, slots=True)
class DemoSummary:
    term: str
    round: str
    sections: int
    students: int
    first_student: str
    password: str


def demo_sections(count: int, capacity: int = 40) -> list[NewSection]:
    """Three sections per course, each in a different time slot."""
    sections = []
    for i in range(count):
        course = i // 3
        subject = _SUBJECTS[course % len(_SUBJECTS)]
        days, start, end = _SLOTS[(course + i) % len(_SLOTS)]
        sections.append(
            NewSection(
                section_id=f"{subject}{100 + course}-{i % 3 + 1:02d}",
                course_code=f"{subject}{100 + course}",
                title=f"{subject} {100 + course}",
                credits=3,
                capacity=capacity,
                meetings=tuple(Meeting(d, start, end) for d in days),
                waitlist_capacity=capacity // 4,
            )
        )
    return sections


def demo_student_id(n: int) -> str:
    return f"s{n:06d}"


async def seed_demo(
    storage: Storage,
    hasher: PasswordHasher,
    clock: Clock,
    *,
    students: int = 200,
    sections: int = 30,
    progress: Progress | None = None,
    batch: int = 1000,
) -> DemoSummary:
    report = progress or (lambda stage, done, total: None)
    # Every demo student shares one password: hash it once, not 20,000 times.
    shared_hash = await asyncio.to_thread(hasher.hash, DEMO_PASSWORD)
    registry = RegistryService(storage, hasher, lambda pws: [shared_hash] * len(pws))
    now = clock.now()
    await registry.create_term(
        Term(
            code=DEMO_TERM,
            name="Demo term",
            window=RegistrationWindow(now - timedelta(minutes=1), now + timedelta(days=30)),
            waiting_room_enabled=False,
            admit_per_second=50,
        )
    )
    all_sections = demo_sections(sections)
    for start in range(0, len(all_sections), batch):
        await registry.create_sections(DEMO_TERM, all_sections[start : start + batch])
        report("sections", min(start + batch, len(all_sections)), len(all_sections))
    for start in range(0, students, batch):
        chunk: Sequence[StudentInput] = [
            StudentInput(
                student_id=demo_student_id(n),
                name=f"Student {n}",
                email=f"{demo_student_id(n)}@demo.rushgate.invalid",
                password=DEMO_PASSWORD,
                class_year=1 + n % 4,
                max_credits=18,
            )
            for n in range(start + 1, min(start + batch, students) + 1)
        ]
        await registry.create_students(chunk)
        report("students", min(start + batch, students), students)
    async with storage.unit_of_work() as uow:
        await uow.admissions.add_round(
            AdmissionRound(
                code=DEMO_ROUND,
                name="Demo admission round",
                window=FilingWindow(now - timedelta(minutes=1), now + timedelta(days=30)),
                tracks=(Track("general", "General", 200), Track("arts", "Arts", 20)),
                required_documents=("transcript",),
                receipt_prefix=f"{now.year + 1}-A",
            ),
            now=now,
        )
        await uow.commit()
    return DemoSummary(
        DEMO_TERM, DEMO_ROUND, len(all_sections), students, demo_student_id(1), DEMO_PASSWORD
    )
