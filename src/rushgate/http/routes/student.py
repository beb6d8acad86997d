"""What a student does during a rush: read the catalog, enroll, drop, see their schedule."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Response, status

from rushgate.http.deps import ContainerDep, CurrentUser, StudentUser
from rushgate.http.errors import ApiError
from rushgate.http.routes.views import meetings_out, section_out, term_out
from rushgate.http.schemas import (
    CatalogOut,
    EnrollmentOut,
    EnrollRequest,
    ScheduleItem,
    ScheduleOut,
    TermOut,
)

router = APIRouter(prefix="/api/v1/terms", tags=["students"])

_PROBLEMS: dict[int | str, dict[str, Any]] = {
    403: {"description": "window_closed, not_admitted"},
    404: {"description": "not_found"},
    409: {
        "description": "section_full, waitlist_full, already_enrolled, time_conflict, credit_limit"
    },
    422: {"description": "validation_error, idempotency_key_reused"},
}


def _idempotency_key(raw: str | None) -> str | None:
    if raw is None:
        return None
    if not 1 <= len(raw) <= 255 or not raw.isprintable():
        raise ApiError(
            400, "invalid_idempotency_key", "Idempotency-Key must be 1-255 printable characters"
        )
    return raw


@router.get("")
async def list_terms(container: ContainerDep, _: CurrentUser) -> list[TermOut]:
    return [term_out(t) for t in await container.storage.reads().terms()]


@router.get("/{term}/sections")
async def catalog(term: str, container: ContainerDep, _: CurrentUser) -> CatalogOut:
    sections = await container.storage.reads().catalog(term)
    return CatalogOut(term=term, sections=[section_out(s) for s in sections])


@router.post(
    "/{term}/enrollments",
    status_code=status.HTTP_201_CREATED,
    responses=_PROBLEMS,
)
async def enroll(
    term: str,
    body: EnrollRequest,
    response: Response,
    container: ContainerDep,
    student: StudentUser,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
    admission_token: Annotated[
        str | None,
        Header(
            alias="X-Admission-Token",
            description="Required when the term's waiting room is on: from queue status.",
        ),
    ] = None,
) -> EnrollmentOut:
    assert student.student_pk is not None
    result = await container.enrollment.enroll(
        student_pk=student.student_pk,
        term_code=term,
        section_id=body.section_id,
        idempotency_key=_idempotency_key(idempotency_key),
        admission_token=admission_token,
    )
    if result.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return EnrollmentOut(
        section_id=result.section_id,
        status=result.status.value,
        waitlist_position=result.waitlist_position,
    )


@router.delete(
    "/{term}/enrollments/{section_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={403: {"description": "window_closed"}, 404: {"description": "not_found"}},
)
async def drop(term: str, section_id: str, container: ContainerDep, student: StudentUser) -> None:
    assert student.student_pk is not None
    await container.enrollment.drop(
        student_pk=student.student_pk, term_code=term, section_id=section_id
    )


@router.get("/{term}/enrollments/me")
async def my_schedule(term: str, container: ContainerDep, student: StudentUser) -> ScheduleOut:
    assert student.student_pk is not None
    await container.storage.reads().term(term)  # 404 for an unknown term, not an empty list
    entries = await container.enrollment.schedule(student_pk=student.student_pk, term_code=term)
    return ScheduleOut(
        term=term,
        enrolled_credits=sum(e.section.credits for e in entries if e.status.value == "enrolled"),
        enrollments=[
            ScheduleItem(
                section_id=e.section.section_id,
                course_code=e.section.course_code,
                title=e.section.title,
                credits=e.section.credits,
                status=e.status.value,
                waitlist_position=e.waitlist_position,
                meetings=meetings_out(e.section.meetings),
            )
            for e in entries
        ],
    )
