"""Seats left per section, kept outside the database to refuse full sections early."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from rushgate.services.ports.enrollment import SectionView


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


class SectionMetrics(Protocol):
    """Hooks for per-section gauges, fed by each seat-hint rebuild; the observability
    layer exports them."""

    def observe_sections(self, term_code: str, sections: Sequence[SectionView]) -> None: ...
