"""The admissions Q&A board and FAQ: applicants ask, staff answer and write the FAQ."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, status

from rushgate.http.deps import AdminActor, ApplicantUser, ContainerDep, CurrentUser
from rushgate.http.errors import ApiError
from rushgate.http.qna_schemas import (
    AnswerIn,
    AnswerOut,
    FaqIn,
    FaqOut,
    QuestionIn,
    QuestionOut,
    QuestionPageOut,
)
from rushgate.http.schemas import NulFree, ParamText
from rushgate.services.ports.auth import Principal
from rushgate.services.ports.qna import FaqEntry
from rushgate.services.qna import PAGE_DEFAULT, PAGE_MAX, QuestionView, Viewer

router = APIRouter(prefix="/api/v1", tags=["admissions: Q&A"])

# Ids are BIGINT keys: anything else is refused here rather than by the database.
QuestionId = Annotated[int, Path(ge=1, le=2**63 - 1)]

_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "not_found: no such round, or no such question visible to you"}
}


def _viewer(principal: Principal) -> Viewer:
    """Applicants and staff read the board; students and others have no business here."""
    if principal.role == "admin":
        return Viewer(principal.user_pk, staff=True)
    if principal.role == "applicant":
        return Viewer(principal.user_pk, staff=False)
    raise ApiError(403, "forbidden", "this needs an applicant account or an admin")


def question_out(view: QuestionView) -> QuestionOut:
    answer = view.answer
    return QuestionOut(
        id=view.pk,
        title=view.title,
        body=view.body,
        public=view.public,
        created_at=view.created_at,
        answer=None
        if answer is None
        else AnswerOut(
            body=answer.body, answered_at=answer.answered_at, answered_by=answer.answered_by
        ),
        mine=view.mine,
        author_name=view.author_name,
    )


def _faq_out(entry: FaqEntry) -> FaqOut:
    return FaqOut(
        id=entry.pk, question=entry.question, answer=entry.answer, created_at=entry.created_at
    )


@router.post(
    "/admissions/{round_code}/questions",
    status_code=status.HTTP_201_CREATED,
    responses={**_NOT_FOUND, 422: {"description": "validation_failed (fields listed)"}},
)
async def ask(
    round_code: ParamText, body: QuestionIn, container: ContainerDep, applicant: ApplicantUser
) -> QuestionOut:
    view = await container.qna.ask(
        applicant.user_pk, round_code, title=body.title, body=body.body, public=body.public
    )
    return question_out(view)


@router.get("/admissions/{round_code}/questions", responses=_NOT_FOUND)
async def questions(
    round_code: ParamText,
    container: ContainerDep,
    principal: CurrentUser,
    cursor: Annotated[str | None, NulFree, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=PAGE_MAX)] = PAGE_DEFAULT,
) -> QuestionPageOut:
    """Newest first: public questions, your own private ones (staff: all), with answers."""
    page = await container.qna.questions(_viewer(principal), round_code, cursor=cursor, limit=limit)
    return QuestionPageOut(
        items=[question_out(v) for v in page.items], next_cursor=page.next_cursor
    )


@router.get("/admissions/{round_code}/questions/{question_id}", responses=_NOT_FOUND)
async def question(
    round_code: ParamText, question_id: QuestionId, container: ContainerDep, principal: CurrentUser
) -> QuestionOut:
    return question_out(await container.qna.question(_viewer(principal), round_code, question_id))


@router.post("/admin/admissions/{round_code}/questions/{question_id}/answer", responses=_NOT_FOUND)
async def answer(
    round_code: ParamText,
    question_id: QuestionId,
    body: AnswerIn,
    container: ContainerDep,
    admin: AdminActor,
) -> QuestionOut:
    """Answer a question; answering again replaces the answer (and who and when)."""
    view = await container.qna.answer(
        admin.user_pk, round_code, question_id, body.body, actor=admin
    )
    return question_out(view)


@router.get("/admissions/{round_code}/faq", responses=_NOT_FOUND)
async def faq(round_code: ParamText, container: ContainerDep, _: CurrentUser) -> list[FaqOut]:
    return [_faq_out(e) for e in await container.qna.faq(round_code)]


@router.post(
    "/admin/admissions/{round_code}/faq", status_code=status.HTTP_201_CREATED, responses=_NOT_FOUND
)
async def add_faq(
    round_code: ParamText, body: FaqIn, container: ContainerDep, admin: AdminActor
) -> FaqOut:
    entry = await container.qna.add_faq(
        admin.user_pk, round_code, question=body.question, answer=body.answer, actor=admin
    )
    return _faq_out(entry)
