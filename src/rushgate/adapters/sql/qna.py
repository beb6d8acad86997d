"""The Q&A board and the FAQ on SQLAlchemy Core (both engines).

A post is a single ``INSERT … SELECT … RETURNING``: the round and the author's applicant
row are found by the same statement, so posting costs one round trip inside its
transaction and locks nothing but the new row.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Row, Select, insert, literal, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from rushgate.adapters.sql.tables import admission_faq as F
from rushgate.adapters.sql.tables import admission_questions as Q
from rushgate.adapters.sql.tables import admission_rounds as R
from rushgate.adapters.sql.tables import applicants as AP
from rushgate.adapters.sql.tables import users as U
from rushgate.domain.errors import NotFound
from rushgate.services.ports.qna import (
    Answer,
    FaqEntry,
    NewQuestion,
    QuestionQuery,
    QuestionRecord,
)

_ANSWERER = U.alias("answerer")


def _with_people(query: Select[Any]) -> Select[Any]:
    """A question with its author (for visibility and staff) and its answerer's name."""
    return query.join(AP, AP.c.id == Q.c.applicant_id).outerjoin(
        _ANSWERER, _ANSWERER.c.id == Q.c.answered_by
    )


_COLUMNS = (
    *Q.c,
    AP.c.user_id.label("author_user_id"),
    AP.c.name.label("author_name"),
    _ANSWERER.c.username.label("answerer"),
)


def _record(row: Row[Any]) -> QuestionRecord:
    answer = (
        None
        if row.answer is None
        else Answer(body=row.answer, answered_at=row.answered_at, answered_by=row.answerer)
    )
    return QuestionRecord(
        pk=row.id,
        round_pk=row.round_id,
        author_user_pk=row.author_user_id,
        author_name=row.author_name,
        title=row.title,
        body=row.body,
        public=row.public,
        created_at=row.created_at,
        answer=answer,
    )


def _faq(row: Row[Any]) -> FaqEntry:
    return FaqEntry(pk=row.id, question=row.question, answer=row.answer, created_at=row.created_at)


class SqlQnaRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add_question(
        self, round_code: str, author_user_pk: int, question: NewQuestion, *, now: datetime
    ) -> QuestionRecord:
        source = (
            select(
                R.c.id,
                AP.c.id,
                literal(question.title, Q.c.title.type),
                literal(question.body, Q.c.body.type),
                literal(question.public, Q.c.public.type),
                literal(now, Q.c.created_at.type),
            )
            .select_from(R.join(AP, AP.c.user_id == author_user_pk))
            .where(R.c.code == round_code)
        )
        statement = (
            insert(Q)
            .from_select(
                ["round_id", "applicant_id", "title", "body", "public", "created_at"], source
            )
            .returning(*Q.c)
        )
        row = (await self._conn.execute(statement)).first()
        if row is None:
            found = await self._conn.execute(select(R.c.id).where(R.c.code == round_code))
            if found.first() is None:
                raise NotFound("no such admission round", round=round_code)
            raise NotFound("no applicant account for this login")
        return QuestionRecord(
            pk=row.id,
            round_pk=row.round_id,
            author_user_pk=author_user_pk,
            author_name=None,  # read by the lists (a join INSERT … RETURNING cannot make)
            title=row.title,
            body=row.body,
            public=row.public,
            created_at=row.created_at,
            answer=None,
        )

    async def questions(self, round_pk: int, query: QuestionQuery) -> list[QuestionRecord]:
        statement = (
            _with_people(select(*_COLUMNS).select_from(Q))
            .where(Q.c.round_id == round_pk)
            .order_by(Q.c.id.desc())
            .limit(query.limit)
        )
        if query.viewer_user_pk is not None:
            statement = statement.where(
                or_(Q.c.public.is_(True), AP.c.user_id == query.viewer_user_pk)
            )
        if query.before_pk is not None:
            statement = statement.where(Q.c.id < query.before_pk)
        return [_record(row) for row in await self._conn.execute(statement)]

    async def question(self, round_pk: int, question_pk: int) -> QuestionRecord | None:
        row = (
            await self._conn.execute(
                _with_people(select(*_COLUMNS).select_from(Q)).where(
                    Q.c.round_id == round_pk, Q.c.id == question_pk
                )
            )
        ).first()
        return None if row is None else _record(row)

    async def answer(
        self, round_pk: int, question_pk: int, body: str, *, by_user_pk: int, now: datetime
    ) -> bool:
        result = await self._conn.execute(
            update(Q)
            .where(Q.c.round_id == round_pk, Q.c.id == question_pk)
            .values(answer=body, answered_at=now, answered_by=by_user_pk)
        )
        return bool(result.rowcount)

    async def add_faq(
        self, round_pk: int, question: str, answer: str, *, by_user_pk: int, now: datetime
    ) -> FaqEntry:
        row = (
            await self._conn.execute(
                insert(F)
                .values(
                    round_id=round_pk,
                    question=question,
                    answer=answer,
                    created_at=now,
                    created_by=by_user_pk,
                )
                .returning(*F.c)
            )
        ).one()
        return _faq(row)

    async def faq(self, round_pk: int) -> list[FaqEntry]:
        rows = await self._conn.execute(select(F).where(F.c.round_id == round_pk).order_by(F.c.id))
        return [_faq(row) for row in rows]
