"""The admins' pages, in-process: who may see them, creating a term, CSV imports (all or
nothing, in batches), the waiting-room controls and the live dashboard."""

from __future__ import annotations

import asyncio
import csv
import io
import re
from datetime import datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Counter, Histogram

from rushgate.adapters.security import Argon2Hasher
from rushgate.composition import Container
from rushgate.domain.admissions import ApplicationStatus
from rushgate.domain.clock import FixedClock
from rushgate.http.pages.admin import p99_of, request_counts
from tests.admissions_seed import APPLICANT_PASSWORD, ROUND, add_application
from tests.http.api import ADMIN, PASSWORD, TERM, Api, section_json, student_json, term_json
from tests.http.board_api import Board, email
from tests.pages.a11y import problems
from tests.support import T0

BOM = "\ufeff"


async def log_in(client: httpx.AsyncClient, username: str, password: str) -> str:
    """Sign this client in through the login page; the session's CSRF token."""
    r = await client.post("/login", data={"username": username, "password": password})
    assert r.status_code == 303, r.text
    token = client.cookies.get("rg_csrf")
    assert token
    return token


@pytest.fixture
async def api(client: httpx.AsyncClient) -> Api:
    api = Api(client)
    assert (await api.create_term(term_json(waiting_room={"enabled": True}))).status_code == 201
    assert (await api.create_students([student_json("s1")])).status_code == 201
    return api


@pytest.fixture
async def csrf(client: httpx.AsyncClient, api: Api) -> str:
    return await log_in(client, *ADMIN)


def sections_csv(count: int, *, start: int = 0, bad: dict[int, str] | None = None) -> str:
    lines = ["section_id,course_code,title,credits,capacity,waitlist_capacity,meetings"]
    for i in range(start, start + count):
        credits = (bad or {}).get(i, "3")
        lines.append(f"K{i:05d}-01,K{i:05d},한국어 강의 {i},{credits},30,0,MON 09:00-10:15")
    return BOM + "\r\n".join(lines) + "\r\n"


async def upload(
    client: httpx.AsyncClient, kind: str, csrf: str, text: str, **fields: str
) -> httpx.Response:
    return await client.post(
        f"/admin/import/{kind}",
        data={"csrf_token": csrf, **fields},
        files={"file": ("data.csv", text.encode("utf-8"), "text/csv")},
    )


def term_form(csrf: str, code: str = "2026-fall", **extra: str) -> dict[str, str]:
    return {
        "csrf_token": csrf,
        "code": code,
        "name": "2026 가을학기",
        "opens_at": "2026-08-20T09:00",
        "closes_at": "2026-08-27T18:00",
        "waiting_room": "on",
        "admit_per_second": "25",
        "max_active": "300",
        "admission_ttl_seconds": "600",
        **extra,
    }


# --- who may look -------------------------------------------------------------------------

PAGES = (
    "/admin",
    "/admin/terms/new",
    "/admin/import/sections",
    "/admin/import/students",
    f"/admin/terms/{TERM}",
    f"/admin/terms/{TERM}/live",
    "/admin/applications",
    "/admin/questions",
)
POSTS = (
    "/admin/terms",
    "/admin/import/sections",
    "/admin/import/students",
    f"/admin/terms/{TERM}",
    f"/admin/terms/{TERM}/pause",
    f"/admin/terms/{TERM}/resume",
)


@pytest.mark.parametrize("path", PAGES)
async def test_every_admin_page_passes_the_page_checks(
    client: httpx.AsyncClient, csrf: str, path: str
) -> None:
    r = await client.get(path)
    assert r.status_code == 200, r.text
    assert problems(r.text) == []


@pytest.mark.parametrize("path", PAGES)
async def test_anonymous_visitors_are_sent_to_log_in(
    client: httpx.AsyncClient, api: Api, path: str
) -> None:
    r = await client.get(path)
    assert r.status_code == 303
    assert r.headers["location"].startswith("/login?next=")


@pytest.mark.parametrize("path", POSTS)
async def test_anonymous_posts_change_nothing_and_go_to_log_in(
    client: httpx.AsyncClient, api: Api, container: Container, path: str
) -> None:
    before = len(await container.audit.entries())
    r = await client.post(path, data={"csrf_token": "x"})
    assert r.status_code == 303
    assert r.headers["location"].startswith("/login?next=")
    assert len(await container.audit.entries()) == before


@pytest.mark.parametrize("path", sorted(set(PAGES + POSTS)))
async def test_students_are_refused_every_page_and_form(
    client: httpx.AsyncClient, api: Api, container: Container, path: str
) -> None:
    csrf = await log_in(client, "s1", PASSWORD)
    before = len(await container.audit.entries())
    if path in PAGES:
        r = await client.get(path)
        assert r.status_code == 403
        assert problems(r.text) == []
    if path in POSTS:
        r = await client.post(path, data={"csrf_token": csrf})  # even with a good token
        assert r.status_code == 403
    assert len(await container.audit.entries()) == before


@pytest.mark.parametrize("path", POSTS)
async def test_every_form_refuses_a_post_without_the_csrf_token(
    client: httpx.AsyncClient, csrf: str, container: Container, path: str
) -> None:
    before = len(await container.audit.entries())
    r = await client.post(path, data={"csrf_token": "forged"})
    assert r.status_code == 403
    assert problems(r.text) == []
    r = await client.post(path, data={})
    assert r.status_code == 403
    assert len(await container.audit.entries()) == before


# --- home and terms -----------------------------------------------------------------------


async def test_home_lists_the_terms_with_their_links(client: httpx.AsyncClient, csrf: str) -> None:
    r = await client.get("/admin")
    assert TERM in r.text
    assert f'href="/admin/import/sections?term={TERM}"' in r.text
    assert f'href="/admin/terms/{TERM}/live"' in r.text


async def test_creating_a_term_writes_it_audited_and_redirects(
    client: httpx.AsyncClient, csrf: str, container: Container
) -> None:
    r = await client.post("/admin/terms", data=term_form(csrf))
    assert r.status_code == 303
    assert r.headers["location"] == "/admin?created=2026-fall"
    term = await container.storage.reads(fresh=True).term("2026-fall")
    assert term.name == "2026 가을학기"
    assert term.waiting_room_enabled
    assert term.admit_per_second == 25
    assert term.max_active == 300
    assert term.window.opens_at.isoformat() == "2026-08-20T09:00:00+00:00"
    entry = (await container.audit.entries())[0].entry
    assert (entry.action, entry.target, entry.actor.username) == (
        "term.create",
        "term:2026-fall",
        "admin",
    )
    home = await client.get(r.headers["location"])
    assert "2026-fall" in home.text
    assert 'role="status"' in home.text


async def test_a_bad_term_form_is_shown_again_with_its_errors(
    client: httpx.AsyncClient, csrf: str, container: Container
) -> None:
    r = await client.post(
        "/admin/terms", data=term_form(csrf, code="no spaces!", admit_per_second="0")
    )
    assert r.status_code == 422
    assert problems(r.text) == []
    assert 'id="code" ' in r.text
    assert 'aria-invalid="true" aria-describedby="code-error"' in r.text
    assert "admit_per_second-error" in r.text
    assert 'value="2026 가을학기"' in r.text  # what was typed is kept
    r = await client.post("/admin/terms", data=term_form(csrf, closes_at="2026-08-01T00:00"))
    assert r.status_code == 422
    r = await client.post("/admin/terms", data=term_form(csrf, code=TERM))
    assert r.status_code == 409
    assert len(await container.storage.reads(fresh=True).terms()) == 1


# --- CSV imports --------------------------------------------------------------------------


async def test_a_good_sections_csv_with_a_bom_and_korean_is_imported(
    client: httpx.AsyncClient, csrf: str, api: Api, container: Container
) -> None:
    job = await upload(client, "sections", csrf, sections_csv(3), term=TERM)
    assert job.status_code == 200  # without script, the answer is the result
    assert problems(job.text) == []
    assert 'value="3"' in job.text
    assert 'max="3"' in job.text
    sections = await api.sections()
    assert sections["K00001-01"]["title"] == "한국어 강의 1"
    assert sections["K00001-01"]["meetings"] == [{"day": "MON", "start": "09:00", "end": "10:15"}]
    entry = (await container.audit.entries())[0].entry
    assert (entry.action, entry.actor.username) == ("section.bulk_create", "admin")


async def test_bad_rows_are_reported_by_row_and_column_and_nothing_is_written(
    client: httpx.AsyncClient, csrf: str, api: Api
) -> None:
    text = sections_csv(5, bad={1: "three", 3: "-2"}).replace(
        "K00004-01,K00004,한국어 강의 4,3,30,0,MON 09:00-10:15",
        "K00004-01,K00004,한국어 강의 4,3,30,0,MONDAY 9",
    )
    r = await upload(client, "sections", csrf, text, term=TERM)
    assert r.status_code == 422
    assert problems(r.text) == []
    rows = re.findall(r"<tr><td>(\d+)</td><td>([\w-]+)</td>", r.text)
    assert rows == [("3", "credits"), ("5", "credits"), ("6", "meetings")]
    assert await api.sections() == {}


async def test_repeated_ids_and_missing_columns_are_reported(
    client: httpx.AsyncClient, csrf: str, api: Api
) -> None:
    text = sections_csv(2) + "K00000-01,K00000,again,3,30,0,\r\n"
    r = await upload(client, "sections", csrf, text, term=TERM)
    assert r.status_code == 422
    assert "repeats row 2" in r.text
    r = await upload(client, "sections", csrf, "section_id,title\r\nA-1,x\r\n", term=TERM)
    assert r.status_code == 422
    assert re.findall(r"<tr><td>1</td><td>(\w+)</td>", r.text) == [
        "course_code",
        "credits",
        "capacity",
    ]
    r = await upload(client, "sections", csrf, "\xff\xfe".encode("latin-1").decode("latin-1"))
    assert r.status_code == 422
    assert await api.sections() == {}


async def test_a_file_of_more_than_a_thousand_rows_goes_in_batches_of_a_thousand(
    client: httpx.AsyncClient, csrf: str, api: Api, container: Container
) -> None:
    # With script: the answer at once, then the progress polled until done.
    r = await upload(client, "sections", csrf, sections_csv(2300), term=TERM, progressive="1")
    assert r.status_code == 303
    seen: list[int] = []
    for _ in range(600):
        progress = await client.get(r.headers["location"] + "/progress")
        seen.append(progress.json()["written"])
        if progress.json()["state"] != "running":
            break
        await asyncio.sleep(0.05)
    assert seen == sorted(seen)
    assert set(seen) <= {0, 1000, 2000, 2300}
    page = await client.get(r.headers["location"])
    assert page.status_code == 200
    assert problems(page.text) == []
    assert progress.json() == {
        "state": "done",
        "total": 2300,
        "written": 2300,
        "batches": 3,
        "batches_done": 3,
        "failure": None,
    }
    assert len(await container.storage.reads(fresh=True).catalog(TERM)) == 2300
    counts = [e.entry.details.get("count") for e in await container.audit.entries()]
    assert sorted(c for c in counts if c in (1000, 300)) == [300, 1000, 1000]


async def test_a_refused_batch_stops_the_import_and_writes_nothing_of_itself(
    client: httpx.AsyncClient, csrf: str, api: Api, container: Container
) -> None:
    # Row 1,502 names a section that exists already: batches 1 goes in, 2 is refused.
    assert (
        await upload(client, "sections", csrf, sections_csv(1, start=1500), term=TERM)
    ).status_code == 200
    job = await upload(client, "sections", csrf, sections_csv(2100), term=TERM)
    assert job.status_code == 409
    assert problems(job.text) == []
    job_path = re.search(r'data-progress="([^"]+)"', job.text)
    assert job_path is not None
    progress = (await client.get(job_path.group(1))).json()
    assert progress["state"] == "failed"
    assert progress["failure"] == "conflict"
    assert progress["written"] == 1000
    assert progress["batches_done"] == 1
    assert "K01500-01" in job.text
    assert len(await container.storage.reads(fresh=True).catalog(TERM)) == 1001


async def test_students_are_imported_from_csv_and_can_log_in(
    client: httpx.AsyncClient, csrf: str, api: Api
) -> None:
    text = (
        BOM
        + "student_id,name,email,password,class_year,max_credits\n"
        + "20260001,김민준,minjun@example.test,first-password-1,1,18\n"
        + "20260002,이서연,Seoyeon@Example.test,first-password-2,2,21\n"
    )
    r = await upload(client, "students", csrf, text)
    assert r.status_code == 200
    assert (await api.login("20260002", "first-password-2")).status_code == 200


async def test_a_student_row_with_a_bad_email_or_a_repeated_email_is_reported(
    client: httpx.AsyncClient, csrf: str, api: Api
) -> None:
    text = (
        "student_id,name,email,password,class_year,max_credits\n"
        "a1,김민준,not-an-email,first-password-1,1,18\n"
        "a2,이서연,x@example.test,first-password-2,2,21\n"
        "a3,박지호,X@example.test,first-password-3,2,21\n"
    )
    r = await upload(client, "students", csrf, text)
    assert r.status_code == 422
    rows = re.findall(r"<tr><td>(\d+)</td><td>([\w-]+)</td>", r.text)
    assert rows == [("2", "email"), ("4", "email")]
    assert (await api.login("a2", "first-password-2")).status_code == 401


# --- windows and the waiting room ------------------------------------------------------------


async def join(api: Api, student: str) -> httpx.Response:
    return await api.client.post(f"/api/v1/queue/{TERM}/join", headers=await api.headers(student))


async def tick(container: Container, clock: FixedClock, times: int = 4) -> None:
    for _ in range(times):
        clock.set(clock.now() + timedelta(seconds=0.25))
        assert await container.admitter.tick_once()


async def test_a_paused_room_admits_no_one_until_resumed_and_both_are_audited(
    client: httpx.AsyncClient, api: Api, container: Container, clock: FixedClock
) -> None:
    admin = await api.admin()
    r = await client.post(f"/api/v1/admin/terms/{TERM}/queue/pause", headers=admin)
    assert r.status_code == 200, r.text
    assert r.json()["admission_paused"] is True
    assert (await join(api, "s1")).json()["state"] == "waiting"
    await tick(container, clock)
    status = await client.get(f"/api/v1/queue/{TERM}/status", headers=await api.headers("s1"))
    assert status.json()["state"] == "waiting"
    assert container.room_gauges.rooms()[TERM].paused is True
    r = await client.post(f"/api/v1/admin/terms/{TERM}/queue/resume", headers=admin)
    assert r.json()["admission_paused"] is False
    await tick(container, clock)
    status = await client.get(f"/api/v1/queue/{TERM}/status", headers=await api.headers("s1"))
    assert status.json()["state"] == "admitted"
    actions = [e.entry.action for e in await container.audit.entries()]
    assert actions[:2] == ["queue.resume", "queue.pause"]


async def test_patch_moves_the_window_and_changes_the_pace(
    client: httpx.AsyncClient, api: Api, container: Container
) -> None:
    closes = (T0 + timedelta(hours=1)).isoformat()
    r = await client.patch(
        f"/api/v1/admin/terms/{TERM}",
        json={"opens_at": T0.isoformat(), "closes_at": closes, "admit_per_second": 40},
        headers=await api.admin(),
    )
    assert r.status_code == 200, r.text
    assert datetime.fromisoformat(r.json()["closes_at"]) == T0 + timedelta(hours=1)
    term = await container.storage.reads(fresh=True).term(TERM)
    assert term.window.closes_at == T0 + timedelta(hours=1)
    assert (term.admit_per_second, term.max_active) == (40, 500)
    entry = (await container.audit.entries())[0].entry
    assert (entry.action, entry.details["fields"]) == (
        "term.update",
        ["admit_per_second", "window"],
    )


async def test_patch_refuses_a_window_that_closes_first_and_half_a_window(
    client: httpx.AsyncClient, api: Api, container: Container
) -> None:
    admin = await api.admin()
    body = {"opens_at": T0.isoformat(), "closes_at": (T0 - timedelta(hours=1)).isoformat()}
    r = await client.patch(f"/api/v1/admin/terms/{TERM}", json=body, headers=admin)
    assert r.status_code == 422
    r = await client.patch(
        f"/api/v1/admin/terms/{TERM}", json={"opens_at": T0.isoformat()}, headers=admin
    )
    assert r.status_code == 422
    r = await client.patch("/api/v1/admin/terms/nope", json={"max_active": 3}, headers=admin)
    assert r.status_code == 404
    assert [e.entry.action for e in await container.audit.entries()] == [
        "student.bulk_create",
        "term.create",
    ]


async def test_a_term_without_a_waiting_room_cannot_be_paused(
    client: httpx.AsyncClient, api: Api
) -> None:
    assert (await api.create_term(term_json("no-room"))).status_code == 201
    r = await client.post("/api/v1/admin/terms/no-room/queue/pause", headers=await api.admin())
    assert r.status_code == 404


async def test_the_settings_form_saves_the_window_and_the_pace(
    client: httpx.AsyncClient, csrf: str, container: Container
) -> None:
    r = await client.post(
        f"/admin/terms/{TERM}",
        data={
            "csrf_token": csrf,
            "opens_at": "2026-02-10T10:00",
            "closes_at": "2026-02-10T12:00",
            "admit_per_second": "5",
            "max_active": "50",
        },
    )
    assert r.status_code == 303
    page = await client.get(r.headers["location"])
    assert 'role="status"' in page.text
    assert 'value="2026-02-10T12:00"' in page.text
    term = await container.storage.reads(fresh=True).term(TERM)
    assert (term.admit_per_second, term.max_active) == (5, 50)
    assert term.window.closes_at == T0 + timedelta(hours=2)
    bad = await client.post(
        f"/admin/terms/{TERM}",
        data={
            "csrf_token": csrf,
            "opens_at": "2026-02-10T10:00",
            "closes_at": "2026-02-10T09:00",
            "admit_per_second": "0",
            "max_active": "50",
        },
    )
    assert bad.status_code == 422
    assert problems(bad.text) == []
    assert "admit_per_second-error" in bad.text


async def test_the_pause_and_resume_buttons(
    client: httpx.AsyncClient, csrf: str, container: Container
) -> None:
    r = await client.post(f"/admin/terms/{TERM}/pause", data={"csrf_token": csrf})
    assert r.status_code == 303
    assert r.headers["location"] == f"/admin/terms/{TERM}"
    page = await client.get(f"/admin/terms/{TERM}")
    assert f'action="/admin/terms/{TERM}/resume"' in page.text
    assert (await container.storage.reads(fresh=True).term(TERM)).admission_paused
    r = await client.post(
        f"/admin/terms/{TERM}/resume",
        data={"csrf_token": csrf, "next": f"/admin/terms/{TERM}/live"},
    )
    assert r.headers["location"] == f"/admin/terms/{TERM}/live"
    assert not (await container.storage.reads(fresh=True).term(TERM)).admission_paused


# --- the live dashboard ------------------------------------------------------------------


async def test_the_live_numbers_follow_the_queue_and_the_seats(
    client: httpx.AsyncClient, csrf: str, api: Api, container: Container, clock: FixedClock
) -> None:
    assert (await api.create_sections([section_json("HOT-01", capacity=2)])).status_code == 201
    assert (await api.create_students([student_json(f"q{i}") for i in range(3)])).status_code == 201
    first = (await client.get(f"/admin/terms/{TERM}/live.json")).json()
    assert (first["waiting"], first["phase"], first["paused"]) == (0, "open", False)
    assert first["hottest"][0]["section_id"] == "HOT-01"
    assert first["seats_left"] == 2
    assert first["scope"] == "node"
    # Paused first, so that the queue stands still for a look.
    assert (
        await client.post(f"/admin/terms/{TERM}/pause", data={"csrf_token": csrf})
    ).status_code == 303
    for i in range(3):
        assert (await join(api, f"q{i}")).status_code == 200
    await tick(container, clock)
    waiting = (await client.get(f"/admin/terms/{TERM}/live.json")).json()
    assert (waiting["waiting"], waiting["admitted"], waiting["paused"]) == (3, 0, True)
    assert (
        await client.post(f"/admin/terms/{TERM}/resume", data={"csrf_token": csrf})
    ).status_code == 303
    await tick(container, clock)
    status = await client.get(f"/api/v1/queue/{TERM}/status", headers=await api.headers("q0"))
    token = status.json()["admission_token"]
    r = await client.post(
        f"/api/v1/terms/{TERM}/enrollments",
        json={"section_id": "HOT-01"},
        headers={**await api.headers("q0"), "X-Admission-Token": token},
    )
    assert r.status_code in (200, 201), r.text
    later = (await client.get(f"/admin/terms/{TERM}/live.json")).json()
    assert later["waiting"] == 0
    assert later["admitted"] == 3
    assert later["admits_per_second"] > 0
    assert later["hottest"][0] == {
        "section_id": "HOT-01",
        "title": "Title of HOT-01",
        "capacity": 2,
        "enrolled": 1,
        "seats_left": 1,
    }
    assert later["requests_per_second"] > 0
    assert later["p99_seconds"] is not None
    page = await client.get(f"/admin/terms/{TERM}/live")
    assert 'data-source="/admin/terms/2026-spring/live.json"' in page.text
    assert "/static/admin-live." in page.text


def test_error_rate_and_p99_come_from_the_request_metrics_of_this_node() -> None:
    registry = CollectorRegistry()
    requests = Counter(
        "rushgate_http_requests", "", ["route", "method", "status"], registry=registry
    )
    duration = Histogram(
        "rushgate_http_request_duration_seconds",
        "",
        ["route", "method"],
        buckets=(0.01, 0.1, 1.0),
        registry=registry,
    )
    before = request_counts(registry)
    for _ in range(98):
        requests.labels("/api/v1/x", "GET", "200").inc()
        duration.labels("/api/v1/x", "GET").observe(0.005)
    for _ in range(2):
        requests.labels("/api/v1/x", "GET", "503").inc()
        duration.labels("/api/v1/x", "GET").observe(0.5)
    requests.labels("/admin/terms/{code}/live.json", "GET", "500").inc(50)  # not counted
    total, errors, buckets = request_counts(registry)
    assert (total - before[0], errors - before[1]) == (100, 2)
    assert p99_of(buckets, before[2]) == 1.0
    assert p99_of(buckets, buckets) is None


# --- applications and questions ------------------------------------------------------------


@pytest.fixture
async def board(client: httpx.AsyncClient, container: Container, hasher: Argon2Hasher) -> Board:
    """A round with applicants kim and lee (and the student s1), the admin signed in."""
    return await Board.seeded(Api(client), container, hasher)


async def test_applications_are_listed_by_round_and_status_and_exported_for_excel(
    client: httpx.AsyncClient, board: Board, container: Container
) -> None:
    kim = await add_application(
        container.storage, await board.applicant_pk("kim"), status=ApplicationStatus.SUBMITTED
    )
    await add_application(container.storage, await board.applicant_pk("lee"))
    await log_in(client, *ADMIN)
    every = await client.get("/admin/applications", params={"round": ROUND})
    assert every.status_code == 200
    assert problems(every.text) == []
    assert "kim 학생" in every.text
    assert "lee 학생" in every.text
    submitted = await client.get(
        "/admin/applications", params={"round": ROUND, "status": "submitted"}
    )
    assert "kim 학생" in submitted.text
    assert "lee 학생" not in submitted.text
    assert f'href="/admin/applications.csv?round={ROUND}&amp;status=submitted"' in submitted.text
    export = await client.get(
        "/admin/applications.csv", params={"round": ROUND, "status": "submitted"}
    )
    assert export.headers["content-type"].startswith("text/csv")
    assert export.content.startswith("\ufeff".encode())
    rows = list(csv.DictReader(io.StringIO(export.text.lstrip("\ufeff"))))
    assert [(r["receipt_number"], r["name"]) for r in rows] == [(kim.receipt_number, "kim 학생")]
    missing = await client.get("/admin/applications", params={"round": "nope"})
    assert missing.status_code == 404
    assert (
        await client.get("/admin/applications.csv", params={"round": "nope"})
    ).status_code == 404


async def test_unanswered_questions_are_listed_and_answered_with_an_audit_entry(
    client: httpx.AsyncClient, board: Board, container: Container
) -> None:
    first = await board.asked("kim", "전형료 환불")
    second = await board.asked("lee", "서류 제출 기한", public=False)
    assert (await board.answer(second, "마감일까지입니다.")).status_code == 200
    csrf = await log_in(client, *ADMIN)
    page = await client.get("/admin/questions", params={"round": ROUND})
    assert page.status_code == 200
    assert problems(page.text) == []
    assert "전형료 환불" in page.text
    assert "서류 제출 기한" not in page.text  # answered already
    r = await client.post(
        f"/admin/questions/{ROUND}/{first}/answer",
        data={"csrf_token": csrf, "body": "접수 마감 전 취소 시 환불됩니다."},
    )
    assert r.status_code == 303
    after = await client.get(r.headers["location"])
    assert 'role="status"' in after.text
    assert "전형료 환불" not in after.text
    seen = (await board.question("kim", first)).json()
    assert seen["answer"]["body"] == "접수 마감 전 취소 시 환불됩니다."
    assert (await container.audit.entries())[0].entry.actor.username == "admin"
    empty = await client.post(
        f"/admin/questions/{ROUND}/{first}/answer", data={"csrf_token": csrf, "body": " "}
    )
    assert empty.status_code == 422
    assert problems(empty.text) == []
    forged = await client.post(
        f"/admin/questions/{ROUND}/{first}/answer", data={"csrf_token": "x", "body": "hi"}
    )
    assert forged.status_code == 403


@pytest.mark.parametrize(
    "path", ["/admin", "/admin/applications?round=2027-hs", "/admin/questions?round=2027-hs"]
)
async def test_an_applicant_is_refused_the_admin_pages(
    client: httpx.AsyncClient, board: Board, path: str
) -> None:
    csrf = await log_in(client, email("kim"), APPLICANT_PASSWORD)
    assert (await client.get(path)).status_code == 403
    r = await client.post(
        f"/admin/questions/{ROUND}/1/answer", data={"csrf_token": csrf, "body": "x"}
    )
    assert r.status_code == 403
    assert (await client.get("/admin/applications.csv?round=2027-hs")).status_code == 403


@pytest.mark.parametrize("path", ["/admin/applications", "/admin/questions"])
async def test_the_admission_pages_pass_the_page_checks_empty_too(
    app: FastAPI, client: httpx.AsyncClient, board: Board, path: str
) -> None:
    await log_in(client, *ADMIN)
    for query in ({}, {"round": ROUND}):
        r = await client.get(path, params=query)
        assert r.status_code == 200
        assert problems(r.text) == []
    assert (await client.get(path)).status_code == 200
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://rushgate.test") as anonymous:
        assert (await anonymous.get(path)).status_code == 303


async def test_concurrent_changes_of_one_term_lose_none_of_each_other(
    api: Api, container: Container
) -> None:
    """Each change reads the term locked and writes it whole: a pause racing a new rate
    (or a new cap) keeps both."""
    for round_ in range(8):
        paused = round_ % 2 == 0
        await asyncio.gather(
            container.registry.update_term(TERM, admit_per_second=10 + round_),
            container.registry.set_admission_paused(TERM, paused),
            container.registry.update_term(TERM, max_active=100 + round_),
        )
        term = await container.storage.reads(fresh=True).term(TERM)
        assert (term.admit_per_second, term.max_active, term.admission_paused) == (
            10 + round_,
            100 + round_,
            paused,
        )
