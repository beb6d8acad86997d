"""The students' pages: the terms, a term's catalog with a pre-registration cart, enrolling
the whole cart at opening, the waiting room, and the timetable with drops.

The cart lives in a signed cookie (``rg_cart``): it needs no storage, works without
JavaScript, and a student can only ever see their own (the cookie names the student it
belongs to and is ignored for anyone else). It does not follow the student to another
device. Enrolling goes through ``container.enrollment`` exactly as the JSON API does,
with the waiting room's admission token and an idempotency key per section, so sending
the same "enroll all" form twice never takes a second seat.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, time
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request
from starlette.datastructures import FormData
from starlette.responses import RedirectResponse, Response

from rushgate.composition import Container
from rushgate.domain.errors import DomainError, NotFound, NotInQueue
from rushgate.domain.model import Day
from rushgate.http.deps import site_cookies
from rushgate.http.errors import status_for
from rushgate.http.pages.render import Visitor, check_csrf, render, to_login, visitor
from rushgate.http.pages.routes import local_target
from rushgate.http.routes.challenge import require_challenge
from rushgate.observability.metrics import count_enroll_outcome
from rushgate.services.ports.enrollment import ScheduleEntry, SectionView
from rushgate.services.ports.registry import Term
from rushgate.services.waiting_room import Standing

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50
CART_LIMIT = 12  # sections per term: more than anyone can take, small enough for a cookie
CART_TERMS = 4
CART_COOKIE = "rg_cart"
RESULTS_COOKIE = "rg_enroll_results"
_CART_SECONDS = 30 * 24 * 3600
_RESULTS_SECONDS = 600
_MAX_ID = 64


@dataclass(frozen=True, slots=True)
class _Student:
    who: Visitor
    node: Container
    pk: int


def _signed_in(request: Request) -> _Student | Response:
    who = visitor(request)
    principal = who.principal
    if principal is None:
        return to_login(request)
    if principal.role != "student" or principal.student_pk is None:
        return render(request, "student/message.html", status_code=403, who=who, code="forbidden")
    return _Student(who, request.app.state.container, principal.student_pk)


def _refused(request: Request, me: _Student, refusal: DomainError) -> Response:
    return render(
        request,
        "student/message.html",
        status_code=status_for(refusal),
        who=me.who,
        code=refusal.code,
    )


def _csrf_refused(request: Request, me: _Student) -> Response:
    return render(request, "student/message.html", status_code=403, who=me.who, code="csrf_failed")


# --- signed cookies -------------------------------------------------------------------


def _key(request: Request) -> bytes:
    secret = request.app.state.container.settings.effective_secret_key()
    return hmac.new(secret.encode(), b"rushgate student cookies", "sha256").digest()


def _seal(request: Request, value: Any) -> str:
    body = base64.urlsafe_b64encode(json.dumps(value, separators=(",", ":")).encode()).decode()
    mac = hmac.new(_key(request), body.encode(), hashlib.sha256).hexdigest()[:32]
    return f"{body}.{mac}"


def _unseal(request: Request, raw: str | None) -> Any:
    if not raw or "." not in raw:
        return None
    body, _, mac = raw.rpartition(".")
    expected = hmac.new(_key(request), body.encode(), hashlib.sha256).hexdigest()[:32]
    if not hmac.compare_digest(mac.encode(), expected.encode()):
        return None
    try:
        return json.loads(base64.urlsafe_b64decode(body.encode()))
    except ValueError:
        return None


def _set_cookie(request: Request, response: Response, name: str, value: str, age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=age,
        path="/terms",
        secure=site_cookies(request).secure,
        httponly=True,
        samesite="lax",
    )


def _carts(request: Request, me: _Student) -> dict[str, list[str]]:
    """This student's carts, by term; another student's cookie counts as empty."""
    found = _unseal(request, request.cookies.get(CART_COOKIE))
    if not isinstance(found, dict) or found.get("student") != me.pk:
        return {}
    carts = found.get("carts")
    if not isinstance(carts, dict):
        return {}
    return {
        str(term): [str(s) for s in ids][:CART_LIMIT]
        for term, ids in carts.items()
        if isinstance(ids, list)
    }


def _save_carts(
    request: Request, response: Response, me: _Student, carts: dict[str, list[str]]
) -> None:
    # The terms changed last, a few at most: a cookie holds about 4 kB.
    kept = dict([(term, ids) for term, ids in carts.items() if ids][-CART_TERMS:])
    _set_cookie(
        request,
        response,
        CART_COOKIE,
        _seal(request, {"student": me.pk, "carts": kept}),
        _CART_SECONDS,
    )


# --- the terms and the catalog --------------------------------------------------------


def _phase(term: Term, now: datetime) -> str:
    """Open from the first class year's opening: whether this student's own year has
    opened yet the enrollment itself says (``window_closed``)."""
    window = term.window
    if now < min([window.opens_at, *window.class_year_opens_at.values()]):
        return "upcoming"
    if now < term.window.closes_at:
        return "open"
    return "closed"


@router.get("/terms")
async def terms_page(request: Request) -> Response:
    me = _signed_in(request)
    if isinstance(me, Response):
        return me
    now = me.node.clock.now()
    terms = [
        (term, _phase(term, now))
        for term in await me.node.storage.reads().terms()
        if _phase(term, now) != "closed"
    ]
    return render(request, "student/terms.html", who=me.who, terms=terms)


async def _term(me: _Student, code: str) -> Term:
    return await me.node.storage.reads().term(code)


def _matches(section: SectionView, query: str) -> bool:
    return section.course_code.upper().startswith(query.upper()) or (
        query.casefold() in section.title.casefold()
    )


@router.get("/terms/{term}")
async def catalog_page(term: str, request: Request) -> Response:
    me = _signed_in(request)
    if isinstance(me, Response):
        return me
    params = request.query_params
    query = params.get("q", "").strip()[:_MAX_ID]
    open_only = params.get("open") == "1"
    after = params.get("after") or None
    try:
        found = await _term(me, term)
        reads = me.node.storage.reads()
        if query or open_only:
            # A title search or a filter reads the whole term; terms hold hundreds of
            # sections, not millions, and the page shows 50 of them.
            every = await reads.catalog(term)
            matching = [
                s
                for s in every
                if (not query or _matches(s, query)) and (not open_only or s.seats_left > 0)
            ]
            # Continue after ``after`` in the storage's own order (its collation, not
            # Python's string order).
            ids = [s.section_id for s in matching]
            if after is None:
                start = 0
            elif after in ids:
                start = ids.index(after) + 1
            else:  # it no longer matches (its seats ran out): the first one past it
                start = next((i for i, x in enumerate(ids) if x > after), len(ids))
            chosen = matching[start:]
        else:
            chosen = await reads.catalog(term, after=after, limit=PAGE_SIZE + 1)
    except DomainError as refusal:
        return _refused(request, me, refusal)
    sections = chosen[:PAGE_SIZE]
    following = None
    if len(chosen) > PAGE_SIZE:
        kept = {"q": query, "open": "1" if open_only else ""}
        following = urlencode(
            {**{k: v for k, v in kept.items() if v}, "after": sections[-1].section_id}
        )
    cart_ids = _carts(request, me).get(term, [])
    cart = await _cart_sections(me, term, cart_ids)
    admission = await _admission(me, found)
    return render(
        request,
        "student/catalog.html",
        who=me.who,
        term=found,
        phase=_phase(found, me.node.clock.now()),
        sections=sections,
        query=query,
        open_only=open_only,
        following=following,
        first_page=after is None,
        cart=cart,
        cart_ids=set(cart_ids),
        batch=secrets.token_urlsafe(12),
        admission=admission,
        meeting_text=_meeting_text,
        back=request.url.path + (f"?{request.url.query}" if request.url.query else ""),
    )


async def _cart_sections(me: _Student, term: str, ids: list[str]) -> list[SectionView]:
    if not ids:
        return []
    by_id = {s.section_id: s for s in await me.node.storage.reads().catalog(term)}
    return [by_id[i] for i in ids if i in by_id]


async def _admission(me: _Student, term: Term) -> Standing | None:
    """The student's place in the term's waiting room, if it has one and they joined."""
    if not term.waiting_room_enabled:
        return None
    try:
        return await me.node.waiting_room.status(student_pk=me.pk, term_code=term.code)
    except DomainError:
        return None


def _meeting_text(section: SectionView, t: Any) -> str:
    return ", ".join(
        f"{t('student.day.' + m.day.value)} {m.start:%H:%M}–{m.end:%H:%M}" for m in section.meetings
    )


def _back(form: FormData, default: str) -> str:
    """Back to a student page the form came from, never elsewhere."""
    target = local_target(str(form.get("next", "")), default)
    return target if target.startswith("/terms") else default


@router.post("/terms/{term}/cart")
async def change_cart(term: str, request: Request) -> Response:
    me = _signed_in(request)
    if isinstance(me, Response):
        return me
    form = await request.form()
    if not check_csrf(request, form):
        return _csrf_refused(request, me)
    section_id = str(form.get("section_id", ""))[:_MAX_ID]
    action = str(form.get("action", "add"))
    carts = _carts(request, me)
    ids = carts[term] = carts.pop(term, [])  # now the term changed last
    if action == "remove":
        carts[term] = [i for i in ids if i != section_id]
    else:
        try:
            await _term(me, term)
            known = {s.section_id for s in await me.node.storage.reads().catalog(term)}
        except DomainError as refusal:
            return _refused(request, me, refusal)
        if section_id not in known:
            return _refused(request, me, NotFound("no such section", section_id=section_id))
        if section_id not in ids:
            if len(ids) >= CART_LIMIT:
                return render(
                    request, "student/message.html", status_code=409, who=me.who, code="cart_full"
                )
            ids.append(section_id)
    response = RedirectResponse(_back(form, f"/terms/{quote(term)}"), status_code=303)
    _save_carts(request, response, me, carts)
    return response


# --- enrolling ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outcome:
    section_id: str
    outcome: str  # enrolled, waitlisted, or a refusal's code
    waitlist_position: int | None = None


async def _enroll_one(
    me: _Student, term: str, section_id: str, key: str, token: str | None
) -> Outcome:
    try:
        result = await me.node.enrollment.enroll(
            student_pk=me.pk,
            term_code=term,
            section_id=section_id,
            idempotency_key=key,
            admission_token=token,
        )
    except DomainError as refusal:
        count_enroll_outcome(refusal.code)
        return Outcome(section_id, refusal.code)
    count_enroll_outcome("replayed" if result.replayed else result.status.value)
    return Outcome(section_id, result.status.value, result.waitlist_position)


async def _admission_token(me: _Student, term: str, sent: str) -> str | None:
    if sent:
        return sent
    try:
        standing = await me.node.waiting_room.status(student_pk=me.pk, term_code=term)
    except DomainError:
        return None  # no room, or never joined: the enrollment says not_admitted if it matters
    return standing.admission_token


def _batch(form: FormData) -> str:
    """The form's idempotency key: fixed when the page was drawn, so sending the same form
    again (a double click, a retry after a timeout) replays, never enrolls twice."""
    raw = str(form.get("batch", ""))
    if 8 <= len(raw) <= 64 and raw.isprintable():
        return raw
    return secrets.token_urlsafe(12)


async def _enroll_and_report(
    request: Request, me: _Student, term: str, form: FormData, section_ids: list[str]
) -> Response:
    token = await _admission_token(me, term, str(form.get("admission_token", ""))[:512])
    batch = _batch(form)
    outcomes = []
    for section_id in section_ids:  # one at a time, as a student clicking would
        outcomes.append(await _enroll_one(me, term, section_id, f"{batch}:{section_id}", token))
    me.node.catalog_pages.forget(term)  # this node's catalog shows the seats at once
    carts = _carts(request, me)
    placed = {o.section_id for o in outcomes if o.outcome in ("enrolled", "waitlisted")}
    carts[term] = [i for i in carts.get(term, []) if i not in placed]
    response = RedirectResponse(f"/terms/{quote(term)}/results", status_code=303)
    _save_carts(request, response, me, carts)
    record = {
        "student": me.pk,
        "term": term,
        "outcomes": [[o.section_id, o.outcome, o.waitlist_position] for o in outcomes],
    }
    _set_cookie(request, response, RESULTS_COOKIE, _seal(request, record), _RESULTS_SECONDS)
    return response


@router.post("/terms/{term}/enroll-all")
async def enroll_all(term: str, request: Request) -> Response:
    me = _signed_in(request)
    if isinstance(me, Response):
        return me
    form = await request.form()
    if not check_csrf(request, form):
        return _csrf_refused(request, me)
    ids = _carts(request, me).get(term, [])
    return await _enroll_and_report(request, me, term, form, ids)


@router.post("/terms/{term}/enroll")
async def enroll_one(term: str, request: Request) -> Response:
    """One section: another section of a full course, offered on the results page."""
    me = _signed_in(request)
    if isinstance(me, Response):
        return me
    form = await request.form()
    if not check_csrf(request, form):
        return _csrf_refused(request, me)
    section_id = str(form.get("section_id", ""))[:_MAX_ID]
    return await _enroll_and_report(request, me, term, form, [section_id])


@router.get("/terms/{term}/results")
async def results_page(term: str, request: Request) -> Response:
    me = _signed_in(request)
    if isinstance(me, Response):
        return me
    record = _unseal(request, request.cookies.get(RESULTS_COOKIE))
    outcomes: list[Outcome] = []
    if isinstance(record, dict) and record.get("student") == me.pk and record.get("term") == term:
        outcomes = [Outcome(str(s), str(o), p) for s, o, p in record.get("outcomes", [])]
    try:
        found = await _term(me, term)
        sections = {s.section_id: s for s in await me.node.storage.reads().catalog(term)}
    except DomainError as refusal:
        return _refused(request, me, refusal)
    # For a full section: the other sections of its course that still have seats.
    alternatives = {
        o.section_id: [
            s
            for s in sections.values()
            if o.section_id in sections
            and s.course_code == sections[o.section_id].course_code
            and s.section_id != o.section_id
            and s.seats_left > 0
        ]
        for o in outcomes
        if o.outcome in ("section_full", "waitlist_full")
    }
    return render(
        request,
        "student/results.html",
        who=me.who,
        term=found,
        outcomes=outcomes,
        sections=sections,
        alternatives=alternatives,
        batch=secrets.token_urlsafe(12),
    )


# --- the waiting room -----------------------------------------------------------------


@router.get("/terms/{term}/queue")
async def queue_page(term: str, request: Request) -> Response:
    me = _signed_in(request)
    if isinstance(me, Response):
        return me
    try:
        found = await _term(me, term)
    except DomainError as refusal:
        return _refused(request, me, refusal)
    standing = None
    if found.waiting_room_enabled:
        try:
            standing = await me.node.waiting_room.status(student_pk=me.pk, term_code=term)
        except NotInQueue:
            standing = None
        except DomainError as refusal:
            return _refused(request, me, refusal)
    return render(
        request,
        "student/queue.html",
        who=me.who,
        term=found,
        standing=standing,
        served=_served(standing),
    )


def _served(standing: Standing | None) -> int:
    """How far along the bar is: tickets served before this one, out of ``ticket``."""
    if standing is None:
        return 0
    place = standing.place
    if place.state.value == "admitted":
        return place.ticket
    if place.ahead is None:
        return 0  # the pre-queue: no order yet
    return max(place.ticket - place.ahead, 0)


@router.post("/terms/{term}/queue")
async def join_queue(term: str, request: Request) -> Response:
    me = _signed_in(request)
    if isinstance(me, Response):
        return me
    form = await request.form()
    if not check_csrf(request, form):
        return _csrf_refused(request, me)
    try:
        if me.node.challenges.on_join:
            await require_challenge(me.node.challenges, "join", request)
        await me.node.waiting_room.join(student_pk=me.pk, term_code=term)
    except DomainError as refusal:
        return _refused(request, me, refusal)
    return RedirectResponse(f"/terms/{quote(term)}/queue", status_code=303)


# --- the timetable and drops ----------------------------------------------------------

_WEEK = (Day.MON, Day.TUE, Day.WED, Day.THU, Day.FRI, Day.SAT, Day.SUN)


@dataclass(frozen=True, slots=True)
class Grid:
    days: tuple[Day, ...]
    hours: list[int]
    cells: dict[tuple[Day, int], list[ScheduleEntry]]


def _grid(entries: list[ScheduleEntry]) -> Grid:
    """Days that have a meeting (at least Monday to Friday) by the hours they cover."""
    meetings = [(e, m) for e in entries for m in e.section.meetings]
    used = {m.day for _, m in meetings}
    days = tuple(d for d in _WEEK if d in used or d not in (Day.SAT, Day.SUN))
    first = min((m.start.hour for _, m in meetings), default=9)
    last = max((m.end.hour - (m.end.minute == 0) for _, m in meetings), default=17)
    hours = list(range(first, max(last, first) + 1))
    cells: dict[tuple[Day, int], list[ScheduleEntry]] = {}
    for entry, meeting in meetings:
        for hour in hours:
            starts_before_the_hour_ends = hour == 23 or meeting.start < time(hour + 1)
            if starts_before_the_hour_ends and meeting.end > time(hour):
                cells.setdefault((meeting.day, hour), []).append(entry)
    return Grid(days, hours, cells)


async def _schedule(me: _Student, term: str) -> tuple[Term, list[ScheduleEntry]]:
    found = await _term(me, term)
    return found, await me.node.enrollment.schedule(student_pk=me.pk, term_code=term)


@router.get("/terms/{term}/timetable")
async def timetable_page(term: str, request: Request) -> Response:
    me = _signed_in(request)
    if isinstance(me, Response):
        return me
    try:
        found, entries = await _schedule(me, term)
    except DomainError as refusal:
        return _refused(request, me, refusal)
    return render(
        request,
        "student/timetable.html",
        who=me.who,
        term=found,
        entries=entries,
        grid=_grid(entries),
        credits=sum(e.section.credits for e in entries if e.status.value == "enrolled"),
        dropped=request.query_params.get("dropped", "")[:_MAX_ID],
        meeting_text=_meeting_text,
    )


@router.get("/terms/{term}/drop/{section_id}")
async def drop_page(term: str, section_id: str, request: Request) -> Response:
    me = _signed_in(request)
    if isinstance(me, Response):
        return me
    try:
        found, entries = await _schedule(me, term)
    except DomainError as refusal:
        return _refused(request, me, refusal)
    entry = next((e for e in entries if e.section.section_id == section_id), None)
    if entry is None:
        return _refused(request, me, NotFound("not enrolled", section_id=section_id))
    return render(request, "student/drop.html", who=me.who, term=found, entry=entry)


@router.post("/terms/{term}/drop/{section_id}")
async def drop(term: str, section_id: str, request: Request) -> Response:
    me = _signed_in(request)
    if isinstance(me, Response):
        return me
    form = await request.form()
    if not check_csrf(request, form):
        return _csrf_refused(request, me)
    try:
        await me.node.enrollment.drop(student_pk=me.pk, term_code=term, section_id=section_id)
    except DomainError as refusal:
        return _refused(request, me, refusal)
    me.node.catalog_pages.forget(term)
    target = f"/terms/{quote(term)}/timetable?{urlencode({'dropped': section_id})}"
    return RedirectResponse(target, status_code=303)
