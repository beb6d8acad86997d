"""The administrators' audit log: one entry per admin change.

An entry is written through the change's own unit of work (:func:`record`), so the
change and its entry commit together or not at all. A change that is not made in the
database (a waiting room paused in the coordination store) records its entry in a
transaction of its own, *before* the change (:meth:`AuditService.record_alone`): at worst
the log names an attempt that then failed, never a change it does not name.

Details hold ids, codes and counts only: the log is kept forever, and personal data does
not belong in something that cannot be erased.
"""

from __future__ import annotations

from typing import Any

from rushgate.domain.clock import Clock
from rushgate.services.ports.audit import Actor, AuditEntry, AuditRecord
from rushgate.services.ports.storage import Storage, UnitOfWork

PAGE_DEFAULT = 50
PAGE_MAX = 500


async def record(
    uow: UnitOfWork,
    clock: Clock,
    actor: Actor | None,
    action: str,
    target: str,
    **details: Any,
) -> None:
    """Append the entry inside ``uow``; nothing without an actor (the command line and
    seeding change data as the operator, not as an account)."""
    if actor is None:
        return
    await uow.audit.append(AuditEntry(clock.now(), actor, action, target, details))


class AuditService:
    def __init__(self, storage: Storage, clock: Clock) -> None:
        self._storage = storage
        self._clock = clock

    async def record_alone(self, actor: Actor, action: str, target: str, **details: Any) -> None:
        """For a change outside the database: call it before making the change."""
        async with self._storage.unit_of_work() as uow:
            await record(uow, self._clock, actor, action, target, **details)
            await uow.commit()

    async def entries(
        self, *, limit: int = PAGE_DEFAULT, before: int | None = None
    ) -> list[AuditRecord]:
        async with self._storage.unit_of_work() as uow:
            return await uow.audit.entries(limit=min(max(limit, 1), PAGE_MAX), before=before)
