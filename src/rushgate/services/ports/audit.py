"""The administrators' audit log: who changed what, when, from where. Append-only."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class Actor:
    """The admin behind a change, as the web layer saw the request."""

    user_pk: int
    username: str
    request_id: str | None = None
    client_ip: str | None = None


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One recorded change. ``details`` holds ids and counts, never personal data."""

    at: datetime
    actor: Actor
    action: str
    target: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AuditRecord:
    pk: int
    entry: AuditEntry


class AuditLog(Protocol):
    """The log's table, through a unit of work: an entry is written in the same
    transaction as the change it records."""

    async def append(self, entry: AuditEntry) -> int:
        """The new entry's id (ids grow: newer entries have larger ones)."""
        ...

    async def entries(self, *, limit: int, before: int | None = None) -> list[AuditRecord]:
        """Newest first; ``before``: only entries with a smaller id."""
        ...
