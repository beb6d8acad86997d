"""Bodies of the Q&A board and the FAQ. Strict types: a number or ``"true"`` where text
or a boolean belongs is refused, not converted; the domain then checks lengths and
characters, listing every bad field (``422 validation_failed``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field, StrictBool, StrictStr, StringConstraints

from rushgate.http.schemas import Strict

# Generous caps on what is parsed at all; the domain's limits (120 and 5,000 characters)
# are the real ones and answer with the field's name.
TitleText = Annotated[StrictStr, StringConstraints(max_length=1_000)]
BodyText = Annotated[StrictStr, StringConstraints(max_length=20_000)]


class QuestionIn(Strict):
    title: TitleText
    body: BodyText
    public: StrictBool = Field(
        default=False,
        description="Shown to every applicant; otherwise only to you and staff.",
    )


class AnswerIn(Strict):
    body: BodyText


class AnswerOut(BaseModel):
    body: str
    answered_at: datetime
    answered_by: str | None = Field(description="The admin who answered; staff only.")


class QuestionOut(BaseModel):
    id: int
    title: str
    body: str
    public: bool
    created_at: datetime
    answer: AnswerOut | None
    mine: bool = Field(description="Whether the caller asked it.")
    author_name: str | None = Field(description="Who asked; staff only.")


class QuestionPageOut(BaseModel):
    items: list[QuestionOut]
    next_cursor: str | None = Field(
        description="Pass as ?cursor= for the next (older) page; null on the last page."
    )


class FaqIn(Strict):
    question: TitleText
    answer: BodyText


class FaqOut(BaseModel):
    id: int
    question: str
    answer: str
    created_at: datetime
