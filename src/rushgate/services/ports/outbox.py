"""The transactional outbox: events written in the same transaction as the change they
report, delivered (as mail) after it committed, by a relay that may crash at any point.

Delivery is at least once: a relay that dies between sending and recording the delivery
sends that message again. The ``dedupe_key`` makes the second copy identical and
detectable (it becomes the mail's ``Message-ID``)."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol


class OutboxState(enum.StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"  # gave up after the last attempt; an operator looks (see the runbook)


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """An event for one user. ``kind`` names the template (``enrollment.enrolled``,
    ``application.submitted``, …); ``payload`` holds what it shows, never a password or
    an unmasked phone number. Writing a ``dedupe_key`` that exists already does nothing."""

    kind: str
    dedupe_key: str
    user_pk: int
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ClaimedMessage:
    """A message a relay holds until ``lease_until``; then another relay may claim it."""

    id: int
    message: OutboxMessage
    attempts: int  # including this one
    created_at: datetime
    lease_until: datetime


@dataclass(frozen=True, slots=True)
class OutboxStats:
    pending: int
    dead: int
    oldest_pending_at: datetime | None


class OutboxWriter(Protocol):
    """Inside a unit of work: the rows commit or roll back with the change."""

    async def add(self, message: OutboxMessage) -> None: ...


class OutboxRelayStore(Protocol):
    """What a relay needs, each call its own short transaction."""

    async def claim(
        self, *, limit: int, lease_seconds: float, now: datetime
    ) -> list[ClaimedMessage]:
        """Up to ``limit`` pending messages that are due and not leased, oldest first,
        leased to the caller and their attempt counted. Concurrent relays never claim
        the same message while its lease lasts (``FOR UPDATE SKIP LOCKED`` on
        PostgreSQL)."""
        ...

    async def delivered(self, message_ids: Sequence[int], *, now: datetime) -> None:
        """Record the delivery of these messages; those no longer pending stay as they are."""
        ...

    async def failed(
        self, message_id: int, *, error: str, retry_at: datetime | None, now: datetime
    ) -> None:
        """Record a failed attempt of a pending message: due again at ``retry_at``, or
        dead when it is None. A message no longer pending is left as it is."""
        ...

    async def release(self, claimed: Sequence[ClaimedMessage], *, now: datetime) -> None:
        """Give back claimed messages that were not tried: due at once, their attempt
        uncounted. Only those still under the lease of that claim (another relay may hold
        them by now)."""
        ...

    async def stats(self, *, now: datetime) -> OutboxStats: ...

    async def purge_delivered(self, *, before: datetime, limit: int) -> int:
        """Delete up to ``limit`` messages delivered before ``before``, oldest first; how
        many were deleted. Pending and dead messages are never deleted."""
        ...
