"""The students' pages, in-process: the terms, the catalog and its cart, enrolling the
cart, the waiting room, the timetable and drops; each page's accessibility checks, the
CSRF refusal of every form, and one student never seeing another's cart or timetable."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from rushgate.composition import Container
from rushgate.domain.clock import FixedClock
from tests.http.api import (
    TERM,
    Api,
    meeting_json,
    section_json,
    student_json,
    term_json,
)
from tests.pages.a11y import problems
from tests.support import T0

ROOM = "2026-room"
LATER = "2026-later"
EN = {"Accept-Language": "en"}


class Browser:
    """One student's browser: its cookies, and the CSRF token of its session."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    @property
    def csrf(self) -> str:
        return str(self.client.cookies.get("rg_csrf"))

    async def login(self, username: str) -> None:
        r = await self.client.post(
            "/login", data={"username": username, "password": "password-123"}
        )
        assert r.status_code == 303, r.text

    async def get(self, path: str, **params: str) -> httpx.Response:
        return await self.client.get(path, params=params or None, headers=EN)

    async def post(self, path: str, **form: str) -> httpx.Response:
        body = {"csrf_token": self.csrf, **form}
        return await self.client.post(path, data=body, headers=EN)

    async def add(self, section_id: str, term: str = TERM) -> httpx.Response:
        return await self.post(f"/terms/{term}/cart", section_id=section_id, action="add")

    async def enroll_all(self, term: str = TERM, batch: str = "batch-0001") -> httpx.Response:
        return await self.post(f"/terms/{term}/enroll-all", batch=batch)


def _browser(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://rushgate.test"
    )


@pytest.fixture
async def world(client: httpx.AsyncClient, clock: FixedClock) -> Api:
    api = Api(client)
    assert (await api.create_term(term_json())).status_code == 201
    room = term_json(ROOM, waiting_room={"enabled": True, "admit_per_second": 8})
    assert (await api.create_term(room)).status_code == 201
    assert (
        await api.create_term(term_json(LATER, opens_at=T0 + timedelta(days=3)))
    ).status_code == 201
    sections = [
        section_json("CS101-01", capacity=1, meetings=[meeting_json("MON", "09:00", "10:15")]),
        section_json("CS101-02", capacity=5, meetings=[meeting_json("TUE", "09:00", "10:15")]),
        section_json(
            "MATH201-01",
            capacity=1,
            waitlist_capacity=3,
            meetings=[meeting_json("WED", "13:00", "14:15")],
        ),
        section_json("PHYS110-01", meetings=[meeting_json("MON", "09:30", "10:30")]),
        section_json("ART300-01", credits=16, meetings=[meeting_json("FRI", "15:00", "17:00")]),
    ]
    for term in (TERM, ROOM, LATER):
        assert (await api.create_sections(sections, term=term)).status_code == 201
    students = [student_json("s1"), student_json("s2"), student_json("s3", max_credits=6)]
    assert (await api.create_students(students)).status_code == 201
    return api


@pytest.fixture
async def s1(app: FastAPI, world: Api) -> AsyncIterator[Browser]:
    async with _browser(app) as client:
        browser = Browser(client)
        await browser.login("s1")
        yield browser


@pytest.fixture
async def s2(app: FastAPI, world: Api) -> AsyncIterator[Browser]:
    async with _browser(app) as client:
        browser = Browser(client)
        await browser.login("s2")
        yield browser


def _outcomes(html: str) -> dict[str, str]:
    return dict(
        (section, outcome)
        for outcome, section in re.findall(r'data-outcome="([a-z_]+)" data-section="([^"]+)"', html)
    )


def _cart(html: str) -> str:
    found = re.search(r'<section id="cart".*?</section>', html, re.S)
    assert found is not None
    return found.group(0)


async def test_pages_need_a_signed_in_student(
    app: FastAPI, world: Api, client: httpx.AsyncClient
) -> None:
    for path in ("/terms", f"/terms/{TERM}", f"/terms/{TERM}/queue", f"/terms/{TERM}/timetable"):
        r = await client.get(path)
        assert r.status_code == 303
        assert r.headers["location"].startswith("/login?next=")
    await client.post("/login", data={"username": "admin", "password": "admin-password"})
    refused = await client.get("/terms")
    assert refused.status_code == 403
    assert problems(refused.text) == []


async def test_the_terms_page_shows_open_and_upcoming_terms(
    s1: Browser, world: Api, clock: FixedClock
) -> None:
    page = await s1.get("/terms")
    assert page.status_code == 200
    assert f'href="/terms/{TERM}"' in page.text
    assert f'href="/terms/{LATER}"' in page.text
    assert "Open now" in page.text
    assert "Opens soon" in page.text
    short = term_json("2026-short", opens_at=T0, hours=1)
    assert (await world.create_term(short)).status_code == 201
    assert 'href="/terms/2026-short"' in (await s1.get("/terms")).text
    clock.set(T0 + timedelta(hours=2))  # the short term has closed
    later = await s1.get("/terms")
    assert 'href="/terms/2026-short"' not in later.text
    assert f'href="/terms/{TERM}"' in later.text
    assert f'href="/terms/{LATER}"' in later.text


async def test_the_catalog_searches_by_code_and_title_filters_and_shows_seats(
    s1: Browser, world: Api
) -> None:
    page = await s1.get(f"/terms/{TERM}")
    assert page.status_code == 200
    assert 'data-seats="CS101-01">1<' in page.text
    assert 'data-seats="PHYS110-01">40<' in page.text
    by_code = await s1.get(f"/terms/{TERM}", q="cs1")
    assert "CS101-02" in by_code.text
    assert "PHYS110-01" not in by_code.text
    by_title = await s1.get(f"/terms/{TERM}", q="title of math")
    assert "MATH201-01" in by_title.text
    assert "CS101-01" not in by_title.text
    assert (await world.enroll("s2", "CS101-01")).status_code == 201
    open_only = await s1.get(f"/terms/{TERM}", open="1")
    assert 'data-seats="CS101-01"' not in open_only.text
    assert 'data-seats="CS101-02"' in open_only.text
    assert "No section matches." in (await s1.get(f"/terms/{TERM}", q="zzz")).text
    missing = await s1.get("/terms/no-such-term")
    assert missing.status_code == 404
    assert problems(missing.text) == []


async def test_the_catalog_pages_in_fifties(s1: Browser, world: Api) -> None:
    many = [section_json(f"BULK{n:03d}-01") for n in range(60)]
    assert (await world.create_sections(many)).status_code == 201
    first = await s1.get(f"/terms/{TERM}")
    assert first.text.count("data-seats=") == 50
    found = re.search(r'href="/terms/[^"?]+\?([^"]+)" rel="next"', first.text)
    assert found is not None
    second = await s1.client.get(f"/terms/{TERM}?{found.group(1).replace('&amp;', '&')}")
    assert second.text.count("data-seats=") == 65 - 50
    assert 'rel="next"' not in second.text
    searched = await s1.get(f"/terms/{TERM}", q="BULK")
    assert searched.text.count("data-seats=") == 50
    assert 'rel="next"' in searched.text


async def test_the_cart_adds_and_removes_sections_before_opening(s1: Browser) -> None:
    r = await s1.add("CS101-01", LATER)
    assert r.status_code == 303
    assert r.headers["location"] == f"/terms/{LATER}"
    assert (await s1.add("MATH201-01", LATER)).status_code == 303
    assert (await s1.add("CS101-01", LATER)).status_code == 303  # twice is once
    cart = _cart((await s1.get(f"/terms/{LATER}")).text)
    assert cart.count("<li>") == 2
    assert "CS101-01" in cart
    assert "MATH201-01" in cart
    assert "disabled" in cart  # enroll all waits for the opening
    removed = await s1.post(f"/terms/{LATER}/cart", section_id="CS101-01", action="remove")
    assert removed.status_code == 303
    cart = _cart((await s1.get(f"/terms/{LATER}")).text)
    assert "CS101-01" not in cart
    assert "MATH201-01" in cart
    assert "CS101-01" not in _cart((await s1.get(f"/terms/{TERM}")).text)  # per term
    unknown = await s1.add("NOPE-01", LATER)
    assert unknown.status_code == 404
    assert problems(unknown.text) == []


async def test_enroll_all_reports_each_outcome(s1: Browser, world: Api) -> None:
    assert (await world.enroll("s2", "CS101-01")).status_code == 201  # full now
    assert (await world.enroll("s2", "MATH201-01")).status_code == 201  # seat gone: waitlist
    for section in ("CS101-01", "MATH201-01", "PHYS110-01", "ART300-01"):
        assert (await s1.add(section)).status_code == 303
    r = await s1.enroll_all()
    assert r.status_code == 303
    assert r.headers["location"] == f"/terms/{TERM}/results"
    results = await s1.get(f"/terms/{TERM}/results")
    assert problems(results.text) == []
    assert _outcomes(results.text) == {
        "CS101-01": "section_full",
        "MATH201-01": "waitlisted",
        "PHYS110-01": "enrolled",
        "ART300-01": "credit_limit",
    }
    assert "Waitlisted, number 1" in results.text
    # The full section offers the course's other section, which enrolls in one click.
    assert 'name="section_id" value="CS101-02"' in results.text
    other = await s1.post(f"/terms/{TERM}/enroll", section_id="CS101-02", batch="batch-0002")
    assert other.status_code == 303
    assert _outcomes((await s1.get(f"/terms/{TERM}/results")).text) == {"CS101-02": "enrolled"}
    # What was placed left the cart; the refused stay, to try again.
    cart = _cart((await s1.get(f"/terms/{TERM}")).text)
    assert "CS101-01" in cart
    assert "ART300-01" in cart
    assert "PHYS110-01" not in cart
    schedule = (await world.schedule("s1")).json()
    assert {e["section_id"]: e["status"] for e in schedule["enrollments"]} == {
        "MATH201-01": "waitlisted",
        "PHYS110-01": "enrolled",
        "CS101-02": "enrolled",
    }


async def test_a_time_conflict_and_a_closed_window_are_explained(s1: Browser, world: Api) -> None:
    assert (await world.enroll("s1", "CS101-01")).status_code == 201
    assert (await s1.add("PHYS110-01")).status_code == 303
    await s1.enroll_all()
    results = await s1.get(f"/terms/{TERM}/results")
    assert _outcomes(results.text) == {"PHYS110-01": "time_conflict"}
    assert "It meets at the same time as a section you hold." in results.text
    assert (await s1.add("CS101-02", LATER)).status_code == 303
    await s1.enroll_all(LATER)
    later = await s1.get(f"/terms/{LATER}/results")
    assert _outcomes(later.text) == {"CS101-02": "window_closed"}


async def test_sending_the_same_form_twice_takes_one_seat(s1: Browser, world: Api) -> None:
    assert (await s1.add("CS101-02")).status_code == 303
    cart_before = s1.client.cookies.get("rg_cart")
    assert (await s1.enroll_all(batch="same-form-01")).status_code == 303
    # A double click: the second request still carries the cart as it was.
    s1.client.cookies.set("rg_cart", str(cart_before), domain="rushgate.test", path="/terms")
    assert (await s1.enroll_all(batch="same-form-01")).status_code == 303
    assert _outcomes((await s1.get(f"/terms/{TERM}/results")).text) == {"CS101-02": "enrolled"}
    assert (await world.sections())["CS101-02"]["seats_left"] == 4
    # A new form (a new batch) for a section already held is refused, not doubled.
    s1.client.cookies.set("rg_cart", str(cart_before), domain="rushgate.test", path="/terms")
    await s1.enroll_all(batch="new-form-02")
    assert _outcomes((await s1.get(f"/terms/{TERM}/results")).text) == {
        "CS101-02": "already_enrolled"
    }


async def test_the_waiting_room_admits_and_the_cart_enrolls_with_the_token(
    s1: Browser, container: Container, clock: FixedClock
) -> None:
    assert (await s1.add("CS101-02", ROOM)).status_code == 303
    await s1.enroll_all(ROOM)
    refused = await s1.get(f"/terms/{ROOM}/results")
    assert _outcomes(refused.text) == {"CS101-02": "not_admitted"}
    assert f'href="/terms/{ROOM}/queue"' in refused.text

    before = await s1.get(f"/terms/{ROOM}/queue")
    assert before.status_code == 200
    assert "Join the line" in before.text
    assert problems(before.text) == []
    joined = await s1.post(f"/terms/{ROOM}/queue")
    assert joined.status_code == 303
    assert joined.headers["location"] == f"/terms/{ROOM}/queue"
    waiting = await s1.get(f"/terms/{ROOM}/queue")
    assert problems(waiting.text) == []
    assert 'aria-live="polite"' in waiting.text
    assert '<dd id="queue-position">1</dd>' in waiting.text
    assert '<dd id="queue-ahead">0</dd>' in waiting.text
    assert "<progress" in waiting.text
    assert "Refresh" in waiting.text
    assert 'http-equiv="refresh"' not in waiting.text

    clock.set(clock.now() + timedelta(seconds=1))
    assert await container.admitter.tick_once()
    admitted = await s1.get(f"/terms/{ROOM}/queue")
    assert "It is your turn" in admitted.text
    assert problems(admitted.text) == []
    catalog = await s1.get(f"/terms/{ROOM}")
    token = re.search(r'name="admission_token" value="([^"]+)"', catalog.text)
    assert token is not None  # the page fetched it from the waiting room itself
    r = await s1.post(
        f"/terms/{ROOM}/enroll-all", batch="room-batch-1", admission_token=token.group(1)
    )
    assert r.status_code == 303
    assert _outcomes((await s1.get(f"/terms/{ROOM}/results")).text) == {"CS101-02": "enrolled"}


async def test_a_forged_admission_token_is_not_admitted(
    s1: Browser, container: Container, clock: FixedClock
) -> None:
    await s1.post(f"/terms/{ROOM}/queue")
    assert (await s1.add("CS101-02", ROOM)).status_code == 303
    await s1.post(f"/terms/{ROOM}/enroll-all", batch="room-batch-2", admission_token="forged")
    assert _outcomes((await s1.get(f"/terms/{ROOM}/results")).text) == {"CS101-02": "not_admitted"}


async def test_the_queue_page_of_a_term_without_a_room_sends_on(s1: Browser) -> None:
    page = await s1.get(f"/terms/{TERM}/queue")
    assert page.status_code == 200
    assert "This term has no waiting room" in page.text
    assert problems(page.text) == []


async def test_the_timetable_shows_a_week_and_drops_after_asking(s1: Browser, world: Api) -> None:
    empty = await s1.get(f"/terms/{TERM}/timetable")
    assert "You hold no sections" in empty.text
    assert problems(empty.text) == []
    assert (await world.enroll("s1", "CS101-02")).status_code == 201
    assert (await world.enroll("s2", "MATH201-01")).status_code == 201
    assert (await world.enroll("s1", "MATH201-01")).status_code == 201  # waitlisted
    page = await s1.get(f"/terms/{TERM}/timetable")
    assert problems(page.text) == []
    assert "Enrolled credits: 3" in page.text
    assert '<th scope="col">Tue</th>' in page.text
    rows = re.findall(r"<tr>\s*<th scope=\"row\">(\d\d:00)</th>(.*?)</tr>", page.text, re.S)
    hours = {hour: cells for hour, cells in rows}
    assert "CS101-02" in hours["09:00"]
    assert "CS101-02" in hours["10:00"]
    assert "MATH201-01" in hours["13:00"]
    assert "MATH201-01" in hours["14:00"]
    assert "CS101-02" not in hours["11:00"]
    assert "Waitlisted, number 1" in page.text

    ask = await s1.get(f"/terms/{TERM}/drop/CS101-02")
    assert ask.status_code == 200
    assert "Drop CS101-02" in ask.text
    assert problems(ask.text) == []
    assert (await world.schedule("s1")).json()["enrolled_credits"] == 3  # asking drops nothing
    dropped = await s1.post(f"/terms/{TERM}/drop/CS101-02")
    assert dropped.status_code == 303
    assert dropped.headers["location"] == f"/terms/{TERM}/timetable?dropped=CS101-02"
    after = await s1.get(f"/terms/{TERM}/timetable?dropped=CS101-02")
    assert "Dropped CS101-02." in after.text
    assert 'data-section="CS101-02"' not in after.text
    assert (await s1.get(f"/terms/{TERM}/drop/CS101-02")).status_code == 404
    again = await s1.post(f"/terms/{TERM}/drop/CS101-02")
    assert again.status_code == 404
    assert problems(again.text) == []


@pytest.mark.parametrize(
    ("path", "form"),
    [
        (f"/terms/{TERM}/cart", {"section_id": "CS101-02", "action": "add"}),
        (f"/terms/{TERM}/enroll-all", {"batch": "csrf-batch-1"}),
        (f"/terms/{TERM}/enroll", {"section_id": "CS101-02", "batch": "csrf-batch-2"}),
        (f"/terms/{ROOM}/queue", {}),
        (f"/terms/{TERM}/drop/PHYS110-01", {}),
    ],
)
async def test_every_form_refuses_a_missing_or_wrong_csrf_token(
    s1: Browser, world: Api, path: str, form: dict[str, Any]
) -> None:
    assert (await world.enroll("s1", "PHYS110-01")).status_code == 201
    assert (await s1.add("CS101-02")).status_code == 303
    for token in (None, "not-the-token"):
        sent = form if token is None else {**form, "csrf_token": token}
        r = await s1.client.post(path, data=sent, headers=EN)
        assert r.status_code == 403, path
        assert "This form has expired" in r.text
        assert problems(r.text) == []
    foreign = await s1.client.post(
        path, data={**form, "csrf_token": s1.csrf}, headers={"Origin": "https://evil.example"}
    )
    assert foreign.status_code == 403
    schedule = (await world.schedule("s1")).json()["enrollments"]
    assert [e["section_id"] for e in schedule] == ["PHYS110-01"]  # nothing changed
    status = await s1.client.get(f"/api/v1/queue/{ROOM}/status")
    assert status.status_code == 404  # never joined


async def test_one_student_never_sees_anothers_cart_results_or_timetable(
    app: FastAPI, s1: Browser, world: Api
) -> None:
    assert (await s1.add("MATH201-01")).status_code == 303
    assert (await s1.add("CS101-02")).status_code == 303
    await s1.enroll_all()
    assert "CS101-02" in (await s1.get(f"/terms/{TERM}/timetable")).text
    assert (await s1.add("PHYS110-01")).status_code == 303
    # s2 logs in on the same browser: s1's cookies are still there, and count for nothing.
    await s1.client.post("/logout")
    await s1.login("s2")
    assert "PHYS110-01" not in _cart((await s1.get(f"/terms/{TERM}")).text)
    assert _outcomes((await s1.get(f"/terms/{TERM}/results")).text) == {}
    timetable = await s1.get(f"/terms/{TERM}/timetable")
    assert "CS101-02" not in timetable.text
    assert "You hold no sections" in timetable.text
    assert (await s1.get(f"/terms/{TERM}/drop/CS101-02")).status_code == 404
    # Enroll all for s2 enrolls nothing of s1's cart.
    await s1.enroll_all(batch="s2-batch-01")
    assert (await world.schedule("s2")).json()["enrollments"] == []
    # A cart cookie cannot be edited: a changed byte and it counts for nothing.
    assert (await s1.add("CS101-02")).status_code == 303
    assert "CS101-02" in _cart((await s1.get(f"/terms/{TERM}")).text)
    sealed = str(s1.client.cookies.get("rg_cart"))
    forged = sealed[:-1] + ("0" if sealed[-1] != "0" else "1")
    s1.client.cookies.set("rg_cart", forged, domain="rushgate.test", path="/terms")
    page = await s1.get(f"/terms/{TERM}")
    assert page.status_code == 200
    assert "CS101-02" not in _cart(page.text)


async def test_the_cart_keeps_the_terms_changed_last(s1: Browser, world: Api) -> None:
    for code in ("2026-fifth", "2026-sixth"):
        assert (await world.create_term(term_json(code))).status_code == 201
        assert (
            await world.create_sections([section_json("CS101-01")], term=code)
        ).status_code == 201
    for code in (TERM, ROOM, LATER, "2026-fifth", "2026-sixth"):
        assert (await s1.add("CS101-01", code)).status_code == 303
    assert "CS101-01" not in _cart((await s1.get(f"/terms/{TERM}")).text)  # the oldest went
    for code in (ROOM, LATER, "2026-fifth", "2026-sixth"):
        assert "CS101-01" in _cart((await s1.get(f"/terms/{code}")).text), code


async def test_every_student_page_passes_the_page_checks(s1: Browser, world: Api) -> None:
    assert (await world.enroll("s1", "CS101-02")).status_code == 201
    assert (await s1.add("MATH201-01")).status_code == 303
    await s1.enroll_all()
    await s1.post(f"/terms/{ROOM}/queue")
    for path in (
        "/terms",
        f"/terms/{TERM}",
        f"/terms/{TERM}?q=CS&open=1",
        f"/terms/{LATER}",
        f"/terms/{TERM}/results",
        f"/terms/{TERM}/queue",
        f"/terms/{ROOM}/queue",
        f"/terms/{TERM}/timetable",
        f"/terms/{TERM}/drop/CS101-02",
        "/terms/no-such-term/timetable",
    ):
        for lang in ("en", "ko"):
            r = await s1.client.get(path, headers={"Accept-Language": lang})
            assert r.headers["content-type"].startswith("text/html"), path
            assert problems(r.text) == [], (path, lang)
            assert "student." not in re.sub(r"<[^>]+>", "", r.text), (path, lang)  # no raw keys


async def test_a_term_opening_by_class_year_opens_the_cart_for_the_first_year(
    app: FastAPI, s1: Browser, world: Api
) -> None:
    staged = term_json("2026-staged", opens_at=T0 + timedelta(hours=1), by_year={3: T0})
    assert (await world.create_term(staged)).status_code == 201
    assert (
        await world.create_sections([section_json("CS101-01")], term="2026-staged")
    ).status_code == 201
    assert (await world.create_students([student_json("y3", class_year=3)])).status_code == 201
    async with _browser(app) as client:
        third_year = Browser(client)
        await third_year.login("y3")
        for student in (s1, third_year):
            assert (await student.add("CS101-01", "2026-staged")).status_code == 303
            page = await student.get("/terms/2026-staged")
            assert "disabled" not in _cart(page.text)  # someone's year is open
            await student.enroll_all("2026-staged")
        first = await third_year.get("/terms/2026-staged/results")
        assert _outcomes(first.text) == {"CS101-01": "enrolled"}
    second = await s1.get("/terms/2026-staged/results")
    assert _outcomes(second.text) == {"CS101-01": "window_closed"}
