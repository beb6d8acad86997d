from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, status

from rushgate.domain.model import RegistrationWindow
from rushgate.http.deps import AdminActor, AdminUser, ContainerDep
from rushgate.http.routes.views import term_out
from rushgate.http.schemas import (
    Created,
    ParamText,
    RosterOut,
    RosterStudent,
    SectionCreate,
    StudentCreate,
    TermCreate,
    TermOut,
    TermUpdate,
)
from rushgate.services.ports.enrollment import RosterEntry
from rushgate.services.ports.registry import Term

router = APIRouter(prefix="/api/v1/admin", tags=["admin"])

#: Most items one bulk request may carry. Each request is one all-or-nothing
#: transaction: an unbounded one holds the database's write lock (SQLite) or thousands
#: of row locks (PostgreSQL) for as long as it takes, and a batch of students is hashed
#: with argon2 first (about 85 ms of wall time each on two cores at the standard cost,
#: so 1,000 already take over a minute). Larger loads go in several requests.
MAX_BULK_ITEMS = 1000

_BULK_PROBLEMS: dict[int | str, dict[str, Any]] = {
    404: {"description": "not_found: no such term"},
    409: {"description": "conflict: ids (or emails) repeated in the batch or taken already"},
    422: {
        "description": f"validation_error: an invalid item, or more than {MAX_BULK_ITEMS} "
        "items; nothing is written"
    },
}
_STUDENTS_PROBLEMS = {k: v for k, v in _BULK_PROBLEMS.items() if k != 404}


@router.post(
    "/terms",
    status_code=status.HTTP_201_CREATED,
    response_model=TermOut,
    responses={409: {"description": "conflict: a term with this code exists"}},
)
async def create_term(body: TermCreate, container: ContainerDep, admin: AdminActor) -> TermOut:
    await container.registry.create_term(
        Term(
            code=body.code,
            name=body.name,
            window=RegistrationWindow(body.opens_at, body.closes_at, body.class_year_opens_at),
            waiting_room_enabled=body.waiting_room.enabled,
            admit_per_second=body.waiting_room.admit_per_second,
            max_active=body.waiting_room.max_active,
            admission_ttl_seconds=body.waiting_room.admission_ttl_seconds,
        ),
        actor=admin,
    )
    container.terms.forget()  # this node at once; the others within the cache's seconds
    return term_out(await container.storage.reads(fresh=True).term(body.code))


@router.patch(
    "/terms/{term}",
    response_model=TermOut,
    responses={
        404: {"description": "not_found: no such term"},
        422: {
            "description": "validation_error or invalid_request: a window that closes "
            "before it opens (or before a class year opens), a rate or cap below 1"
        },
    },
)
async def update_term(
    term: ParamText, body: TermUpdate, container: ContainerDep, admin: AdminActor
) -> TermOut:
    """Move the registration window, or change the waiting room's admission rate or its
    cap of admitted students at once. Fields left out stay; audited as ``term.update``.
    Other nodes see the change within their term cache's few seconds."""
    window = None
    if body.opens_at is not None and body.closes_at is not None:
        current = await container.storage.reads(fresh=True).term(term)
        window = RegistrationWindow(
            body.opens_at, body.closes_at, current.window.class_year_opens_at
        )
    changed = await container.registry.update_term(
        term,
        window=window,
        admit_per_second=body.admit_per_second,
        max_active=body.max_active,
        actor=admin,
    )
    container.terms.forget()
    return term_out(changed)


_PAUSE_PROBLEMS: dict[int | str, dict[str, Any]] = {
    404: {"description": "not_found: no such term, or it has no waiting room"}
}


@router.post("/terms/{term}/queue/pause", response_model=TermOut, responses=_PAUSE_PROBLEMS)
async def pause_queue(term: ParamText, container: ContainerDep, admin: AdminActor) -> TermOut:
    """Stop admitting from the term's waiting room (from the next tick): students keep
    their places and may still join; nobody is admitted until resumed. Admissions given
    already stay valid. Idempotent; audited as ``queue.pause``."""
    changed = await container.registry.set_admission_paused(term, True, actor=admin)
    container.terms.forget()
    return term_out(changed)


@router.post("/terms/{term}/queue/resume", response_model=TermOut, responses=_PAUSE_PROBLEMS)
async def resume_queue(term: ParamText, container: ContainerDep, admin: AdminActor) -> TermOut:
    """Admit again from the term's waiting room, at its admission rate. Idempotent;
    audited as ``queue.resume``."""
    changed = await container.registry.set_admission_paused(term, False, actor=admin)
    container.terms.forget()
    return term_out(changed)


@router.post(
    "/terms/{term}/sections", status_code=status.HTTP_201_CREATED, responses=_BULK_PROBLEMS
)
async def create_sections(
    term: ParamText,
    body: Annotated[list[SectionCreate], Body(min_length=1, max_length=MAX_BULK_ITEMS)],
    container: ContainerDep,
    admin: AdminActor,
) -> Created:
    """Create 1 to 1,000 sections, all or nothing: one invalid or duplicate item
    refuses the whole request. Send more in several requests."""
    await container.registry.create_sections(
        term,
        [s.to_new() for s in body],
        actor=admin,
    )
    container.catalog_pages.forget(term)  # this node at once; the others within its seconds
    return Created(created=len(body))


@router.post("/students", status_code=status.HTTP_201_CREATED, responses=_STUDENTS_PROBLEMS)
async def create_students(
    body: Annotated[list[StudentCreate], Body(min_length=1, max_length=MAX_BULK_ITEMS)],
    container: ContainerDep,
    admin: AdminActor,
) -> Created:
    """Create 1 to 1,000 students, all or nothing: one invalid or duplicate item (id,
    or email whatever its case) refuses the whole request. Emails are stored
    lower-cased. Send more in several requests."""
    await container.registry.create_students(
        [s.to_new() for s in body],
        actor=admin,
    )
    return Created(created=len(body))


@router.get("/terms/{term}/sections/{section_id}/roster")
async def roster(
    term: ParamText, section_id: ParamText, container: ContainerDep, _: AdminUser
) -> RosterOut:
    # Audits want the truth as of now: read from the primary.
    result = await container.storage.reads(fresh=True).roster(term, section_id)
    return RosterOut(
        term=term,
        section_id=section_id,
        enrolled=[_roster_student(e) for e in result.enrolled],
        waitlisted=[_roster_student(e) for e in result.waitlisted],
    )


def _roster_student(entry: RosterEntry) -> RosterStudent:
    return RosterStudent(
        student_id=entry.student_id,
        name=entry.name,
        email=entry.email,
        enrolled_at=entry.enrolled_at,
        waitlist_position=entry.waitlist_position,
    )
