"""The administrators' audit log, for admins to read (it is written by the changes)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from rushgate.http.deps import AdminUser, ContainerDep
from rushgate.services.audit import PAGE_DEFAULT, PAGE_MAX
from rushgate.services.ports.audit import AuditRecord

router = APIRouter(prefix="/api/v1/admin", tags=["admin"])

_MAX_ID = 2**63 - 1  # a BIGINT key


class AuditEntryOut(BaseModel):
    id: int
    at: datetime
    actor_user_id: int
    actor_username: str
    action: str
    target: str
    details: dict[str, Any]
    request_id: str | None
    client_ip: str | None


class AuditPage(BaseModel):
    items: list[AuditEntryOut]
    # Pass as ``before`` for the next (older) page; null on the last page.
    next_before: int | None


def _entry_out(record: AuditRecord) -> AuditEntryOut:
    entry = record.entry
    return AuditEntryOut(
        id=record.pk,
        at=entry.at,
        actor_user_id=entry.actor.user_pk,
        actor_username=entry.actor.username,
        action=entry.action,
        target=entry.target,
        details=entry.details,
        request_id=entry.actor.request_id,
        client_ip=entry.actor.client_ip,
    )


@router.get("/audit")
async def audit_log(
    container: ContainerDep,
    _: AdminUser,
    limit: Annotated[int, Query(ge=1, le=PAGE_MAX)] = PAGE_DEFAULT,
    before: Annotated[int | None, Query(ge=1, le=_MAX_ID)] = None,
) -> AuditPage:
    """Admins' changes, newest first; page back with ``before`` (an entry id)."""
    records = await container.audit.entries(limit=limit, before=before)
    next_before = records[-1].pk if len(records) == limit else None
    return AuditPage(items=[_entry_out(r) for r in records], next_before=next_before)
