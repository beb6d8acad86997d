"""Value objects of registration: terms, sections and what a student holds."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, time


class Day(enum.StrEnum):
    MON = "MON"
    TUE = "TUE"
    WED = "WED"
    THU = "THU"
    FRI = "FRI"
    SAT = "SAT"
    SUN = "SUN"


@dataclass(frozen=True, slots=True)
class Meeting:
    """One weekly meeting: ``[start, end)`` on ``day``."""

    day: Day
    start: time
    end: time

    def __post_init__(self) -> None:
        if self.start >= self.end:
            raise ValueError("a meeting must end after it starts")

    def overlaps(self, other: Meeting) -> bool:
        return self.day == other.day and self.start < other.end and other.start < self.end


@dataclass(frozen=True, slots=True)
class RegistrationWindow:
    """When a term accepts enrollments and drops.

    ``class_year_opens_at`` lets seniors start earlier (a common rule in the seeds): a class
    year listed there opens at its own time, every other class year at ``opens_at``.
    """

    opens_at: datetime
    closes_at: datetime
    class_year_opens_at: Mapping[int, datetime] = field(default_factory=dict)

    def opens_for(self, class_year: int) -> datetime:
        return self.class_year_opens_at.get(class_year, self.opens_at)

    def is_open_for(self, class_year: int, now: datetime) -> bool:
        return self.opens_for(class_year) <= now < self.closes_at


class HoldingStatus(enum.StrEnum):
    ENROLLED = "enrolled"
    WAITLISTED = "waitlisted"


@dataclass(frozen=True, slots=True)
class SectionRef:
    """What the rules need to know of a section a student wants or holds."""

    section_id: str
    course_code: str
    credits: int
    meetings: tuple[Meeting, ...]


@dataclass(frozen=True, slots=True)
class Holding:
    """A section a student is enrolled in or waitlisted for."""

    section: SectionRef
    status: HoldingStatus


@dataclass(frozen=True, slots=True)
class StudentProfile:
    student_id: str
    class_year: int
    max_credits: int


def normalize_email(email: str) -> str:
    """Lower-cased: one person per address whatever its case (the local part of real
    addresses is case-insensitive at every provider that matters here). Stored this way,
    so comparing stored addresses is exact."""
    return email.strip().lower()


def normalize_username(username: str) -> str:
    """A username that is an email address (applicants, admins named by their address)
    is one account whatever its case; any other (student ids) is exact."""
    return normalize_email(username) if "@" in username else username
