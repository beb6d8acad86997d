"""What a student does during a rush: read the catalog, enroll, drop, see their schedule."""

from __future__ import annotations

import hashlib
import math
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request, Response, status

from rushgate.domain.errors import DomainError
from rushgate.http.deps import ContainerDep, CurrentUser, StudentUser
from rushgate.http.errors import ApiError
from rushgate.http.routes.views import meetings_out, section_out, term_out
from rushgate.http.schemas import (
    CatalogOut,
    EnrollmentOut,
    EnrollRequest,
    Identifier,
    ParamText,
    ScheduleItem,
    ScheduleOut,
    TermOut,
)
from rushgate.observability.metrics import count_enroll_outcome
from rushgate.services.catalog import RenderedPage

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


CATALOG_PAGE_SIZE = 200
CATALOG_MAX_PAGE_SIZE = 1000
_CATALOG_HEADERS = {
    "ETag": {
        "description": "A strong tag of the body; send it back in If-None-Match.",
        "required": True,
        "schema": {"type": "string"},
    },
    "Cache-Control": {
        "description": "public, max-age=N, stale-while-revalidate=N (no-cache when N is 0).",
        "required": True,
        "schema": {"type": "string"},
    },
    "Link": {
        "description": 'The next page, `<...>; rel="next"`; absent on the last page.',
        "schema": {"type": "string"},
    },
}


@router.get(
    "/{term}/sections",
    response_model=CatalogOut,
    responses={
        200: {"headers": _CATALOG_HEADERS},
        304: {
            "description": "Not Modified: the If-None-Match tag is still current.",
            "headers": _CATALOG_HEADERS,
        },
        404: {"description": "not_found"},
        422: {"description": "validation_error: limit out of range, a malformed cursor or course"},
    },
)
async def catalog(
    term: ParamText,
    request: Request,
    container: ContainerDep,
    limit: Annotated[int, Query(ge=1, le=CATALOG_MAX_PAGE_SIZE)] = CATALOG_PAGE_SIZE,
    after: Annotated[
        Identifier | None,
        Query(description="The `next` of the previous page: sections after this id."),
    ] = None,
    course: Annotated[
        Identifier | None,
        Query(description="Only sections whose course code starts with this (exact case)."),
    ] = None,
) -> Response:
    """One page of the term's sections in `section_id` order, with `seats_left` up to
    `RUSHGATE_CATALOG_CACHE_SECONDS` old. The same for every caller, so no login is
    needed and shared caches (nginx) may keep it; `ETag` + `If-None-Match` give 304."""

    async def render() -> RenderedPage:
        found = await container.storage.reads().catalog(
            term, after=after, limit=limit + 1, course_prefix=course
        )
        page = found[:limit]
        next_after = page[-1].section_id if len(found) > limit else None
        body = CatalogOut(
            term=term, sections=[section_out(s) for s in page], next=next_after
        ).model_dump_json()
        encoded = body.encode()
        return RenderedPage(encoded, _entity_tag(encoded), next_after)

    rendered = await container.catalog_pages.get(term, (after, limit, course), render)
    headers = {
        "ETag": rendered.etag,
        "Cache-Control": _catalog_cache_control(container.catalog_pages.ttl_seconds),
    }
    if rendered.next_after is not None:
        following = {"limit": limit, "after": rendered.next_after}
        query = urlencode({**following, "course": course} if course else following)
        headers["Link"] = f'<{request.url.path}?{query}>; rel="next"'
    if _none_match(request.headers.get("if-none-match"), rendered.etag):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    return Response(rendered.body, headers=headers, media_type="application/json")


def _entity_tag(body: bytes) -> str:
    """A strong tag: equal bodies, equal tags, on every node."""
    return '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'


def _catalog_cache_control(ttl_seconds: float) -> str:
    if ttl_seconds <= 0:
        return "no-cache"  # keep it, but ask (If-None-Match) every time
    # public: the page is the same for every caller, so shared caches may keep it too.
    # While a cache refreshes an expired page it may go on serving the old one as long.
    seconds = math.ceil(ttl_seconds)
    return f"public, max-age={seconds}, stale-while-revalidate={seconds}"


def _none_match(header: str | None, etag: str) -> bool:
    """RFC 9110 If-None-Match: weak comparison (nginx weakens the tags of what it
    compresses), ``*`` matches any current page."""
    if not header:
        return False
    for candidate in header.split(","):
        tag = candidate.strip()
        if tag == "*" or tag.removeprefix("W/") == etag:
            return True
    return False


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
    if not result.replayed:
        student.node.catalog_pages.forget(term)  # this node's catalog shows it at once
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
    student.node.catalog_pages.forget(term)


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
