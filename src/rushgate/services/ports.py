"""The ports the use cases need. Adapters implement them; services never import adapters."""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Sequence
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
from rushgate.domain.waiting_room import RoomSnapshot

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
    max_active: int = 500
    admission_ttl_seconds: int = 600


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


# --- coordination (Redis, or in-process for the embedded default) ------------------------
#
# Redis is an accelerator and a coordinator: the waiting room lives there, but no fact a
# student was told about (a seat, a place on a waitlist) exists only there.


@dataclass(frozen=True, slots=True)
class QueueCounters:
    """One term's waiting room as stored: the counters a tick reads and advances."""

    issued: int
    serving: int
    prequeue_size: int | None
    seed: bytes | None
    active: int
    carry: float
    admission_rate: float
    last_tick_ms: int | None


@dataclass(frozen=True, slots=True)
class Advance:
    """What one tick writes. ``freeze_seed`` closes the pre-queue (if still open) with
    that seed; admissions granted before ``expire_before_ms`` stop counting as active.
    It applies only on top of the tick at ``previous_tick_ms`` (the counters it was
    planned on), so a retried call never grants twice."""

    now_ms: int
    grant: int
    carry: float
    admission_rate: float
    expire_before_ms: int
    previous_tick_ms: int | None
    freeze_seed: bytes | None = None


@dataclass(frozen=True, slots=True)
class Admission:
    """The batch that admitted an admission position: when, and whether it still counts."""

    granted_at_ms: int


class WaitingRoomStore(Protocol):
    """Tickets, the serving counter and admissions of each term's waiting room."""

    async def join(self, term: str, student_pk: int, *, freeze_seed: bytes | None) -> int:
        """The student's ticket: the one they hold, else the next number, atomically (one
        ticket per student whatever the node or tab). With ``freeze_seed`` the pre-queue
        is closed first if it is still open (its size is the number of tickets issued so
        far; the seed is kept unless one is stored), so this ticket comes after it."""
        ...

    async def ticket(self, term: str, student_pk: int) -> int | None: ...

    async def counters(self, term: str) -> QueueCounters: ...

    async def advance(self, term: str, lease: Lease, step: Advance) -> QueueCounters | None:
        """Apply one tick, only while ``lease`` is still held (fencing); the new counters,
        or None when the lease was lost and nothing was written."""
        ...

    async def admission(self, term: str, position: int) -> Admission | None:
        """How ``position`` was admitted; None when it is not admitted, expired or left."""
        ...

    async def leave(
        self, term: str, student_pk: int, *, ticket: int, position: int | None, revoke_ms: int
    ) -> None:
        """Forget the student's ticket (a later join gets a new one) and revoke admissions
        under ``ticket`` for ``revoke_ms``; with the admitted ``position``, free its
        active slot if it still holds one."""
        ...

    async def replace_ticket(self, term: str, student_pk: int, *, old: int) -> int:
        """A new ticket at the end of the line if the student still holds ``old`` (an
        expired admission) or none at all; otherwise the ticket they hold now."""
        ...


@dataclass(frozen=True, slots=True)
class Lease:
    """A held cluster-wide lock; ``token`` fences writes made under it."""

    name: str
    token: str


class ClusterLock(Protocol):
    async def acquire(self, lease: Lease, ttl_ms: int) -> bool:
        """Take the lock, or extend it when ``lease`` holds it already."""
        ...

    async def release(self, lease: Lease) -> None: ...


class RoomBus(Protocol):
    """Carries room snapshots from the node that ticks to every node (pub/sub)."""

    async def publish(self, snapshot: RoomSnapshot) -> None: ...

    def listen(self) -> AsyncIterator[RoomSnapshot]:
        """Snapshots as they are published, from now on, until cancelled."""
        ...


class HintVerdict(enum.Enum):
    PROCEED = "proceed"
    SECTION_FULL = "section_full"
    WAITLIST_FULL = "waitlist_full"


class SeatOutcome(enum.Enum):
    """What an enrollment transaction learned about its section, for the hints: that it
    now refuses newcomers. Only that is worth a round trip: a hint that still claims room
    costs nothing but a database answer, so taking a seat that was not the last one is
    not reported."""

    SECTION_FULL = "section_full"
    WAITLIST_FULL = "waitlist_full"


@dataclass(frozen=True, slots=True)
class Precheck:
    """The answer of one round trip before an enrollment touches the database.

    ``generation`` (opaque) must be handed back to ``record``: a hint learned by a
    transaction that raced with a drop or a rebuild is thrown away rather than allowed to
    hide a freed seat or to count a seat twice."""

    verdict: HintVerdict
    generation: str
    revoked: bool = False


@dataclass(frozen=True, slots=True)
class RebuildStamp:
    """Generations seen before a rebuild read the database; sections that changed since
    keep what they have (a fresher truth)."""

    term_generation: int
    sections: dict[str, int]


# How long a precheck remembers that an Idempotency-Key reached the database (a retry
# within it goes to the database again, to its stored result).
MARKER_TTL_MS = 24 * 3600 * 1000


class SeatHints(Protocol):
    """Seats and waitlist places left per section, to refuse full sections early.

    The database stays the only truth. A hint may claim *more* room than there is (the
    database then refuses), but claims a section full only on what a transaction or a
    rebuild saw, guarded by a per-section generation that every drop bumps."""

    async def precheck(
        self,
        term: str,
        section_id: str,
        *,
        student_pk: int,
        idempotency_key: str | None,
        admission_ticket: int | None,
    ) -> Precheck:
        """Refuse a known-full section, unless this ``idempotency_key`` was already tried
        against the database (its retry must reach the stored result); also report
        whether the admission under ``admission_ticket`` was revoked."""
        ...

    async def record(
        self, term: str, section_id: str, outcome: SeatOutcome, generation: str
    ) -> None: ...

    async def releasing(self, term: str, section_id: str) -> None:
        """Before a drop: forget the section's hint and bump its generation."""
        ...

    async def released(self, term: str, section_id: str) -> None:
        """After a drop committed (or failed): bump the generation again."""
        ...

    async def begin_rebuild(self, term: str) -> RebuildStamp:
        """Start a rebuild: in-flight records of the term are void from now on."""
        ...

    async def rebuild(
        self, term: str, sections: Sequence[SectionView], stamp: RebuildStamp
    ) -> None:
        """Set hints from counts read from the database after ``begin_rebuild``."""
        ...

    async def epoch(self) -> str:
        """An id that changes whenever the coordination store lost its data (a restart
        without persistence): the caller rebuilds hints when it sees a new one."""
        ...


@dataclass(frozen=True, slots=True)
class AdmissionClaims:
    student_pk: int
    term: str
    ticket: int
    expires_at: datetime


class AdmissionSigner(Protocol):
    def issue(self, claims: AdmissionClaims) -> str: ...

    def verify(self, token: str) -> AdmissionClaims:
        """Raises ``NotAdmitted`` when the token is forged, expired or malformed."""
        ...


class RoomMetrics(Protocol):
    """Hooks for queue gauges; the observability layer exports them."""

    def observe_room(
        self, snapshot: RoomSnapshot, *, granted: int, eta_tail_seconds: int
    ) -> None: ...


class Coordination(Protocol):
    """Every coordination port of one backend (Redis, or in-process)."""

    @property
    def store(self) -> WaitingRoomStore: ...

    @property
    def lock(self) -> ClusterLock: ...

    @property
    def bus(self) -> RoomBus: ...

    @property
    def hints(self) -> SeatHints: ...

    async def ping(self) -> None:
        """Raise when the backend cannot answer."""
        ...

    async def close(self) -> None: ...
