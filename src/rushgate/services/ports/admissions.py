"""Admission rounds, applicants and their applications, as the use cases store them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from rushgate.domain.admissions import AdmissionRound, ApplicationStatus


@dataclass(frozen=True, slots=True)
class StoredRound:
    pk: int
    round: AdmissionRound


@dataclass(frozen=True, slots=True)
class Applicant:
    pk: int
    user_pk: int
    email: str
    name: str
    locale: str | None
    verified_at: datetime | None


@dataclass(frozen=True, slots=True)
class ApplicationRecord:
    """An application as stored. ``personal`` is sealed: its phone numbers and birth date
    are ciphertext (see ``FieldCipher``); only the service opens it."""

    pk: int
    round_pk: int
    applicant_pk: int
    status: ApplicationStatus
    track: str | None
    personal: dict[str, str] | None
    statement: str
    consent_at: datetime | None
    receipt_number: str | None
    submitted_at: datetime | None
    updated_at: datetime
    version: int


@dataclass(frozen=True, slots=True)
class ApplicationDraft:
    """What an applicant (or staff) writes; the repository adds the bookkeeping."""

    status: ApplicationStatus
    track: str | None
    personal: dict[str, str] | None
    statement: str
    consent_at: datetime | None
    receipt_number: str | None
    submitted_at: datetime | None


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One change of an application, append-only: who, what and when, and the sealed
    content after it (so any earlier version can be shown)."""

    at: datetime
    actor_user_pk: int
    action: str  # saved, submitted, edited, withdrawn, status
    status: ApplicationStatus
    snapshot: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ApplicationRow:
    """An application in the staff list, with its applicant."""

    record: ApplicationRecord
    applicant: Applicant


@dataclass(frozen=True, slots=True)
class ApplicationFilter:
    status: ApplicationStatus | None = None
    track: str | None = None
    after_pk: int | None = None  # keyset pagination: rows with a larger pk
    limit: int = 100


class AdmissionsRepository(Protocol):
    """Every method runs inside the caller's unit of work (on the primary)."""

    async def add_round(self, round_: AdmissionRound, *, now: datetime) -> None:
        """Raises ``Conflict`` when the code exists."""
        ...

    async def round(self, code: str) -> StoredRound:
        """Raises ``NotFound``."""
        ...

    async def rounds_open_after(self, at: datetime, *, limit: int) -> list[StoredRound]:
        """Rounds whose window has not closed by ``at`` (open now or still to open), the
        soonest to close first, at most ``limit``."""
        ...

    async def add_applicant(
        self, *, email: str, name: str, password_hash: str, locale: str | None, now: datetime
    ) -> Applicant:
        """A user (role ``applicant``, username = ``email``, already lower-cased) and its
        applicant row. Raises ``Conflict`` when the email is taken."""
        ...

    async def applicant(self, applicant_pk: int) -> Applicant:
        """Raises ``NotFound``."""
        ...

    async def applicant_of(self, user_pk: int, *, lock: bool = False) -> Applicant:
        """Raises ``NotFound``. ``lock`` holds the applicant's row for the rest of the
        transaction: one applicant's changes then happen one at a time (a double-clicked
        first save creates one application, the second click updates it)."""
        ...

    async def mark_verified(self, applicant_pk: int, *, now: datetime) -> bool:
        """Whether this call verified it (False: it was already)."""
        ...

    async def application(
        self, round_pk: int, applicant_pk: int, *, lock: bool = False
    ) -> ApplicationRecord | None:
        """``lock`` holds the row for the rest of the transaction (an edit, a submit)."""
        ...

    async def application_by_receipt(
        self, round_pk: int, receipt_number: str, *, lock: bool = False
    ) -> ApplicationRecord:
        """Raises ``NotFound``."""
        ...

    async def insert_application(
        self, round_pk: int, applicant_pk: int, draft: ApplicationDraft, *, now: datetime
    ) -> ApplicationRecord:
        """Raises ``Conflict`` when the applicant has one in this round already (one
        application per person per round, enforced by a unique constraint)."""
        ...

    async def update_application(
        self, record: ApplicationRecord, draft: ApplicationDraft, *, now: datetime
    ) -> ApplicationRecord:
        """Write ``draft`` over ``record`` (locked by the caller); the version moves on."""
        ...

    async def next_receipt_sequence(self, round_pk: int) -> int:
        """The round's next receipt number: 1, 2, 3, … Two transactions never get the same
        one (a counter row updated in place; its lock is held until commit, so
        submissions of one round queue here for a moment). A rolled-back transaction
        leaves a gap, which is allowed."""
        ...

    async def append_history(self, application_pk: int, entry: HistoryEntry) -> None: ...

    async def history(self, application_pk: int) -> list[HistoryEntry]: ...

    async def list_applications(
        self, round_pk: int, where: ApplicationFilter
    ) -> Sequence[ApplicationRow]: ...


class FieldCipher(Protocol):
    """Encrypts personal fields at rest with a key from the environment."""

    def seal(self, plaintext: str, *, field: str = "") -> str:
        """Ciphertext bound to ``field``: it opens only as that field."""
        ...

    def open(self, sealed: str, *, field: str = "") -> str:
        """Raises ``ValueError`` when the text was not sealed with this key and field."""
        ...


class VerificationTokens(Protocol):
    """Single-purpose signed tokens for the sign-up verification mail."""

    def issue(self, applicant_pk: int, email: str) -> str: ...

    def verify(self, token: str) -> tuple[int, str]:
        """``(applicant_pk, email)``; raises ``InvalidRequest`` when forged or expired."""
        ...
