"""What a student does during a rush: read the catalog, enroll, drop, see their schedule."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response, status

from rushgate.domain.errors import DomainError
from rushgate.http.deps import ContainerDep, CurrentUser, StudentUser
from rushgate.http.errors import ApiError
from rushgate.http.routes.views import meetings_out, section_out, term_out
from rushgate.http.schemas import (
    CatalogOut,
    EnrollmentOut,
    EnrollRequest,
    ParamText,
    ScheduleItem,
    ScheduleOut,
    TermOut,
)
from rushgate.observability.metrics import count_enroll_outcome

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
async def catalog(term: ParamText, container: ContainerDep, _: CurrentUser) -> CatalogOut:
    sections = await container.storage.reads().catalog(term)
    return CatalogOut(term=term, sections=[section_out(s) for s in sections])


_ENROLL_HEADERS = [
    {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "schema": {"type": "string", "maxLength": 255},
        "description": "A retry with the same key gets the first success, never a second seat.",
    },
    {
        "name": "X-Admission-Token",
        "in": "header",
        "required": False,
        "schema": {"type": "string"},
        "description": "Required when the term's waiting room is on: from queue status.",
    },
]


@router.post(
    "/{term}/enrollments",
    status_code=status.HTTP_201_CREATED,
    responses=_PROBLEMS,
    response_model=EnrollmentOut,
    # Read from the request below rather than as Header parameters, which cost FastAPI
    # more CPU than a refused enrollment does otherwise; documented here instead.
    openapi_extra={"parameters": _ENROLL_HEADERS},
)
async def enroll(
    term: ParamText, body: EnrollRequest, request: Request, student: StudentUser
) -> Response:
    try:
        result = await student.node.enrollment.enroll(
            student_pk=student.pk,
            term_code=term,
            section_id=body.section_id,
            idempotency_key=_idempotency_key(request.headers.get("idempotency-key")),
            admission_token=request.headers.get("x-admission-token"),
        )
    except DomainError as refusal:
        count_enroll_outcome(refusal.code)
        raise
    count_enroll_outcome("replayed" if result.replayed else result.status.value)
    out = EnrollmentOut(
        section_id=result.section_id,
        status=result.status.value,
        waitlist_position=result.waitlist_position,
    )
    headers = {"Idempotent-Replayed": "true"} if result.replayed else None
    return Response(out.model_dump_json(), status.HTTP_201_CREATED, headers, "application/json")


@router.delete(
    "/{term}/enrollments/{section_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={403: {"description": "window_closed"}, 404: {"description": "not_found"}},
)
async def drop(term: ParamText, section_id: ParamText, student: StudentUser) -> None:
    await student.node.enrollment.drop(student_pk=student.pk, term_code=term, section_id=section_id)


@router.get("/{term}/enrollments/me")
async def my_schedule(term: ParamText, student: StudentUser) -> ScheduleOut:
    await student.node.storage.reads().term(term)  # 404 for an unknown term, not an empty list
    entries = await student.node.enrollment.schedule(student_pk=student.pk, term_code=term)
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
