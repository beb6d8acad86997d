"""In a real browser against a real server: an admin imports sections and students from
CSV files, watches the live dashboard move while students join the waiting room and
enroll through the API, and creates a term with the keyboard alone. Debian's chromium
driven by Playwright (never a downloaded browser)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, sync_playwright

from tests.serverproc import ServerConfig, ServerProcess, free_port
from tests.support import require_service

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
ADMIN = ("admin", "admin-password-1")
TERM = "e2e-rush"
STUDENTS = 12
PASSWORD = "student-password-1"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    if not CHROMIUM.exists():
        require_service("chromium", "not installed (sudo ./scripts/ensure-services chromium)")
    workdir = tmp_path_factory.mktemp("admin-e2e")
    port = free_port()
    config = ServerConfig(
        log_dir=workdir,
        port=port,
        workers=1,  # an import's progress is kept by the process that runs it
        redis_url=None,
        admin=ADMIN,
        extra_env={"RUSHGATE_PUBLIC_URL": f"http://127.0.0.1:{port}"},
    )
    with ServerProcess(config) as node:
        with httpx.Client(base_url=node.base_url, timeout=10) as client:
            token = client.post(
                "/api/v1/auth/token", json={"username": ADMIN[0], "password": ADMIN[1]}
            ).json()["access_token"]
            now = datetime.now(UTC)
            r = client.post(
                "/api/v1/admin/terms",
                json={
                    "code": TERM,
                    "name": "2026 여름 계절학기",
                    "opens_at": (now - timedelta(minutes=1)).isoformat(),
                    "closes_at": (now + timedelta(hours=2)).isoformat(),
                    "waiting_room": {"enabled": True, "admit_per_second": 2, "max_active": 50},
                },
                headers={"Authorization": f"Bearer {token}"},
            )
            assert r.status_code == 201, r.text
        yield node


def log_in(page: Page, base: str) -> None:
    page.goto(f"{base}/login?next=/admin")
    page.fill("#username", ADMIN[0])
    page.fill("#password", ADMIN[1])
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/admin")


def csv_file(tmp: Path, name: str, lines: list[str]) -> Path:
    path = tmp / name
    path.write_bytes(("\ufeff" + "\r\n".join(lines) + "\r\n").encode("utf-8"))
    return path


def number(page: Page, key: str) -> float:
    return float(page.inner_text(f'[data-live="{key}"]').rstrip("%ms "))


def eventually(check: Callable[[], bool], seconds: float) -> None:
    """Until ``check()`` holds (the page's CSP forbids Playwright's string predicates)."""
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "the dashboard did not move"
        time.sleep(0.2)


def students_rush(base: str, stop: threading.Event) -> None:
    """Students log in, join the waiting room, wait to be admitted, then enroll."""
    with httpx.Client(base_url=base, timeout=10) as client:
        tokens = []
        for i in range(STUDENTS):
            r = client.post(
                "/api/v1/auth/token", json={"username": f"e2e{i:03d}", "password": PASSWORD}
            )
            tokens.append({"Authorization": f"Bearer {r.json()['access_token']}"})
        for headers in tokens:
            client.post(f"/api/v1/queue/{TERM}/join", headers=headers)
        pending = list(enumerate(tokens))
        while pending and not stop.is_set():
            for i, headers in list(pending):
                status = client.get(f"/api/v1/queue/{TERM}/status", headers=headers).json()
                if status.get("state") == "admitted":
                    client.post(
                        f"/api/v1/terms/{TERM}/enrollments",
                        json={"section_id": f"HOT-{i % 2 + 1:02d}"},
                        headers={**headers, "X-Admission-Token": status["admission_token"]},
                    )
                    pending.remove((i, headers))
            stop.wait(0.3)


def test_an_admin_imports_csv_files_and_watches_the_rush_live(
    server: ServerProcess, tmp_path: Path
) -> None:
    base = server.base_url
    sections = csv_file(
        tmp_path,
        "sections.csv",
        ["section_id,course_code,title,credits,capacity,waitlist_capacity,meetings"]
        + [f"HOT-{n:02d},HOT{n},인기 강좌 {n},3,8,0,MON 09:00-10:15" for n in (1, 2)]
        + [
            f"K{n:03d}-01,K{n:03d},한국사 {n},3,30,5,TUE 1{n % 8}:00-1{n % 8}:50" for n in range(40)
        ],
    )
    students = csv_file(
        tmp_path,
        "students.csv",
        ["student_id,name,email,password,class_year,max_credits"]
        + [f"e2e{i:03d},학생{i},e2e{i}@example.test,{PASSWORD},2,18" for i in range(STUDENTS)],
    )
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800}, locale="en-US")
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))  # script errors
            log_in(page, base)
            page.screenshot(path=str(SHOTS / "admin-home.png"))

            page.goto(f"{base}/admin/import/sections?term={TERM}")
            page.set_input_files("#file", str(sections))
            page.click("#import-form button[type=submit]")
            page.wait_for_selector("#import-job[data-state=done]", timeout=20_000)
            assert "42" in page.inner_text("#import-status")
            page.screenshot(path=str(SHOTS / "admin-import.png"))

            page.goto(f"{base}/admin/import/students")
            bad = csv_file(
                tmp_path,
                "bad.csv",
                ["student_id,name,email,password,class_year,max_credits", "x1,이름,nope,p,0,18"],
            )
            page.set_input_files("#file", str(bad))
            page.click("#import-form button[type=submit]")
            page.wait_for_selector("#import-report")
            page.screenshot(path=str(SHOTS / "admin-import-report.png"))
            page.set_input_files("#file", str(students))
            page.click("#import-form button[type=submit]")
            page.wait_for_selector("#import-job[data-state=done]", timeout=30_000)

            page.goto(f"{base}/admin/terms/{TERM}/live")
            page.wait_for_selector("#live[data-updated]")
            assert page.inner_text('[data-live="seats_left"]') == str(16 + 40 * 30)
            stop = threading.Event()
            rush = threading.Thread(target=students_rush, args=(base, stop), daemon=True)
            rush.start()
            try:
                # Students join: the queue grows; admitted ones enroll: seats go down.
                eventually(lambda: number(page, "waiting") > 0, 20)
                eventually(lambda: number(page, "seats_left") <= 16 + 40 * 30 - 4, 30)
                time.sleep(3)  # a few more polls: lines worth a look in the screenshot
                points = page.get_attribute('[data-chart="waiting"] polyline', "points")
                assert points
                assert len(points.split()) >= 2
                page.screenshot(path=str(SHOTS / "admin-live.png"))
            finally:
                stop.set()
                rush.join(10)
            assert "HOT-0" in page.inner_text("#hottest")
            assert errors == []
        finally:
            browser.close()


def type_moment(page: Page, date: str, clock: str) -> None:
    """Fill the focused datetime-local field: Tab moves through its parts (the date's
    fill themselves in turn, then the time's), and on out of the field."""
    field = page.evaluate("document.activeElement.id")
    page.keyboard.type(date)
    page.keyboard.press("Tab")
    page.keyboard.type(clock)
    for _ in range(3):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") != field:
            return
    raise AssertionError(f"the focus stayed in #{field}")


def test_creating_a_term_with_the_keyboard_alone(server: ServerProcess) -> None:
    base = server.base_url
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800}, locale="en-US")
            page.goto(f"{base}/login?next=/admin/terms/new")
            keys = page.keyboard
            keys.type(ADMIN[0])  # the username field has the focus
            keys.press("Tab")
            keys.type(ADMIN[1])
            keys.press("Enter")
            page.wait_for_url(f"{base}/admin/terms/new")
            assert page.evaluate("document.activeElement.id") == "code"
            keys.type("2026-kbd")
            keys.press("Tab")
            assert page.evaluate("document.activeElement.id") == "name"
            keys.type("키보드 학기")
            keys.press("Tab")
            assert page.evaluate("document.activeElement.id") == "opens_at"
            type_moment(page, "09012026", "0900AM")
            assert page.evaluate("document.activeElement.id") == "closes_at"
            type_moment(page, "09082026", "0600PM")
            assert page.evaluate("document.activeElement.id") == "waiting_room"
            keys.press("Tab")
            keys.press("Control+A")
            keys.type("30")
            page.screenshot(path=str(SHOTS / "admin-term-new.png"))
            keys.press("Enter")  # submits the form
            page.wait_for_url(f"{base}/admin?created=2026-kbd")
            assert "2026-kbd" in page.inner_text("main")
        finally:
            browser.close()
    with httpx.Client(base_url=base) as client:
        token = client.post(
            "/api/v1/auth/token", json={"username": ADMIN[0], "password": ADMIN[1]}
        ).json()["access_token"]
        terms = client.get("/api/v1/terms", headers={"Authorization": f"Bearer {token}"}).json()
    found = [
        t
        for t in (terms if isinstance(terms, list) else terms.get("items", terms))
        if t["code"] == "2026-kbd"
    ]
    assert found, terms
    assert found[0]["waiting_room"]["admit_per_second"] == 30
    assert found[0]["opens_at"].startswith("2026-09-01T09:00")
