"""The ports the use cases need. Adapters implement them; services never import adapters."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any, Protocol, Self

from rushgate.domain.model import (
    Holding,
    HoldingStatus,
    Meeting,
    RegistrationWindow,
    SectionRef,
    StudentProfile,
)

# --- records crossing the ports -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SectionForEnrollment:
    """A section as the enrollment routine sees it, with its term's window."""

    pk: int
    term_pk: int
    ref: SectionRef
    capacity: int
    waitlist_capacity: int
    window: RegistrationWindow


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
class Term:
    """A registration term, as created and as read back."""

    code: str
    name: str
    window: RegistrationWindow
    waiting_room_enabled: bool
    admit_per_second: int


@dataclass(frozen=True, slots=True)
class NewSection:
    section_id: str
    course_code: str
    title: str
    credits: int
    capacity: int
    meetings: tuple[Meeting, ...]
    waitlist_capacity: int


@dataclass(frozen=True, slots=True)
class NewStudent:
    student_id: str
    name: str
    email: str
    password_hash: str
    class_year: int
    max_credits: int


@dataclass(frozen=True, slots=True)
class Account:
    """A login: an admin or a student (``student_pk`` set)."""

    user_pk: int
    username: str
    password_hash: str
    role: str
    student_pk: int | None


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


# --- repositories -----------------------------------------------------------------------


class EnrollmentRepository(Protocol):
    """Seat-taking primitives. Every method runs inside the caller's unit of work."""

    async def lock_student(self, student_pk: int) -> StudentProfile:
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
    ) -> bool:
        """Insert an enrolled row and count it, in one conditional write, and store
        ``receipt`` with it. Returns False, writing nothing, when no seat is free."""
        ...

    async def join_waitlist(self, section: SectionForEnrollment, student_pk: int) -> int | None:
        """Append a waitlisted row and count it; the 1-based position, or None when full."""
        ...

    async def seats_free(self, section_pk: int) -> bool: ...

    async def remove_holding(self, student_pk: int, section_pk: int) -> HoldingStatus | None:
        """Delete the student's row for the section and uncount it; what it was, or None."""
        ...

    async def promote_waitlist_head(self, section_pk: int) -> int | None:
        """Turn the oldest waitlisted row into an enrolled one; its student's pk, or None."""
        ...

    async def release_seat(self, section_pk: int) -> None: ...

    async def remember_result(self, student_pk: int, key: str, result: StoredResult) -> None: ...


class RegistryRepository(Protocol):
    """Administrative writes: terms, sections, students, accounts."""

    async def term_pk(self, code: str) -> int:
        """Raises ``NotFound``."""
        ...

    async def add_term(self, term: Term) -> None:
        """Raises ``Conflict`` when the code exists."""
        ...

    async def add_sections(self, term_pk: int, sections: Sequence[NewSection]) -> None:
        """Raises ``Conflict`` naming the ids that exist already."""
        ...

    async def add_students(self, students: Sequence[NewStudent]) -> None:
        """Raises ``Conflict`` naming the ids or usernames that exist already."""
        ...

    async def add_admin(self, username: str, password_hash: str) -> bool:
        """Create the admin unless the username exists; whether it was created."""
        ...

    async def set_password(self, username: str, password_hash: str) -> bool: ...

    async def is_empty(self) -> bool:
        """True when no term exists yet (a fresh database)."""
        ...


class UnitOfWork(Protocol):
    """One write transaction on the primary. Leaving without ``commit`` rolls back."""

    @property
    def enrollments(self) -> EnrollmentRepository: ...

    @property
    def registry(self) -> RegistryRepository: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def commit(self) -> None: ...


class ReadModel(Protocol):
    """Lock-free reads. May be served by a replica unless asked for fresh data."""

    async def terms(self) -> list[Term]: ...

    async def term(self, code: str) -> Term:
        """Raises ``NotFound``."""
        ...

    async def catalog(self, term_code: str) -> list[SectionView]:
        """Raises ``NotFound`` for an unknown term."""
        ...

    async def schedule(self, student_pk: int, term_code: str) -> list[ScheduleEntry]: ...

    async def roster(self, term_code: str, section_id: str) -> Roster:
        """Raises ``NotFound``."""
        ...

    async def account(self, username: str) -> Account | None: ...


class Storage(Protocol):
    """The source of truth: a relational database (PostgreSQL, or the embedded SQLite)."""

    def unit_of_work(self) -> UnitOfWork: ...

    def reads(self, *, fresh: bool = False) -> ReadModel:
        """Reads; ``fresh`` routes them to the primary (read-your-writes)."""
        ...

    async def ping(self) -> None:
        """Raise when the primary cannot answer."""
        ...

    async def close(self) -> None: ...


class PasswordHasher(Protocol):
    def hash(self, password: str) -> str: ...

    def verify(self, password_hash: str, password: str) -> bool: ...

    def dummy_verify(self) -> None:
        """Spend the time a real verification would, for unknown usernames."""
        ...


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling, as proven by a token."""

    user_pk: int
    username: str
    role: str
    student_pk: int | None


class TokenSigner(Protocol):
    def issue(self, principal: Principal) -> tuple[str, int]:
        """A signed token and its lifetime in seconds."""
        ...

    def verify(self, token: str) -> Principal:
        """Raises ``InvalidCredentials`` when the token is forged, expired or malformed."""
        ...
