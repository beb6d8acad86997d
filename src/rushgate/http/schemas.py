"""Request and response bodies. Unknown fields are refused, so typos never pass silently."""

from __future__ import annotations

from datetime import datetime, time
from typing import Annotated, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from rushgate.domain.model import Day

Identifier = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
Email = Annotated[str, StringConstraints(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=254)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- auth ------------------------------------------------------------------------------


class TokenRequest(Strict):
    username: Annotated[str, StringConstraints(min_length=1, max_length=254)]
    password: Annotated[str, StringConstraints(min_length=1, max_length=1024)]


class TokenResponse(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105
    expires_in: int


# --- admin -----------------------------------------------------------------------------


class WaitingRoomSettings(Strict):
    enabled: bool = False
    admit_per_second: int = Field(default=10, ge=1, le=100_000)
    max_active: int = Field(
        default=500,
        ge=1,
        le=1_000_000,
        description="At most this many admitted students at once (admitted, not yet done).",
    )
    admission_ttl_seconds: int = Field(
        default=600,
        ge=30,
        le=24 * 3600,
        description="How long an admission (and its token) lasts before the slot is freed.",
    )


class TermCreate(Strict):
    code: Identifier
    name: Name
    opens_at: AwareDatetime
    closes_at: AwareDatetime
    class_year_opens_at: dict[Annotated[int, Field(ge=1, le=20)], AwareDatetime] = Field(
        default_factory=dict,
        description="Class years that open at their own time, e.g. seniors first.",
    )
    waiting_room: WaitingRoomSettings = Field(default_factory=WaitingRoomSettings)


class TermOut(BaseModel):
    code: str
    name: str
    opens_at: datetime
    closes_at: datetime
    class_year_opens_at: dict[int, datetime]
    waiting_room: WaitingRoomSettings


class MeetingIn(Strict):
    day: Day
    start: time
    end: time

    @field_validator("start", "end", mode="before")
    @classmethod
    def _hh_mm(cls, value: object) -> object:
        if isinstance(value, str) and len(value) == 5:
            return value + ":00"
        return value

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
    credits: int = Field(ge=0, le=30)
    capacity: int = Field(ge=0, le=100_000)
    meetings: list[MeetingIn] = Field(default_factory=list, max_length=21)
    waitlist_capacity: int = Field(default=0, ge=0, le=100_000)


class StudentCreate(Strict):
    student_id: Identifier
    name: Name
    email: Email
    password: Annotated[str, StringConstraints(min_length=8, max_length=1024)]
    class_year: int = Field(ge=1, le=20)
    max_credits: int = Field(ge=0, le=60)


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
