"""The admissions Q&A board and the staff FAQ, as the use cases store them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Answer:
    """Staff's current answer to a question; answering again replaces all of it."""

    body: str
    answered_at: datetime
    answered_by: str | None  # the admin's username; None once that account is gone


@dataclass(frozen=True, slots=True)
class QuestionRecord:
    pk: int
    round_pk: int
    author_user_pk: int
    author_name: str | None  # the applicant's name; not filled in by ``add_question``
    title: str
    body: str
    public: bool
    created_at: datetime
    answer: Answer | None


@dataclass(frozen=True, slots=True)
class NewQuestion:
    """Already checked and normalised (``check_question``)."""

    title: str
    body: str
    public: bool


@dataclass(frozen=True, slots=True)
class QuestionQuery:
    """One page of a round's board, newest first (keyset: ids below ``before_pk``).

    ``viewer_user_pk`` sees public questions and their own private ones; ``None`` is staff,
    who see everything."""

    viewer_user_pk: int | None
    before_pk: int | None
    limit: int


@dataclass(frozen=True, slots=True)
class FaqEntry:
    pk: int
    question: str
    answer: str
    created_at: datetime


class QnaRepository(Protocol):
    """Every method runs inside the caller's unit of work (on the primary)."""

    async def add_question(
        self, round_code: str, author_user_pk: int, question: NewQuestion, *, now: datetime
    ) -> QuestionRecord:
        """Store a question: one ``INSERT … SELECT`` that finds the round and the author's
        applicant row itself, so a post is one statement and touches no shared row (2,000
        applicants posting at once do not queue on anything). Raises ``NotFound`` for an
        unknown round or a login without an applicant account."""
        ...

    async def questions(self, round_pk: int, query: QuestionQuery) -> list[QuestionRecord]:
        """At most ``query.limit`` questions the viewer may see, newest first."""
        ...

    async def question(self, round_pk: int, question_pk: int) -> QuestionRecord | None:
        """The question whatever its visibility (the caller decides who may see it)."""
        ...

    async def answer(
        self, round_pk: int, question_pk: int, body: str, *, by_user_pk: int, now: datetime
    ) -> bool:
        """Set (or replace) the answer; whether the question exists in this round."""
        ...

    async def add_faq(
        self, round_pk: int, question: str, answer: str, *, by_user_pk: int, now: datetime
    ) -> FaqEntry: ...

    async def faq(self, round_pk: int) -> list[FaqEntry]:
        """The round's FAQ entries in the order staff wrote them."""
        ...
