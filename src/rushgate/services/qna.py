"""The admissions Q&A board (applicants ask, staff answer) and the staff-written FAQ.

Built for the seed site's load test, "2,000 users register a Q&A post at once": a post is
checked before any I/O and then stored by one ``INSERT`` in a short transaction, with no
counter or other shared row to update, so concurrent posts never wait for each other.

Visibility: a public question is seen by every applicant, a private one only by its
author and staff. Anyone else asking for a private question gets the same ``404`` as for
a question that does not exist, so ids reveal nothing.

Reads go to the primary (inside a unit of work): an applicant sees their own post in the
list at once, as they expect right after posting.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime

from rushgate.domain.admissions import check_question
from rushgate.domain.clock import Clock
from rushgate.domain.errors import NotFound, ValidationFailed
from rushgate.services.audit import record as record_change
from rushgate.services.ports.audit import Actor
from rushgate.services.ports.qna import (
    Answer,
    FaqEntry,
    NewQuestion,
    QuestionQuery,
    QuestionRecord,
)
from rushgate.services.ports.storage import Storage

PAGE_DEFAULT = 20
PAGE_MAX = 100
_CURSOR_PREFIX = "q1:"
_MAX_PK = 2**63 - 1  # a BIGINT key


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who reads the board: an applicant (``staff=False``) or an admin."""

    user_pk: int
    staff: bool


@dataclass(frozen=True, slots=True)
class QuestionView:
    pk: int
    title: str
    body: str
    public: bool
    created_at: datetime
    answer: Answer | None
    mine: bool
    author_name: str | None  # staff only: applicants never see who asked


@dataclass(frozen=True, slots=True)
class QuestionPage:
    items: list[QuestionView]
    next_cursor: str | None


def encode_cursor(before_pk: int) -> str:
    """Opaque to clients: they pass back what they got and never build one."""
    return base64.urlsafe_b64encode(f"{_CURSOR_PREFIX}{before_pk}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The id a page continues below; :class:`ValidationFailed` for anything else."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, ValueError):
        text = ""
    digits = text.removeprefix(_CURSOR_PREFIX)
    if text.startswith(_CURSOR_PREFIX) and digits.isdigit() and int(digits) <= _MAX_PK:
        return int(digits)
    raise ValidationFailed(
        "not a cursor from this list",
        errors=[{"field": "cursor", "message": "pass back next_cursor as it was given"}],
    )


def _renamed(error: ValidationFailed, names: dict[str, str], detail: str) -> ValidationFailed:
    """``check_question``'s field errors under the request's own field names."""
    return ValidationFailed(
        detail,
        errors=[{**e, "field": names.get(e["field"], e["field"])} for e in error.errors],
    )


class QnaService:
    def __init__(self, storage: Storage, clock: Clock) -> None:
        self._storage = storage
        self._clock = clock

    # --- applicants ---------------------------------------------------------------------

    async def ask(
        self, user_pk: int, round_code: str, *, title: str, body: str, public: bool
    ) -> QuestionView:
        clean_title, clean_body = check_question(title, body)
        async with self._storage.unit_of_work() as uow:
            record = await uow.qna.add_question(
                round_code,
                user_pk,
                NewQuestion(title=clean_title, body=clean_body, public=public),
                now=self._clock.now(),
            )
            await uow.commit()
        return self._view(record, Viewer(user_pk, staff=False))

    # --- applicants and staff -----------------------------------------------------------

    async def questions(
        self, viewer: Viewer, round_code: str, *, cursor: str | None, limit: int = PAGE_DEFAULT
    ) -> QuestionPage:
        if not 1 <= limit <= PAGE_MAX:
            raise ValidationFailed(
                "limit out of range",
                errors=[{"field": "limit", "message": f"must be 1 to {PAGE_MAX}"}],
            )
        before = None if cursor is None else decode_cursor(cursor)
        query = QuestionQuery(
            viewer_user_pk=None if viewer.staff else viewer.user_pk,
            before_pk=before,
            limit=limit + 1,  # one more than shown: whether there is a next page
        )
        async with self._storage.unit_of_work() as uow:
            stored = await uow.admissions.round(round_code)
            records = await uow.qna.questions(stored.pk, query)
        shown = records[:limit]
        more = len(records) > limit
        return QuestionPage(
            items=[self._view(r, viewer) for r in shown],
            next_cursor=encode_cursor(shown[-1].pk) if more else None,
        )

    async def question(self, viewer: Viewer, round_code: str, question_pk: int) -> QuestionView:
        async with self._storage.unit_of_work() as uow:
            stored = await uow.admissions.round(round_code)
            record = await uow.qna.question(stored.pk, question_pk)
        if record is None or not self._may_see(record, viewer):
            # The same answer whether it is missing or someone else's private question.
            raise NotFound("no such question in this round", question=question_pk)
        return self._view(record, viewer)

    async def faq(self, round_code: str) -> list[FaqEntry]:
        async with self._storage.unit_of_work() as uow:
            stored = await uow.admissions.round(round_code)
            return await uow.qna.faq(stored.pk)

    # --- staff --------------------------------------------------------------------------

    async def answer(
        self,
        staff_user_pk: int,
        round_code: str,
        question_pk: int,
        body: str,
        *,
        actor: Actor | None = None,
    ) -> QuestionView:
        """Answer, or replace the answer; it records who answered and when."""
        try:
            # The title is a fixed valid one: only the answer's body is being checked.
            _, clean = check_question("answer", body)
        except ValidationFailed as exc:
            raise _renamed(exc, {}, "the answer is empty or invalid") from None
        viewer = Viewer(staff_user_pk, staff=True)
        async with self._storage.unit_of_work() as uow:
            stored = await uow.admissions.round(round_code)
            found = await uow.qna.answer(
                stored.pk, question_pk, clean, by_user_pk=staff_user_pk, now=self._clock.now()
            )
            if not found:
                raise NotFound("no such question in this round", question=question_pk)
            record = await uow.qna.question(stored.pk, question_pk)
            await record_change(
                uow,
                self._clock,
                actor,
                "question.answer",
                f"question:{round_code}/{question_pk}",
            )
            await uow.commit()
        assert record is not None  # just updated in this transaction
        return self._view(record, viewer)

    async def add_faq(
        self,
        staff_user_pk: int,
        round_code: str,
        *,
        question: str,
        answer: str,
        actor: Actor | None = None,
    ) -> FaqEntry:
        try:
            clean_question, clean_answer = check_question(question, answer)
        except ValidationFailed as exc:
            names = {"title": "question", "body": "answer"}
            raise _renamed(exc, names, "the FAQ entry is incomplete or invalid") from None
        async with self._storage.unit_of_work() as uow:
            stored = await uow.admissions.round(round_code)
            entry = await uow.qna.add_faq(
                stored.pk,
                clean_question,
                clean_answer,
                by_user_pk=staff_user_pk,
                now=self._clock.now(),
            )
            await record_change(
                uow, self._clock, actor, "faq.create", f"faq:{round_code}/{entry.pk}"
            )
            await uow.commit()
        return entry

    # --- helpers ------------------------------------------------------------------------

    @staticmethod
    def _may_see(record: QuestionRecord, viewer: Viewer) -> bool:
        return viewer.staff or record.public or record.author_user_pk == viewer.user_pk

    @staticmethod
    def _view(record: QuestionRecord, viewer: Viewer) -> QuestionView:
        answer = record.answer
        if answer is not None and not viewer.staff:
            # Applicants see that staff answered, not which account did.
            answer = Answer(body=answer.body, answered_at=answer.answered_at, answered_by=None)
        return QuestionView(
            pk=record.pk,
            title=record.title,
            body=record.body,
            public=record.public,
            created_at=record.created_at,
            answer=answer,
            mine=record.author_user_pk == viewer.user_pk,
            author_name=record.author_name if viewer.staff else None,
        )
