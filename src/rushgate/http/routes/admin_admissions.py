"""Staff: admission rounds, the applications list and CSV export, decisions, and
admissions from the waitlist (충원합격)."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Query, status
from fastapi.responses import StreamingResponse

from rushgate.domain.admissions import (
    AdmissionRound,
    ApplicationStatus,
    FilingWindow,
    Track,
    default_receipt_prefix,
    mask_phone,
)
from rushgate.domain.errors import InvalidRequest
from rushgate.http.admission_schemas import (
    ApplicationOut,
    RoundCreate,
    RoundOut,
    StaffApplicationOut,
    StaffApplicationsPage,
    StatusChange,
    WaitlistAdmission,
)
from rushgate.http.deps import AdminActor, AdminUser, ContainerDep
from rushgate.http.routes.admissions import application_out, round_out
from rushgate.http.schemas import NulFree, ParamText
from rushgate.services.admissions import AdmissionsService, StaffRow
from rushgate.services.ports.admissions import ApplicationFilter

router = APIRouter(prefix="/api/v1/admin/admissions", tags=["admin: admissions"])

_EXPORT_PAGE = 500
_CSV_COLUMNS = (
    "receipt_number",
    "status",
    "track",
    "name",
    "birth_date",
    "phone",
    "guardian_name",
    "guardian_phone",
    "middle_school",
    "address",
    "email",
    "submitted_at",
    "updated_at",
)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses={409: {"description": "conflict: a round with this code exists"}},
)
async def create_round(body: RoundCreate, container: ContainerDep, admin: AdminActor) -> RoundOut:
    if body.closes_at <= body.opens_at:
        raise InvalidRequest("closes_at must be after opens_at", field="closes_at")
    round_ = AdmissionRound(
        code=body.code,
        name=body.name,
        window=FilingWindow(body.opens_at, body.closes_at),
        tracks=tuple(Track(t.code, t.name, t.capacity) for t in body.tracks),
        required_documents=tuple(body.required_documents),
        receipt_prefix=body.receipt_prefix or default_receipt_prefix(body.code, body.opens_at),
    )
    await container.admissions.create_round(round_, actor=admin)
    return round_out(round_)


def _cursor(raw: str | None) -> int | None:
    if raw is None:
        return None
    if not raw.isdigit() or len(raw) > 18:
        raise InvalidRequest("not a cursor from this list", field="cursor")
    return int(raw)


@router.get("/{round_code}/applications")
async def list_applications(
    round_code: ParamText,
    container: ContainerDep,
    _: AdminUser,
    status_: Annotated[ApplicationStatus | None, Query(alias="status")] = None,
    track: Annotated[str | None, NulFree, Query(max_length=64)] = None,
    cursor: Annotated[str | None, NulFree, Query(max_length=32)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> StaffApplicationsPage:
    rows = await container.admissions.list_applications(
        round_code,
        ApplicationFilter(status=status_, track=track, after_pk=_cursor(cursor), limit=limit),
    )
    items = [
        StaffApplicationOut(
            receipt_number=row.view.receipt_number,
            status=row.view.status,
            track=row.view.track,
            applicant_name=row.applicant.name,
            email=row.applicant.email,
            phone=None if row.view.personal is None else mask_phone(row.view.personal.phone),
            submitted_at=row.view.submitted_at,
            updated_at=row.view.updated_at,
        )
        for row in rows
    ]
    next_cursor = str(rows[-1].pk) if len(rows) == limit else None
    return StaffApplicationsPage(items=items, next_cursor=next_cursor)


def _cell(value: object) -> str:
    """A CSV cell that a spreadsheet will not run as a formula (CSV injection)."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _csv_line(row: StaffRow) -> str:
    p = row.view.personal
    values = (
        row.view.receipt_number,
        row.view.status.value,
        row.view.track,
        row.applicant.name if p is None else p.name,
        None if p is None else p.birth_date.isoformat(),
        None if p is None else p.phone,
        None if p is None else p.guardian_name,
        None if p is None else p.guardian_phone,
        None if p is None else p.middle_school,
        None if p is None else p.address,
        row.applicant.email,
        None if row.view.submitted_at is None else row.view.submitted_at.isoformat(),
        row.view.updated_at.isoformat(),
    )
    out = io.StringIO()
    csv.writer(out).writerow([_cell(v) for v in values])
    return out.getvalue()


async def export_rows(
    service: AdmissionsService, round_code: str, where: ApplicationFilter
) -> AsyncIterator[str]:
    # A byte-order mark: spreadsheet programs then read the Korean text as UTF-8.
    yield "\ufeff" + ",".join(_CSV_COLUMNS) + "\r\n"
    after: int | None = None
    while True:
        rows = await service.list_applications(
            round_code,
            ApplicationFilter(
                status=where.status, track=where.track, after_pk=after, limit=_EXPORT_PAGE
            ),
        )
        for row in rows:
            yield _csv_line(row)
        if len(rows) < _EXPORT_PAGE:
            return
        after = rows[-1].pk


@router.get(
    "/{round_code}/applications.csv",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}}},
)
async def export_applications(
    round_code: ParamText,
    container: ContainerDep,
    _: AdminUser,
    status_: Annotated[ApplicationStatus | None, Query(alias="status")] = None,
    track: Annotated[str | None, NulFree, Query(max_length=64)] = None,
) -> StreamingResponse:
    """Every application with its full personal details, streamed page by page."""
    service = container.admissions
    await service.round(round_code)  # an unknown round is a 404, not an empty file
    where = ApplicationFilter(status=status_, track=track)
    return StreamingResponse(
        export_rows(service, round_code, where),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{round_code}-applications.csv"',
            "Cache-Control": "no-store",
        },
    )


@router.put(
    "/{round_code}/applications/{receipt_number}/status",
    responses={409: {"description": "invalid_transition: not a move staff may make"}},
)
async def set_status(
    round_code: ParamText,
    receipt_number: ParamText,
    body: StatusChange,
    container: ContainerDep,
    admin: AdminActor,
) -> ApplicationOut:
    """The applicant is mailed; setting the status it has already changes nothing."""
    view = await container.admissions.set_status(
        admin.user_pk, round_code, receipt_number, ApplicationStatus(body.status), actor=admin
    )
    return application_out(view)


@router.post("/{round_code}/waitlist-admissions")
async def admit_from_waitlist(
    round_code: ParamText, body: WaitlistAdmission, container: ContainerDep, admin: AdminActor
) -> list[ApplicationOut]:
    """Accept these waitlisted applications, all or none; each applicant is mailed."""
    views = await container.admissions.admit_from_waitlist(
        admin.user_pk, round_code, body.receipt_numbers, actor=admin
    )
    return [application_out(v) for v in views]
