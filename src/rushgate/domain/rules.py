"""Enrollment rules. Pure functions: every input is passed in, nothing is looked up.

A waitlisted section counts like an enrolled one for the course, time and credit rules,
so that promoting the head of a waitlist never needs a second round of checks and can
never produce a schedule the student could not have chosen themselves.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from rushgate.domain.errors import AlreadyEnrolled, CreditLimit, TimeConflict, WindowClosed
from rushgate.domain.model import Holding, RegistrationWindow, SectionRef, StudentProfile


def ensure_window_open(window: RegistrationWindow, student: StudentProfile, now: datetime) -> None:
    if not window.is_open_for(student.class_year, now):
        opens = window.opens_for(student.class_year)
        raise WindowClosed(
            "registration is not open for you now",
            opens_at=opens.isoformat(),
            closes_at=window.closes_at.isoformat(),
        )


def ensure_can_hold(
    student: StudentProfile, wanted: SectionRef, holdings: Iterable[Holding]
) -> None:
    """Refuse ``wanted`` when it repeats a course, clashes in time or exceeds the credit limit."""
    held = list(holdings)
    for holding in held:
        if holding.section.course_code == wanted.course_code:
            raise AlreadyEnrolled(
                "you already hold a section of this course",
                course_code=wanted.course_code,
                held_section_id=holding.section.section_id,
                held_status=holding.status.value,
            )
    for holding in held:
        for theirs in holding.section.meetings:
            for ours in wanted.meetings:
                if ours.overlaps(theirs):
                    raise TimeConflict(
                        "this section meets at the same time as one you hold",
                        conflicting_section_id=holding.section.section_id,
                        day=ours.day.value,
                    )
    total = sum(h.section.credits for h in held) + wanted.credits
    if total > student.max_credits:
        raise CreditLimit(
            "this section would take you over your credit limit",
            max_credits=student.max_credits,
            would_have=total,
        )
