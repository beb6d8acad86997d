"""Seat-taking: what the enrollment routine reads and writes, and what students and
auditors read back."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from rushgate.domain.model import (
    Holding,
    HoldingStatus,
    Meeting,
    RegistrationWindow,
    SectionRef,
    StudentProfile,
)


@dataclass(frozen=True, slots=True)
class SectionForEnrollment:
    """A section as the enrollment routine sees it, with its term's window."""

    pk: int
    term_pk: int
    ref: SectionRef
    title: str  # for the confirmation mail
    capacity: int
    waitlist_capacity: int
    window: RegistrationWindow


@dataclass(frozen=True, slots=True)
class LockedStudent(StudentProfile):
    """A student as the rules see them, and the account their mail goes to."""

    user_pk: int


@dataclass(frozen=True, slots=True)
class Promotion:
    """The student a freed seat passed to."""

    student_pk: int
    user_pk: int


@dataclass(frozen=True, slots=True)
class StoredResult:
    """A remembered response to an ``Idempotency-Key``."""

    request_hash: str
    body: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Receipt:
    """An ``Idempotency-Key`` and the result to remember under it."""

    key: str
    result: StoredResult


@dataclass(frozen=True, slots=True)
class EnrollmentContext:
    """Everything an enrollment decision reads, fetched after the student's row is locked."""

    section: SectionForEnrollment | None
    holdings: list[Holding]
    stored: StoredResult | None


@dataclass(frozen=True, slots=True)
class SectionView:
    section_id: str
    course_code: str
    title: str
    credits: int
    capacity: int
    enrolled: int
    waitlist_capacity: int
    waitlisted: int
    meetings: tuple[Meeting, ...]

    @property
    def seats_left(self) -> int:
        return max(self.capacity - self.enrolled, 0)


@dataclass(frozen=True, slots=True)
class ScheduleEntry:
    section: SectionView
    status: HoldingStatus
    waitlist_position: int | None


@dataclass(frozen=True, slots=True)
class RosterEntry:
    student_id: str
    name: str
    email: str
    enrolled_at: datetime
    waitlist_position: int | None


@dataclass(frozen=True, slots=True)
class Roster:
    enrolled: Sequence[RosterEntry]
    waitlisted: Sequence[RosterEntry]


class EnrollmentRepository(Protocol):
    """Seat-taking primitives. Every method runs inside the caller's unit of work."""

    async def lock_student(self, student_pk: int) -> LockedStudent:
        """Lock the student's row for the rest of the transaction; raises ``NotFound``."""
        ...

    async def enrollment_context(
        self, student_pk: int, term_code: str, section_id: str, idempotency_key: str | None
    ) -> EnrollmentContext:
        """The section (None when unknown), the student's holdings in its term, and the
        result stored under ``idempotency_key``. Call after ``lock_student``."""
        ...

    async def find_section(self, term_code: str, section_id: str) -> SectionForEnrollment:
        """Raises ``NotFound`` for an unknown term or section."""
        ...

    async def lock_section(self, section_pk: int) -> None: ...

    async def take_seat(
        self, section: SectionForEnrollment, student_pk: int, receipt: Receipt | None = None
    ) -> int | None:
        """Insert an enrolled row and count it, in one conditional write, and store
        ``receipt`` with it. Returns the seats left after this one, or None, writing
        nothing, when no seat is free."""
        ...

    async def join_waitlist(self, section: SectionForEnrollment, student_pk: int) -> int | None:
        """Append a waitlisted row and count it; the 1-based position, or None when full."""
        ...

    async def seats_free(self, section_pk: int) -> bool: ...

    async def remove_holding(self, student_pk: int, section_pk: int) -> HoldingStatus | None:
        """Delete the student's row for the section and uncount it; what it was, or None."""
        ...

    async def promote_waitlist_head(self, section_pk: int) -> Promotion | None:
        """Turn the oldest waitlisted row into an enrolled one; whose it was, or None."""
        ...

    async def release_seat(self, section_pk: int) -> None: ...

    async def remember_result(self, student_pk: int, key: str, result: StoredResult) -> None: ...
