"""The waiting room, as students see it: join, status, a live stream, and leave."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request, Response, status
from fastapi.responses import StreamingResponse

from rushgate.http import sse
from rushgate.http.deps import StudentUser
from rushgate.http.routes.challenge import (
    CHALLENGE_PARAMETER,
    CHALLENGE_RESPONSES,
    require_challenge,
)
from rushgate.http.schemas import ParamText, QueueStatusOut
from rushgate.services.waiting_room import Standing

router = APIRouter(prefix="/api/v1/queue", tags=["waiting room"])

HEARTBEAT_SECONDS = 15.0

_PROBLEMS: dict[int | str, dict[str, Any]] = {
    404: {"description": "not_found (no such term or no waiting room), not_in_queue"},
    503: {"description": "coordination_unavailable"},
}


def standing_out(standing: Standing) -> QueueStatusOut:
    place = standing.place
    return QueueStatusOut(
        term=standing.term,
        ticket=place.ticket,
        state=place.state.value,
        position=place.position,
        ahead=place.ahead,
        eta_seconds=place.eta_seconds,
        poll_after_seconds=place.poll_after_seconds,
        reason=place.reason,
        admission_token=standing.admission_token,
        admission_expires_at=standing.admission_expires_at,
    )


_NO_STORE = {"Cache-Control": "no-store"}


def _answer(standing: Standing) -> Response:
    # Serialized straight from the model built here: the hottest routes of a rush skip
    # FastAPI's second validation of their own output.
    body = standing_out(standing).model_dump_json()
    return Response(body, media_type="application/json", headers=_NO_STORE)


@router.post(
    "/{term}/join",
    responses={**_PROBLEMS, **CHALLENGE_RESPONSES},
    response_model=QueueStatusOut,
    openapi_extra=CHALLENGE_PARAMETER,
)
async def join(term: ParamText, student: StudentUser, request: Request) -> Response:
    """Take a ticket. Repeating it (other tabs, other nodes) returns the same ticket. With
    ``RUSHGATE_CHALLENGE_ON_JOIN`` every join needs a solved challenge in the
    ``X-Rushgate-Challenge`` header (poll ``status``, not ``join``)."""
    node = student.node
    if node.challenges.on_join:  # an attribute: nothing awaited while it is off
        await require_challenge(node.challenges, "join", request)
    return _answer(await node.waiting_room.join(student_pk=student.pk, term_code=term))


@router.get("/{term}/status", responses=_PROBLEMS, response_model=QueueStatusOut)
async def queue_status(term: ParamText, student: StudentUser) -> Response:
    return _answer(await student.node.waiting_room.status(student_pk=student.pk, term_code=term))


@router.get(
    "/{term}/stream",
    responses={
        **_PROBLEMS,
        200: {"content": {"text/event-stream": {}}, "description": "status events"},
    },
    response_class=StreamingResponse,
)
async def stream(term: ParamText, request: Request, student: StudentUser) -> StreamingResponse:
    """The status as Server-Sent Events (``event: status``), ending once admitted or
    closed. Each connection starts with the current status, so reconnecting re-syncs."""
    standings = student.node.waiting_room.stream(
        student_pk=student.pk,
        term_code=term,
        heartbeat_seconds=HEARTBEAT_SECONDS,
        stop=lambda: bool(getattr(request.app.state, "draining", False)),
    )
    # Pull the first standing now: an unknown term or a student who never joined gets a
    # problem+json response, not a stream that ends at once.
    first = await anext(standings)

    async def events() -> AsyncIterator[bytes]:
        try:
            yield sse.retry()
            standing: Standing | None = first
            while True:
                if standing is None:
                    yield sse.comment("keep-alive")
                else:
                    body = standing_out(standing).model_dump_json()
                    yield sse.event("status", body, str(standing.place.ticket))
                if getattr(request.app.state, "draining", False):
                    return  # the client reconnects to another node
                standing = await anext(standings, _END)
                if standing is _END:
                    return
        finally:
            await standings.aclose()  # type: ignore[attr-defined]

    return StreamingResponse(events(), media_type="text/event-stream", headers=sse.HEADERS)


_END: Any = object()


@router.post("/{term}/leave", status_code=status.HTTP_204_NO_CONTENT, responses=_PROBLEMS)
async def leave(term: ParamText, student: StudentUser) -> None:
    """Give up the place or the admission; the admission token stops working."""
    await student.node.waiting_room.leave(student_pk=student.pk, term_code=term)
