"""The admins' pages: terms, CSV imports, waiting-room controls and the live dashboard.

Every page calls the same services as the JSON API (``/api/v1/admin/...``), with the
admin as the audit log's actor. A CSV import is checked whole before anything is written
(a per-row report when any row is bad), then written in batches of at most
``MAX_BULK_ITEMS``, each all or nothing, by a task in this process whose progress the
import's page polls (so that page must reach the same process: one worker, or sticky
sessions; without script the upload's answer is the result itself).
"""

from __future__ import annotations

import asyncio
import csv
import io
import math
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from pydantic import BaseModel, ValidationError
from starlette.datastructures import UploadFile
from starlette.responses import JSONResponse, RedirectResponse, Response, StreamingResponse

from rushgate.domain.admissions import ApplicationStatus
from rushgate.domain.errors import DomainError
from rushgate.domain.model import RegistrationWindow
from rushgate.http.client import client_ip
from rushgate.http.pages.render import Visitor, check_csrf, render, to_login, visitor
from rushgate.http.pages.routes import local_target
from rushgate.http.routes.admin import MAX_BULK_ITEMS
from rushgate.http.routes.admin_admissions import export_rows
from rushgate.http.schemas import SectionCreate, StudentCreate, TermCreate
from rushgate.observability.logging import request_id
from rushgate.services.admissions import StaffRow
from rushgate.services.ports.admissions import ApplicationFilter
from rushgate.services.ports.audit import Actor
from rushgate.services.ports.registry import NewSection, Term
from rushgate.services.qna import PAGE_MAX as QNA_PAGE_MAX
from rushgate.services.qna import QuestionView, Viewer
from rushgate.services.registry import StudentInput

router = APIRouter(include_in_schema=False)

_STATUS = {
    "not_found": 404,
    "conflict": 409,
    "invalid_request": 422,
    "validation_failed": 422,
    "csrf_failed": 403,
}
#: The largest CSV file an import accepts (about 20,000 rows of students).
MAX_CSV_BYTES = 4 * 1024 * 1024
#: Finished imports are kept this long for their page, then forgotten.
_JOB_KEEP_SECONDS = 3600.0
_RUNNING: set[asyncio.Task[None]] = set()

Kind = Literal["sections", "students"]

SECTION_COLUMNS = (
    "section_id",
    "course_code",
    "title",
    "credits",
    "capacity",
    "waitlist_capacity",
    "meetings",
)
STUDENT_COLUMNS = ("student_id", "name", "email", "password", "class_year", "max_credits")
_REQUIRED = {
    "sections": ("section_id", "course_code", "title", "credits", "capacity"),
    "students": STUDENT_COLUMNS,
}
_INTEGERS = {"credits", "capacity", "waitlist_capacity", "class_year", "max_credits"}
# "MON 09:00-10:15; WED 09:00-10:15"
_MEETING = re.compile(r"^\s*([A-Za-z]{3})\s+(\d{1,2}:\d{2})\s*-\s*(\d{1,2}:\d{2})\s*$")


# --- who may look -----------------------------------------------------------------------


def _gate(request: Request) -> Visitor | Response:
    """The admin looking at this page, or the answer for anyone else: the login page
    for no one, 403 for a student or applicant."""
    who = visitor(request)
    if who.principal is None:
        return to_login(request)
    if who.role != "admin":
        return render(request, "admin/forbidden.html", status_code=403, who=who)
    return who


def _actor(request: Request, who: Visitor) -> Actor:
    assert who.principal is not None
    return Actor(
        user_pk=who.principal.user_pk,
        username=who.principal.username,
        request_id=request_id.get(),
        client_ip=client_ip(request),
    )


def _refused_csrf(request: Request, who: Visitor) -> Response:
    return render(request, "admin/refused.html", status_code=403, who=who, error="csrf_failed")


# --- home and terms ---------------------------------------------------------------------


@router.get("/admin")
async def admin_home(request: Request) -> Response:
    who = _gate(request)
    if isinstance(who, Response):
        return who
    terms = await request.app.state.container.storage.reads(fresh=True).terms()
    return render(
        request,
        "admin/home.html",
        who=who,
        terms=terms,
        created=request.query_params.get("created"),
    )


def _term_form(form: Any | None = None) -> dict[str, Any]:
    if form is None:
        return {
            "code": "",
            "name": "",
            "opens_at": "",
            "closes_at": "",
            "waiting_room": True,
            "admit_per_second": "10",
            "max_active": "500",
            "admission_ttl_seconds": "600",
        }
    return {
        "code": str(form.get("code", "")).strip(),
        "name": str(form.get("name", "")).strip(),
        "opens_at": str(form.get("opens_at", "")),
        "closes_at": str(form.get("closes_at", "")),
        "waiting_room": form.get("waiting_room") == "on",
        "admit_per_second": str(form.get("admit_per_second", "")).strip(),
        "max_active": str(form.get("max_active", "")).strip(),
        "admission_ttl_seconds": str(form.get("admission_ttl_seconds", "")).strip(),
    }


def _instant(value: str) -> datetime | None:
    """A ``datetime-local`` field, in UTC (the form says so)."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _local(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M")


def _integer(value: str) -> int | str:
    try:
        return int(value)
    except ValueError:
        return value  # the schema reports it


def _field_errors(exc: ValidationError) -> dict[str, str]:
    errors: dict[str, str] = {}
    for error in exc.errors():
        location = [str(part) for part in error["loc"] if part not in ("waiting_room",)]
        name = location[0] if location else "form"
        errors.setdefault(name, str(error["msg"]))
    return errors


@router.get("/admin/terms/new")
async def new_term_page(request: Request) -> Response:
    who = _gate(request)
    if isinstance(who, Response):
        return who
    return render(request, "admin/term_new.html", who=who, values=_term_form(), errors={})


@router.post("/admin/terms")
async def create_term(request: Request) -> Response:
    who = _gate(request)
    if isinstance(who, Response):
        return who
    form = await request.form()
    if not check_csrf(request, form):
        return _refused_csrf(request, who)
    values = _term_form(form)
    errors: dict[str, str] = {}
    opens, closes = _instant(values["opens_at"]), _instant(values["closes_at"])
    if opens is None:
        errors["opens_at"] = "required"
    if closes is None:
        errors["closes_at"] = "required"
    body: TermCreate | None = None
    if not errors:
        try:
            body = TermCreate.model_validate(
                {
                    "code": values["code"],
                    "name": values["name"],
                    "opens_at": opens,
                    "closes_at": closes,
                    "waiting_room": {
                        "enabled": values["waiting_room"],
                        "admit_per_second": _integer(values["admit_per_second"]),
                        "max_active": _integer(values["max_active"]),
                        "admission_ttl_seconds": _integer(values["admission_ttl_seconds"]),
                    },
                }
            )
        except ValidationError as exc:
            errors = _field_errors(exc)
    if body is None:
        return render(
            request,
            "admin/term_new.html",
            status_code=422,
            who=who,
            values=values,
            errors=errors,
        )
    container = request.app.state.container
    try:
        await container.registry.create_term(
            Term(
                code=body.code,
                name=body.name,
                window=RegistrationWindow(body.opens_at, body.closes_at, {}),
                waiting_room_enabled=body.waiting_room.enabled,
                admit_per_second=body.waiting_room.admit_per_second,
                max_active=body.waiting_room.max_active,
                admission_ttl_seconds=body.waiting_room.admission_ttl_seconds,
            ),
            actor=_actor(request, who),
        )
    except DomainError as refusal:
        return render(
            request,
            "admin/term_new.html",
            status_code=_STATUS.get(refusal.code, 400),
            who=who,
            values=values,
            errors={"form": refusal.code},
        )
    container.terms.forget()
    return RedirectResponse(f"/admin?created={body.code}", status_code=303)


# --- CSV imports ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RowError:
    row: int  # the line's number as a spreadsheet shows it: the header is row 1
    column: str
    message: str


@dataclass
class ImportJob:
    """One import's progress, kept on this node for its page."""

    id: str
    kind: Kind
    owner: str
    term: str | None
    total: int
    written: int = 0
    batches: int = 0
    batches_done: int = 0
    state: Literal["running", "done", "failed"] = "running"
    errors: list[RowError] = field(default_factory=list)
    failure: str | None = None
    finished_at: float | None = None

    def progress(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "total": self.total,
            "written": self.written,
            "batches": self.batches,
            "batches_done": self.batches_done,
            "failure": self.failure,
        }


def _jobs(request: Request) -> dict[str, ImportJob]:
    jobs: dict[str, ImportJob] | None = getattr(request.app.state, "admin_imports", None)
    if jobs is None:
        jobs = {}
        request.app.state.admin_imports = jobs
    now = time.monotonic()
    for key in [
        k
        for k, job in jobs.items()
        if job.finished_at is not None and now - job.finished_at > _JOB_KEEP_SECONDS
    ]:
        del jobs[key]
    return jobs


def _decode(raw: bytes) -> str | None:
    """UTF-8, with or without the byte order mark Excel writes."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None


def _message(error: Any) -> str:
    return str(error["msg"]).removeprefix("Value error, ")


def parse_rows(
    kind: Kind, text: str
) -> tuple[list[SectionCreate] | list[StudentCreate], list[RowError]]:
    """Every row checked; the rows, or what is wrong with which (row, column)."""
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in (reader.fieldnames or [])]
    reader.fieldnames = header
    known = SECTION_COLUMNS if kind == "sections" else STUDENT_COLUMNS
    errors = [RowError(1, c, "missing column") for c in _REQUIRED[kind] if c not in header]
    errors += [RowError(1, c, "unknown column") for c in header if c not in known]
    if errors:
        return [], errors
    rows: list[Any] = []
    seen: dict[str, dict[str, int]] = {}
    unique = ("section_id",) if kind == "sections" else ("student_id", "email")
    for number, raw in enumerate(reader, start=2):
        if None in raw:
            errors.append(RowError(number, "-", "too many values"))
            continue
        cells = {k: (v or "").strip() for k, v in raw.items() if k is not None}
        if not any(cells.values()):
            continue  # a blank line
        item: dict[str, Any] = {}
        row_errors: list[RowError] = []
        for column, value in cells.items():
            if column == "meetings":
                meetings = []
                for part in filter(None, (p.strip() for p in value.split(";"))):
                    found = _MEETING.match(part)
                    if found is None:
                        row_errors.append(
                            RowError(number, column, f"not DAY HH:MM-HH:MM: {part[:40]}")
                        )
                        continue
                    day, start, end = found.groups()
                    meetings.append(
                        {"day": day.upper(), "start": start.zfill(5), "end": end.zfill(5)}
                    )
                item[column] = meetings
            elif column in _INTEGERS:
                if value == "" and column not in _REQUIRED[kind]:
                    continue
                try:
                    item[column] = int(value)
                except ValueError:
                    row_errors.append(RowError(number, column, "not a whole number"))
            else:
                item[column] = value
        if not row_errors:
            model: type[BaseModel] = SectionCreate if kind == "sections" else StudentCreate
            try:
                rows.append(model.model_validate(item))
            except ValidationError as exc:
                for error in exc.errors():
                    column = str(error["loc"][0]) if error["loc"] else "-"
                    row_errors.append(RowError(number, column, _message(error)))
        for column in unique:
            key = str(item.get(column, "")).lower()
            if key:
                first = seen.setdefault(column, {}).setdefault(key, number)
                if first != number:
                    row_errors.append(RowError(number, column, f"repeats row {first}"))
        errors += row_errors
    if not rows and not errors:
        errors.append(RowError(2, "-", "no rows"))
    return rows, errors


def _sections(rows: Sequence[Any]) -> list[NewSection]:
    return [row.to_new() for row in rows]


def _students(rows: Sequence[Any]) -> list[StudentInput]:
    return [row.to_new() for row in rows]


def _batch_errors(refusal: DomainError, first_row: int) -> list[RowError]:
    """A refused batch's problems, by row where the service says which item."""
    context = refusal.context
    found = []
    for error in context.get("errors", []) or []:
        where = str(error.get("field", error.get("loc", "")))
        index, _, column = where.partition(".")
        row = first_row + int(index) if index.isdigit() else first_row
        found.append(RowError(row, column or "-", str(error.get("message", error))))
    named = context.get("existing") or context.get("duplicates") or []
    if named and not found:
        listed = ", ".join(map(str, named[:20]))
        found.append(RowError(first_row, "-", f"{refusal.detail}: {listed}"))
    return found or [RowError(first_row, "-", refusal.detail)]


async def _run_import(
    job: ImportJob, write: Callable[[Sequence[Any]], Awaitable[None]], rows: Sequence[Any]
) -> None:
    try:
        for start in range(0, len(rows), MAX_BULK_ITEMS):
            batch = rows[start : start + MAX_BULK_ITEMS]
            try:
                await write(batch)
            except DomainError as refusal:
                job.state = "failed"
                job.failure = refusal.code
                job.errors = _batch_errors(refusal, first_row=start + 2)
                return
            job.written += len(batch)
            job.batches_done += 1
        job.state = "done"
    except Exception:  # the page must say it stopped, not spin forever
        job.state, job.failure = "failed", "internal_error"
        raise
    finally:
        job.finished_at = time.monotonic()


@router.get("/admin/import/{kind}")
async def import_page(kind: str, request: Request) -> Response:
    who = _gate(request)
    if isinstance(who, Response):
        return who
    if kind not in ("sections", "students"):
        return render(request, "not_found.html", status_code=404, who=who)
    terms = await request.app.state.container.storage.reads(fresh=True).terms()
    return render(
        request,
        "admin/import.html",
        who=who,
        kind=kind,
        terms=terms,
        chosen=request.query_params.get("term", ""),
        columns=SECTION_COLUMNS if kind == "sections" else STUDENT_COLUMNS,
        errors=[],
        problem=None,
    )


@router.post("/admin/import/{kind}")
async def import_csv(kind: str, request: Request) -> Response:
    who = _gate(request)
    if isinstance(who, Response):
        return who
    if kind not in ("sections", "students"):
        return render(request, "not_found.html", status_code=404, who=who)
    form = await request.form(max_part_size=MAX_CSV_BYTES)
    try:
        allowed = check_csrf(request, form)
        term = str(form.get("term", "")).strip() or None
        progressive = form.get("progressive") == "1"
        upload = form.get("file")
        raw = await upload.read(MAX_CSV_BYTES + 1) if isinstance(upload, UploadFile) else b""
    finally:
        await form.close()  # the upload's spooled file
    if not allowed:
        return _refused_csrf(request, who)
    container = request.app.state.container
    terms = await container.storage.reads(fresh=True).terms()
    context: dict[str, Any] = {
        "kind": kind,
        "terms": terms,
        "chosen": term or "",
        "columns": SECTION_COLUMNS if kind == "sections" else STUDENT_COLUMNS,
    }
    problem = None
    if kind == "sections" and term not in {t.code for t in terms}:
        problem = "no_term"
    elif not raw:
        problem = "no_file"
    elif len(raw) > MAX_CSV_BYTES:
        problem = "too_large"
    text = _decode(raw) if problem is None else None
    if problem is None and text is None:
        problem = "not_utf8"
    if problem is not None or text is None:
        return render(
            request,
            "admin/import.html",
            status_code=422,
            who=who,
            errors=[],
            problem=problem,
            **context,
        )
    rows, errors = parse_rows(kind, text)  # type: ignore[arg-type]
    if errors:
        return render(
            request,
            "admin/import.html",
            status_code=422,
            who=who,
            errors=errors[:500],
            error_count=len(errors),
            problem="rows",
            **context,
        )
    actor = _actor(request, who)
    write: Callable[[Sequence[Any]], Awaitable[None]]
    if kind == "sections":
        assert term is not None

        async def write(batch: Sequence[Any]) -> None:
            await container.registry.create_sections(term, _sections(batch), actor=actor)
            container.catalog_pages.forget(term)

    else:

        async def write(batch: Sequence[Any]) -> None:
            await container.registry.create_students(_students(batch), actor=actor)

    assert who.principal is not None
    job = ImportJob(
        id=secrets.token_urlsafe(12),
        kind=kind,  # type: ignore[arg-type]
        owner=who.principal.username,
        term=term,
        total=len(rows),
        batches=math.ceil(len(rows) / MAX_BULK_ITEMS),
    )
    _jobs(request)[job.id] = job
    task = asyncio.create_task(_run_import(job, write, rows))
    _RUNNING.add(task)  # a task nothing refers to may be collected mid-run
    task.add_done_callback(_RUNNING.discard)
    if not progressive:
        # Without script, the answer is the result: wait for it and show it here (the
        # job lives in this process; a redirect could reach another worker). Sending
        # the form again writes nothing: every id of it then exists.
        await asyncio.shield(task)
        return render(
            request,
            "admin/import_job.html",
            status_code=200 if job.state == "done" else 409,
            who=who,
            job=job,
        )
    return RedirectResponse(f"/admin/imports/{job.id}", status_code=303)


def _job_of(request: Request, who: Visitor, job_id: str) -> ImportJob | None:
    job = _jobs(request).get(job_id)
    if job is None or who.principal is None or job.owner != who.principal.username:
        return None
    return job


@router.get("/admin/imports/{job_id}")
async def import_result(job_id: str, request: Request) -> Response:
    who = _gate(request)
    if isinstance(who, Response):
        return who
    job = _job_of(request, who, job_id)
    if job is None:
        return render(request, "not_found.html", status_code=404, who=who)
    return render(request, "admin/import_job.html", who=who, job=job)


@router.get("/admin/imports/{job_id}/progress")
async def import_progress(job_id: str, request: Request) -> Response:
    who = _gate(request)
    if isinstance(who, Response):
        return JSONResponse({"error": "forbidden"}, status_code=403)
    job = _job_of(request, who, job_id)
    if job is None:
        return JSONResponse({"error": "not_found"}, status_code=404)
    return JSONResponse(job.progress(), headers={"Cache-Control": "no-store"})


# --- a term's window and waiting room ----------------------------------------------------


def _settings_values(term: Term, form: Any | None = None) -> dict[str, str]:
    if form is None:
        return {
            "opens_at": _local(term.window.opens_at),
            "closes_at": _local(term.window.closes_at),
            "admit_per_second": str(term.admit_per_second),
            "max_active": str(term.max_active),
        }
    return {
        name: str(form.get(name, "")).strip()
        for name in ("opens_at", "closes_at", "admit_per_second", "max_active")
    }


async def _term_or_404(request: Request, who: Visitor, code: str) -> Term | Response:
    try:
        term: Term = await request.app.state.container.storage.reads(fresh=True).term(code)
    except DomainError:
        return render(request, "not_found.html", status_code=404, who=who)
    return term


@router.get("/admin/terms/{code}")
async def term_settings_page(code: str, request: Request) -> Response:
    who = _gate(request)
    if isinstance(who, Response):
        return who
    term = await _term_or_404(request, who, code)
    if isinstance(term, Response):
        return term
    return render(
        request,
        "admin/term_settings.html",
        who=who,
        term=term,
        values=_settings_values(term),
        errors={},
        saved=request.query_params.get("saved"),
    )


@router.post("/admin/terms/{code}")
async def update_term_settings(code: str, request: Request) -> Response:
    who = _gate(request)
    if isinstance(who, Response):
        return who
    form = await request.form()
    if not check_csrf(request, form):
        return _refused_csrf(request, who)
    term = await _term_or_404(request, who, code)
    if isinstance(term, Response):
        return term
    values = _settings_values(term, form)
    errors: dict[str, str] = {}
    opens, closes = _instant(values["opens_at"]), _instant(values["closes_at"])
    numbers: dict[str, int] = {}
    for name in ("admit_per_second", "max_active"):
        number = _integer(values[name])
        if not isinstance(number, int) or number < 1:
            errors[name] = "at least 1"
        else:
            numbers[name] = number
    if opens is None:
        errors["opens_at"] = "required"
    if closes is None:
        errors["closes_at"] = "required"
    status_code = 422
    if not errors and opens is not None and closes is not None:
        window = RegistrationWindow(opens, closes, term.window.class_year_opens_at)
        container = request.app.state.container
        try:
            await container.registry.update_term(
                code,
                window=window if window != term.window else None,
                admit_per_second=numbers["admit_per_second"],
                max_active=numbers["max_active"],
                actor=_actor(request, who),
            )
        except DomainError as refusal:
            errors["form"] = refusal.code
            status_code = _STATUS.get(refusal.code, 400)
        else:
            container.terms.forget()
            return RedirectResponse(f"/admin/terms/{code}?saved=settings", status_code=303)
    return render(
        request,
        "admin/term_settings.html",
        status_code=status_code,
        who=who,
        term=term,
        values=values,
        errors=errors,
        saved=None,
    )


async def _set_paused(code: str, request: Request, paused: bool) -> Response:
    who = _gate(request)
    if isinstance(who, Response):
        return who
    form = await request.form()
    if not check_csrf(request, form):
        return _refused_csrf(request, who)
    container = request.app.state.container
    try:
        await container.registry.set_admission_paused(code, paused, actor=_actor(request, who))
    except DomainError as refusal:
        return render(
            request,
            "admin/refused.html",
            status_code=_STATUS.get(refusal.code, 400),
            who=who,
            error=refusal.code,
        )
    container.terms.forget()
    back = local_target(str(form.get("next", "")) or None, f"/admin/terms/{code}")
    return RedirectResponse(back, status_code=303)


@router.post("/admin/terms/{code}/pause")
async def pause_admission(code: str, request: Request) -> Response:
    return await _set_paused(code, request, True)


@router.post("/admin/terms/{code}/resume")
async def resume_admission(code: str, request: Request) -> Response:
    return await _set_paused(code, request, False)


# --- the live rush dashboard -------------------------------------------------------------

#: Rates are measured over about this many seconds of samples.
_RATE_WINDOW_SECONDS = 5.0
_HOT_SECTIONS = 5
_HTTP_REQUESTS = "rushgate_http_requests"
_HTTP_DURATION = "rushgate_http_request_duration_seconds"


@dataclass(frozen=True, slots=True)
class Sample:
    """Cumulative counts at one moment: admissions, requests, errors, latency buckets."""

    at: float
    admitted: int
    requests: float
    errors: float
    buckets: tuple[tuple[float, float], ...]  # (upper bound, cumulative count)


@dataclass
class LiveSampler:
    """Recent samples of one term, shared by every admin polling it on this node: each
    poll adds one, and a rate is the change since the sample ``_RATE_WINDOW_SECONDS``
    ago (so two admins watching do not halve each other's window)."""

    samples: list[Sample] = field(default_factory=list)

    def add(self, sample: Sample) -> Sample:
        """The sample to measure against: the oldest within the window."""
        self.samples = [s for s in self.samples if sample.at - s.at <= _RATE_WINDOW_SECONDS * 2]
        self.samples.append(sample)
        recent = [s for s in self.samples if sample.at - s.at <= _RATE_WINDOW_SECONDS]
        return recent[0]


def request_counts(registry: Any) -> tuple[float, float, tuple[tuple[float, float], ...]]:
    """This node's requests, server errors (5xx) and latency buckets so far, summed over
    every route but the admins' pages (their own polling would drown the rush)."""
    requests = errors = 0.0
    buckets: dict[float, float] = {}
    for family in registry.collect():
        if family.name not in (_HTTP_REQUESTS, _HTTP_DURATION):
            continue
        for sample in family.samples:
            if str(sample.labels.get("route", "")).startswith("/admin"):
                continue
            if sample.name == f"{_HTTP_REQUESTS}_total":
                requests += sample.value
                if str(sample.labels.get("status", "")).startswith("5"):
                    errors += sample.value
            elif sample.name == f"{_HTTP_DURATION}_bucket":
                bound = float(sample.labels["le"])
                buckets[bound] = buckets.get(bound, 0.0) + sample.value
    return requests, errors, tuple(sorted(buckets.items()))


def p99_of(
    now: tuple[tuple[float, float], ...], then: tuple[tuple[float, float], ...]
) -> float | None:
    """The 99th percentile of the requests between two samples, as the upper bound of
    its histogram bucket (seconds); None without requests."""
    before = dict(then)
    counts = [(bound, total - before.get(bound, 0.0)) for bound, total in now]
    if not counts or counts[-1][1] <= 0:
        return None
    target = counts[-1][1] * 0.99
    for bound, cumulative in counts:
        if cumulative >= target:
            return bound
    return None


async def live_numbers(request: Request, term: Term) -> dict[str, Any]:
    container = request.app.state.container
    room = await container.waiting_room.room(term)
    requests, errors, buckets = request_counts(request.app.state.metrics_registry)
    sample = Sample(time.monotonic(), room.serving, requests, errors, buckets)
    samplers: dict[str, LiveSampler] = request.app.state.__dict__.setdefault("admin_live", {})
    base = samplers.setdefault(term.code, LiveSampler()).add(sample)
    elapsed = sample.at - base.at
    done = sample.requests - base.requests
    sections = await container.storage.reads().catalog(term.code)
    hottest = sorted(
        sections, key=lambda s: s.enrolled / s.capacity if s.capacity else 1.0, reverse=True
    )[:_HOT_SECTIONS]
    return {
        "term": term.code,
        "phase": room.phase.value,
        "paused": room.paused or term.admission_paused,
        "waiting": room.waiting,
        "active": room.active,
        "admitted": room.serving,
        "admits_per_second": (
            round((sample.admitted - base.admitted) / elapsed, 2) if elapsed > 0 else 0.0
        ),
        "requests_per_second": round(done / elapsed, 2) if elapsed > 0 else 0.0,
        "error_rate": round((sample.errors - base.errors) / done, 4) if done > 0 else 0.0,
        "p99_seconds": p99_of(sample.buckets, base.buckets),
        "seats_left": sum(s.seats_left for s in sections),
        "hottest": [
            {
                "section_id": s.section_id,
                "title": s.title,
                "capacity": s.capacity,
                "enrolled": s.enrolled,
                "seats_left": s.seats_left,
            }
            for s in hottest
        ],
        "scope": "node",
    }


@router.get("/admin/terms/{code}/live")
async def live_page(code: str, request: Request) -> Response:
    who = _gate(request)
    if isinstance(who, Response):
        return who
    term = await _term_or_404(request, who, code)
    if isinstance(term, Response):
        return term
    if not term.waiting_room_enabled:
        return render(request, "not_found.html", status_code=404, who=who)
    numbers = await live_numbers(request, term)
    return render(request, "admin/live.html", who=who, term=term, live=numbers)


@router.get("/admin/terms/{code}/live.json")
async def live_json(code: str, request: Request) -> Response:
    who = _gate(request)
    if isinstance(who, Response):
        return JSONResponse({"error": "forbidden"}, status_code=403)
    try:
        term = await request.app.state.container.storage.reads().term(code)
    except DomainError:
        return JSONResponse({"error": "not_found"}, status_code=404)
    if not term.waiting_room_enabled:
        return JSONResponse({"error": "not_found"}, status_code=404)
    return JSONResponse(await live_numbers(request, term), headers={"Cache-Control": "no-store"})


# --- admission applications and the Q&A board ---------------------------------------------

_APPLICATIONS_PAGE = 100
#: Unanswered questions are looked for in at most this many pages of the board.
_QUESTION_PAGES = 10


def _application_filter(request: Request) -> tuple[str, ApplicationStatus | None, str | None]:
    round_code = request.query_params.get("round", "").strip()[:64]
    raw = request.query_params.get("status", "")
    chosen = ApplicationStatus(raw) if raw in {s.value for s in ApplicationStatus} else None
    after = request.query_params.get("after", "")
    return round_code, chosen, after if after.isdigit() and len(after) < 19 else None


@router.get("/admin/applications")
async def applications_page(request: Request) -> Response:
    who = _gate(request)
    if isinstance(who, Response):
        return who
    round_code, chosen, after = _application_filter(request)
    rows: list[StaffRow] = []
    problem = None
    if round_code:
        try:
            rows = await request.app.state.container.admissions.list_applications(
                round_code,
                ApplicationFilter(
                    status=chosen,
                    after_pk=None if after is None else int(after),
                    limit=_APPLICATIONS_PAGE,
                ),
            )
        except DomainError as refusal:
            problem = refusal.code
    query = urlencode({k: v for k, v in (("round", round_code), ("status", chosen or "")) if v})
    more = None
    if len(rows) == _APPLICATIONS_PAGE:
        more = f"/admin/applications?{query}&after={rows[-1].pk}"
    return render(
        request,
        "admin/applications.html",
        status_code=404 if problem == "not_found" else 200,
        who=who,
        round_code=round_code,
        chosen=chosen.value if chosen else "",
        statuses=[s.value for s in ApplicationStatus],
        rows=rows,
        problem=problem,
        export=f"/admin/applications.csv?{query}" if round_code and problem is None else None,
        more=more,
    )


@router.get("/admin/applications.csv")
async def applications_csv(request: Request) -> Response:
    who = _gate(request)
    if isinstance(who, Response):
        return who
    round_code, chosen, _ = _application_filter(request)
    service = request.app.state.container.admissions
    try:
        await service.round(round_code)  # an unknown round is a 404, not an empty file
    except DomainError:
        return render(request, "not_found.html", status_code=404, who=who)
    return StreamingResponse(
        export_rows(service, round_code, ApplicationFilter(status=chosen)),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{round_code}-applications.csv"',
            "Cache-Control": "no-store",
        },
    )


async def _unanswered(request: Request, who: Visitor, round_code: str) -> list[QuestionView]:
    assert who.principal is not None
    viewer = Viewer(who.principal.user_pk, staff=True)
    found: list[QuestionView] = []
    cursor = None
    for _ in range(_QUESTION_PAGES):
        page = await request.app.state.container.qna.questions(
            viewer, round_code, cursor=cursor, limit=QNA_PAGE_MAX
        )
        found += [q for q in page.items if q.answer is None]
        cursor = page.next_cursor
        if cursor is None:
            break
    return sorted(found, key=lambda q: q.created_at)  # the longest waiting first


async def _questions(
    request: Request,
    who: Visitor,
    round_code: str,
    *,
    status_code: int = 200,
    error: str | None = None,
    draft: tuple[int, str] | None = None,
) -> Response:
    questions: list[QuestionView] = []
    problem = None
    if round_code:
        try:
            questions = await _unanswered(request, who, round_code)
        except DomainError as refusal:
            problem = refusal.code
            status_code = 404 if refusal.code == "not_found" else status_code
    return render(
        request,
        "admin/questions.html",
        status_code=status_code,
        who=who,
        round_code=round_code,
        questions=questions,
        problem=problem,
        error=error,
        draft=draft,
        answered=request.query_params.get("answered"),
    )


@router.get("/admin/questions")
async def questions_page(request: Request) -> Response:
    who = _gate(request)
    if isinstance(who, Response):
        return who
    return await _questions(request, who, request.query_params.get("round", "").strip()[:64])


@router.post("/admin/questions/{round_code}/{question_id}/answer")
async def answer_question(round_code: str, question_id: int, request: Request) -> Response:
    who = _gate(request)
    if isinstance(who, Response):
        return who
    form = await request.form()
    if not check_csrf(request, form):
        return _refused_csrf(request, who)
    body = str(form.get("body", ""))
    assert who.principal is not None
    try:
        await request.app.state.container.qna.answer(
            who.principal.user_pk, round_code, question_id, body, actor=_actor(request, who)
        )
    except DomainError as refusal:
        return await _questions(
            request,
            who,
            round_code,
            status_code=_STATUS.get(refusal.code, 422),
            error=refusal.code,
            draft=(question_id, body),
        )
    target = f"/admin/questions?{urlencode({'round': round_code, 'answered': question_id})}"
    return RedirectResponse(target, status_code=303)
