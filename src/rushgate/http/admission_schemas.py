"""Bodies of the admissions API. Strict types: a number where text belongs is refused,
not converted; the domain then checks formats and lengths, listing every bad field."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, StrictBool, StrictStr, StringConstraints

from rushgate.domain.admissions import ApplicationStatus
from rushgate.http.schemas import Identifier, Instant, Name, Strict

# Generous caps on what is parsed at all; the domain's limits are the real ones.
Text = Annotated[StrictStr, StringConstraints(max_length=500)]
Locale = Literal["ko", "en"]


class TrackIn(Strict):
    code: Identifier
    name: Name
    capacity: Annotated[int, Field(ge=0, le=1_000_000, strict=True)] | None = None


class RoundCreate(Strict):
    code: Identifier
    name: Name
    opens_at: Instant
    closes_at: Instant
    tracks: Annotated[list[TrackIn], Field(min_length=1, max_length=100)]
    required_documents: Annotated[list[Name], Field(max_length=50)] = Field(default_factory=list)
    receipt_prefix: Annotated[str, StringConstraints(max_length=16)] | None = Field(
        default=None, description="Receipt numbers read <prefix>-000123; default <year>-A."
    )


class TrackOut(BaseModel):
    code: str
    name: str
    capacity: int | None


class RoundOut(BaseModel):
    code: str
    name: str
    opens_at: datetime
    closes_at: datetime
    tracks: list[TrackOut]
    required_documents: list[str]
    receipt_prefix: str


class SignUp(Strict):
    email: Annotated[StrictStr, StringConstraints(max_length=254)]
    password: Annotated[StrictStr, StringConstraints(max_length=1024)]
    name: Text
    locale: Locale | None = None


class ApplicantOut(BaseModel):
    email: str
    name: str
    locale: str | None
    verified: bool
    verification_required: bool


class VerifyRequest(Strict):
    token: Annotated[StrictStr, StringConstraints(min_length=1, max_length=2048)]


class PersonalIn(Strict):
    name: Text
    birth_date: Text = Field(description="YYYY-MM-DD")
    phone: Text
    guardian_name: Text
    guardian_phone: Text
    middle_school: Text
    address: Text


class ApplicationIn(Strict):
    track: Identifier | None = None
    personal: PersonalIn | None = None
    statement: Annotated[StrictStr, StringConstraints(max_length=20_000)] = ""
    consent: StrictBool = Field(
        default=False, description="Consent to the processing of the personal information."
    )


class PersonalOut(BaseModel):
    name: str
    birth_date: str
    phone: str
    guardian_name: str
    guardian_phone: str
    middle_school: str
    address: str


class ApplicationOut(BaseModel):
    round: str
    status: ApplicationStatus
    track: str | None
    personal: PersonalOut | None
    statement: str
    consent_at: datetime | None
    receipt_number: str | None
    submitted_at: datetime | None
    updated_at: datetime
    version: int


class HistoryOut(BaseModel):
    at: datetime
    action: str
    status: ApplicationStatus
    by_applicant: bool


class ReceiptOut(BaseModel):
    receipt_number: str
    round: str
    round_name: str
    applicant: str
    track: str | None
    submitted_at: datetime
    status: ApplicationStatus


class StaffApplicationOut(BaseModel):
    receipt_number: str | None
    status: ApplicationStatus
    track: str | None
    applicant_name: str
    email: str
    phone: str | None = Field(description="Masked; the CSV export has it whole.")
    submitted_at: datetime | None
    updated_at: datetime


class StaffApplicationsPage(BaseModel):
    items: list[StaffApplicationOut]
    next_cursor: str | None


class StatusChange(Strict):
    status: Literal["under_review", "waitlisted", "accepted", "rejected"]


class WaitlistAdmission(Strict):
    receipt_numbers: Annotated[
        list[Annotated[StrictStr, StringConstraints(max_length=64)]],
        Field(min_length=1, max_length=1000),
    ]
