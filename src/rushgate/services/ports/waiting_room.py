"""The waiting room's store, the bus that carries its snapshots and its admission tokens."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from rushgate.domain.waiting_room import RoomSnapshot
from rushgate.services.ports.locks import Lease


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


class RoomBus(Protocol):
    """Carries room snapshots from the node that ticks to every node (pub/sub)."""

    async def publish(self, snapshot: RoomSnapshot) -> None: ...

    def listen(self) -> AsyncIterator[RoomSnapshot]:
        """Snapshots as they are published, from now on, until cancelled."""
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
