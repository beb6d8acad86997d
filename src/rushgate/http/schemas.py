"""Request and response bodies. Unknown fields are refused, so typos never pass silently."""

from __future__ import annotations

import re
from datetime import UTC, datetime, time
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from rushgate.domain.model import Day, Meeting
from rushgate.services.ports.registry import NewSection
from rushgate.services.registry import StudentInput

Identifier = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
Email = Annotated[str, StringConstraints(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=254)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]

# --- text that can be stored --------------------------------------------------------


def _holds_nul(value: object) -> bool:
    """Whether a string anywhere in ``value`` (nested lists and objects, keys too) holds
    U+0000. Iterative: a deeply nested body must not end in a RecursionError (a 500)."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list | tuple):
            pending.extend(item)
    return False


def refuse_nul(value: object) -> object:
    """PostgreSQL text cannot hold NUL (the insert fails: a 500) and SQLite would keep it
    silently; no user types one, so it is refused as the shape error it is, before any
    backend sees it."""
    if _holds_nul(value):
        raise PydanticCustomError("string_nul", "text must not contain NUL (U+0000) characters")
    return value


#: For path and query parameters (``Annotated[str | None, NulFree, Query(…)]``); bodies
#: get it from :class:`Strict`.
NulFree = AfterValidator(refuse_nul)
#: A text path parameter (a term, round or receipt): it ends up in a query.
ParamText = Annotated[str, NulFree]


class Strict(BaseModel):
    """The base of every request body: unknown fields are refused (no mass assignment)
    and so is NUL in any string of any field, nested ones included."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _no_nul(cls, value: object) -> object:
        return refuse_nul(value)


# --- dates and times ------------------------------------------------------------------

# The start of an ISO 8601 date-time; pydantic parses (and checks) the rest.
_ISO_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")
# A wall-clock time of day, as the catalog shows it, seconds optional.
_CLOCK_TIME = re.compile(r"(?:[01]\d|2[0-3]):[0-5]\d(?::[0-5]\d)?")


def _datetime_text(value: object) -> object:
    """Only ISO 8601 text: pydantic on its own also reads ``0`` or ``"1700000000"`` as
    Unix time, which no one sending a date means."""
    if isinstance(value, datetime) or (isinstance(value, str) and _ISO_DATETIME.match(value)):
        return value
    raise PydanticCustomError(
        "datetime_format",
        "an ISO 8601 date and time with its UTC offset, e.g. 2026-02-10T09:00:00+09:00",
    )


def _utc_representable(value: datetime) -> datetime:
    """Storage converts to UTC; 0001-01-01T00:00+05:00 or 9999-12-31T23:59-01:00 fall
    outside what a datetime holds once converted (an OverflowError: a 500)."""
    try:
        value.astimezone(UTC)
    except OverflowError:
        raise PydanticCustomError(
            "datetime_range", "out of range once converted to UTC (years 1 to 9999)"
        ) from None
    return value


#: A moment: ISO 8601 text with an offset that converts to UTC. Returned as given (the
#: offset is kept: a round's default receipt prefix uses its local year).
Instant = Annotated[
    AwareDatetime, BeforeValidator(_datetime_text), AfterValidator(_utc_representable)
]


def _clock_time_text(value: object) -> object:
    """``HH:MM`` (or ``HH:MM:SS``) only: pydantic on its own reads ``900`` as 900 seconds
    after midnight, and keeps an offset (``09:00+05:00``) that then cannot be compared
    with the other, naive, times of a schedule."""
    if isinstance(value, time) and value.tzinfo is None:
        return value
    if isinstance(value, str) and _CLOCK_TIME.fullmatch(value):
        return value
    raise PydanticCustomError(
        "time_format", "a time of day as HH:MM, 24-hour clock, without a UTC offset"
    )


#: A meeting's local wall-clock time: naive by construction.
ClockTime = Annotated[time, BeforeValidator(_clock_time_text)]

# Whole numbers only: lax ints also take true (as 1), 3.0 and "3".
Count = Annotated[int, Field(strict=True)]


# --- auth ------------------------------------------------------------------------------


class TokenRequest(Strict):
    username: Annotated[str, StringConstraints(min_length=1, max_length=254)]
    password: Annotated[str, StringConstraints(min_length=1, max_length=1024)]
    challenge: Annotated[str, StringConstraints(min_length=1, max_length=4096)] | None = Field(
        default=None,
        description="A solved bot challenge, when one is asked for (or send it as the "
        "X-Rushgate-Challenge header).",
    )


class TokenResponse(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105
    expires_in: int


# --- admin -----------------------------------------------------------------------------


class WaitingRoomSettings(Strict):
    enabled: StrictBool = False
    admit_per_second: int = Field(default=10, ge=1, le=100_000, strict=True)
    max_active: int = Field(
        default=500,
        strict=True,
        ge=1,
        le=1_000_000,
        description="At most this many admitted students at once (admitted, not yet done).",
    )
    admission_ttl_seconds: int = Field(
        default=600,
        strict=True,
        ge=30,
        le=24 * 3600,
        description="How long an admission (and its token) lasts before the slot is freed.",
    )


class TermCreate(Strict):
    code: Identifier
    name: Name
    opens_at: Instant
    closes_at: Instant
    # Keys stay lax ints: JSON object keys are always strings ("4").
    class_year_opens_at: dict[Annotated[int, Field(ge=1, le=20)], Instant] = Field(
        default_factory=dict,
        description="Class years that open at their own time, e.g. seniors first.",
    )
    waiting_room: WaitingRoomSettings = Field(default_factory=WaitingRoomSettings)


class TermUpdate(Strict):
    """What an admin may change on a term; a field left out stays as it is. The window
    is moved whole (both ends, and the class years' own openings are kept)."""

    opens_at: Instant | None = None
    closes_at: Instant | None = None
    admit_per_second: int | None = Field(default=None, ge=1, le=100_000, strict=True)
    max_active: int | None = Field(default=None, ge=1, le=1_000_000, strict=True)

    @model_validator(mode="after")
    def _whole_window(self) -> TermUpdate:
        if (self.opens_at is None) != (self.closes_at is None):
            raise ValueError("give both opens_at and closes_at, or neither")
        return self


class TermOut(BaseModel):
    code: str
    name: str
    opens_at: datetime
    closes_at: datetime
    class_year_opens_at: dict[int, datetime]
    waiting_room: WaitingRoomSettings
    admission_paused: bool = Field(
        default=False,
        description="An admin paused admission from the waiting room: no one is admitted "
        "until it is resumed (the queue keeps its order).",
    )


class MeetingIn(Strict):
    day: Day
    start: ClockTime = Field(examples=["09:00"])
    end: ClockTime = Field(examples=["10:15"])

    @model_validator(mode="after")
    def _ordered(self) -> MeetingIn:
        if self.start >= self.end:
            raise ValueError("a meeting must end after it starts")
        return self


class MeetingOut(BaseModel):
    day: Day
    start: str
    end: str


class SectionCreate(Strict):
    section_id: Identifier
    course_code: Identifier
    title: Name
    credits: Count = Field(ge=0, le=30)
    capacity: Count = Field(ge=0, le=100_000)
    meetings: list[MeetingIn] = Field(default_factory=list, max_length=21)
    waitlist_capacity: Count = Field(default=0, ge=0, le=100_000)

    def to_new(self) -> NewSection:
        return NewSection(
            section_id=self.section_id,
            course_code=self.course_code,
            title=self.title,
            credits=self.credits,
            capacity=self.capacity,
            meetings=tuple(Meeting(m.day, m.start, m.end) for m in self.meetings),
            waitlist_capacity=self.waitlist_capacity,
        )


class StudentCreate(Strict):
    student_id: Identifier
    name: Name
    email: Email
    password: Annotated[str, StringConstraints(min_length=8, max_length=1024)]
    class_year: Count = Field(ge=1, le=20)
    max_credits: Count = Field(ge=0, le=60)

    def to_new(self) -> StudentInput:
        return StudentInput(
            student_id=self.student_id,
            name=self.name,
            email=self.email,
            password=self.password,
            class_year=self.class_year,
            max_credits=self.max_credits,
        )


class Created(BaseModel):
    created: int


# --- students --------------------------------------------------------------------------


class SectionOut(BaseModel):
    section_id: str
    course_code: str
    title: str
    credits: int
    capacity: int
    enrolled: int
    seats_left: int
    waitlist_capacity: int
    waitlisted: int
    meetings: list[MeetingOut]


class CatalogOut(BaseModel):
    term: str
    sections: list[SectionOut]
    next: str | None = Field(
        default=None,
        description="The cursor of the next page (pass it as `after`); null on the last page.",
    )


class EnrollRequest(Strict):
    section_id: Identifier


class EnrollmentOut(BaseModel):
    section_id: str
    status: Literal["enrolled", "waitlisted"]
    waitlist_position: int | None


class ScheduleItem(BaseModel):
    section_id: str
    course_code: str
    title: str
    credits: int
    status: Literal["enrolled", "waitlisted"]
    waitlist_position: int | None
    meetings: list[MeetingOut]


class ScheduleOut(BaseModel):
    term: str
    enrolled_credits: int
    enrollments: list[ScheduleItem]


class RosterStudent(BaseModel):
    student_id: str
    name: str
    email: str
    enrolled_at: datetime
    waitlist_position: int | None = None


class RosterOut(BaseModel):
    term: str
    section_id: str
    enrolled: list[RosterStudent]
    waitlisted: list[RosterStudent]


# --- waiting room ----------------------------------------------------------------------


class QueueStatusOut(BaseModel):
    term: str
    ticket: int
    state: Literal["prequeue", "waiting", "admitted", "closed"]
    position: int | None = Field(description="1 = next to be admitted; null before opening.")
    ahead: int | None = Field(description="Students ahead of you; null before opening.")
    eta_seconds: int | None = Field(
        description="Server-side estimate from the measured admission rate; before "
        "opening, the seconds until the lottery."
    )
    poll_after_seconds: int = Field(description="Ask again after this long, not sooner.")
    reason: str | None = Field(
        default=None,
        description="Why the state is closed: window_closed, admission_expired, or left "
        "(a stream whose student left from elsewhere).",
    )
    admission_token: str | None = Field(
        default=None, description="Once admitted: send it as X-Admission-Token to enroll."
    )
    admission_expires_at: datetime | None = None
