"""Administrative writes: terms, sections, students and accounts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from rushgate.domain.model import (
    Meeting,
    RegistrationWindow,
)


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
    # An admin stopped admissions from the waiting room (the queue keeps its order).
    admission_paused: bool = False


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


class RegistryRepository(Protocol):
    """Administrative writes: terms, sections, students, accounts."""

    async def term_pk(self, code: str) -> int:
        """Raises ``NotFound``."""
        ...

    async def add_term(self, term: Term) -> None:
        """Raises ``Conflict`` when the code exists."""
        ...

    async def term(self, code: str) -> Term:
        """The term as stored now, locked for update where the database can. Raises
        ``NotFound``."""
        ...

    async def update_term(self, term: Term) -> None:
        """Store the term's window, waiting-room settings and pause as given (the code
        names the term). Raises ``NotFound``."""
        ...

    async def add_sections(self, term_pk: int, sections: Sequence[NewSection]) -> None:
        """Raises ``Conflict`` naming the ids that exist already."""
        ...

    async def add_students(self, students: Sequence[NewStudent]) -> None:
        """Raises ``Conflict`` naming the ids or usernames that exist already, or the
        emails that are repeated or taken, compared whatever their case."""
        ...

    async def add_admin(self, username: str, password_hash: str) -> bool:
        """Create the admin unless the username exists; whether it was created."""
        ...

    async def set_password(self, username: str, password_hash: str) -> bool: ...

    async def is_empty(self) -> bool:
        """True when no term exists yet (a fresh database)."""
        ...
