"""The source of truth: one relational database behind a unit of work and a read model."""

from __future__ import annotations

from types import TracebackType
from typing import Protocol, Self

from rushgate.services.ports.admissions import AdmissionsRepository
from rushgate.services.ports.audit import AuditLog
from rushgate.services.ports.auth import Account
from rushgate.services.ports.documents import DocumentsRepository
from rushgate.services.ports.enrollment import (
    EnrollmentRepository,
    Roster,
    ScheduleEntry,
    SectionView,
)
from rushgate.services.ports.outbox import OutboxRelayStore, OutboxWriter
from rushgate.services.ports.qna import QnaRepository
from rushgate.services.ports.registry import RegistryRepository, Term


class UnitOfWork(Protocol):
    """One write transaction on the primary. Leaving without ``commit`` rolls back."""

    @property
    def enrollments(self) -> EnrollmentRepository: ...

    @property
    def registry(self) -> RegistryRepository: ...

    @property
    def outbox(self) -> OutboxWriter: ...

    @property
    def admissions(self) -> AdmissionsRepository: ...

    @property
    def qna(self) -> QnaRepository: ...

    @property
    def documents(self) -> DocumentsRepository: ...

    @property
    def audit(self) -> AuditLog: ...

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

    async def catalog(
        self,
        term_code: str,
        *,
        after: str | None = None,
        limit: int | None = None,
        course_prefix: str | None = None,
    ) -> list[SectionView]:
        """The term's sections in ``section_id`` order: all of them, or at most ``limit``
        whose id sorts after ``after`` (keyset paging), only those whose course code
        starts with ``course_prefix`` (case-sensitive) if given. Raises ``NotFound`` for
        an unknown term."""
        ...

    async def schedule(self, student_pk: int, term_code: str) -> list[ScheduleEntry]: ...

    async def roster(self, term_code: str, section_id: str) -> Roster:
        """Raises ``NotFound``."""
        ...

    async def account(self, username: str) -> Account | None: ...


class Storage(Protocol):
    """The source of truth: a relational database (PostgreSQL, or the embedded SQLite)."""

    def unit_of_work(self) -> UnitOfWork: ...

    def outbox_relay(self) -> OutboxRelayStore:
        """Claims and delivery records for the outbox relay."""
        ...

    def reads(self, *, fresh: bool = False) -> ReadModel:
        """Reads; ``fresh`` routes them to the primary (read-your-writes)."""
        ...

    @property
    def outage_errors(self) -> tuple[type[Exception], ...]:
        """The exception classes that may mean the database cannot answer right now
        (rather than a bug); ``is_outage`` tells which of them do."""
        ...

    def is_outage(self, error: BaseException) -> bool: ...

    async def ping(self) -> None:
        """Raise when the primary cannot answer."""
        ...

    async def close(self) -> None: ...
