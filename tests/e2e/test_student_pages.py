"""In a real browser, against a real server whose admitter runs: a student logs in, fills
the cart before registration opens, waits in the waiting room until admitted, enrolls the
whole cart and sees the timetable; and the same by keyboard alone. Debian's chromium driven
by Playwright (never a downloaded browser). Screenshots go to docs/screenshots/."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, sync_playwright

from rushgate.composition import Container
from rushgate.config import Settings
from rushgate.http.deps import Cookies
from tests.http.api import meeting_json, section_json, student_json, term_json
from tests.inprocess_server import serving
from tests.support import SECRET, require_service, sqlite_database

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
ADMIN = ("admin", "admin-password")
ROOM = "2026-rush"
OPEN = "2026-open"
BUSY = "2026-busy"
OPENS_IN = timedelta(seconds=8)


async def _create_admin(settings: Settings) -> None:
    container = Container.build(settings)
    try:
        await container.registry.ensure_admin(*ADMIN)
    finally:
        await container.close()


@pytest.fixture
def site(tmp_path: Path) -> Iterator[str]:
    """A real server on a fresh SQLite database, with the container started (so the
    admitter runs), one term about to open behind a waiting room and one open now."""
    if not CHROMIUM.exists():
        require_service("chromium", "not installed (sudo ./scripts/ensure-services chromium)")
    from rushgate.http.app import create_app

    settings = Settings(
        database_url=sqlite_database(tmp_path),
        secret_key=SECRET,  # type: ignore[arg-type]
        password_hash_cost="low",
        data_dir=tmp_path / "data",
        admin_username=None,
        admin_password=None,
    )
    asyncio.run(_create_admin(settings))
    app = create_app(settings)
    with serving(app) as url, httpx.Client(base_url=url) as http:
        # The browser's Origin is this server's: the port is only known now.
        app.state.session_cookies = Cookies.for_site(url, settings.effective_secret_key())
        token = http.post(
            "/api/v1/auth/token", json={"username": ADMIN[0], "password": ADMIN[1]}
        ).json()["access_token"]
        admin = {"Authorization": f"Bearer {token}"}
        now = datetime.now(UTC)
        room = term_json(
            ROOM,
            opens_at=now + OPENS_IN,
            waiting_room={"enabled": True, "admit_per_second": 200},
            name="Spring rush",
        )
        opened = term_json(OPEN, opens_at=now - timedelta(minutes=5), name="Summer session")
        busy = term_json(
            BUSY,
            opens_at=now - timedelta(minutes=5),
            waiting_room={"enabled": True, "admit_per_second": 200},
            name="Autumn rush",
        )
        for body in (room, opened, busy):
            assert http.post("/api/v1/admin/terms", json=body, headers=admin).status_code == 201
        sections = [
            section_json("CS101-01", capacity=30, meetings=[meeting_json("MON", "09:00", "10:15")]),
            section_json(
                "MATH201-01", capacity=2, meetings=[meeting_json("WED", "13:00", "14:50")]
            ),
            section_json(
                "PHYS110-01", capacity=25, meetings=[meeting_json("THU", "11:00", "12:15")]
            ),
        ]
        for term in (ROOM, OPEN, BUSY):
            r = http.post(f"/api/v1/admin/terms/{term}/sections", json=sections, headers=admin)
            assert r.status_code == 201, r.text
        students = [student_json("s1"), student_json("s2")]
        assert http.post("/api/v1/admin/students", json=students, headers=admin).status_code == 201
        yield url


def _shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"student-{name}.png"), full_page=False)


def test_a_student_fills_the_cart_waits_in_line_and_enrolls(site: str) -> None:
    started = time.monotonic()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-US")
            page = context.new_page()
            page.goto(f"{site}/login?next=/terms")
            page.get_by_label("Username").fill("s1")
            page.get_by_label("Password").fill("password-123")
            page.get_by_role("button", name="Log in").click()
            page.wait_for_url(f"{site}/terms")
            assert "Opens soon" in page.inner_text("main")
            _shot(page, "terms")
            page.get_by_role("link", name="Spring rush").click()

            # Before opening: the cart fills, enroll all waits.
            page.get_by_role("button", name="Add CS101-01 to cart").click()
            page.get_by_role("button", name="Add MATH201-01 to cart").click()
            cart = page.locator("#cart")
            assert "CS101-01" in cart.inner_text()
            assert "MATH201-01" in cart.inner_text()
            assert page.get_by_role("button", name="Enroll in all 2").is_disabled()
            page.get_by_label("Course code or title").fill("phys")
            page.get_by_role("button", name="Search").click()
            assert page.locator("[data-seats]").count() == 1
            page.goto(f"{site}/terms/{ROOM}")
            _shot(page, "catalog")

            # The waiting room: join before opening, the page follows by itself.
            page.locator("#cart").get_by_role("link", name="Waiting room").click()
            page.get_by_role("button", name="Join the line").click()
            # Before opening everyone is in the pre-queue: places are drawn at opening.
            assert page.locator("#queue").get_attribute("data-state") == "prequeue"
            assert "Places are drawn" in page.locator("#queue-state").inner_text()
            assert page.locator("[aria-live]").count() >= 1
            _shot(page, "queue")
            # Admitted once the term opens; the script moves on to the cart, no clicking.
            page.wait_for_url(f"{site}/terms/{ROOM}#cart", timeout=30_000)
            enroll = page.get_by_role("button", name="Enroll in all 2")
            assert enroll.is_enabled()
            enroll.click()

            page.wait_for_url(f"{site}/terms/{ROOM}/results")
            results = page.locator(".result")
            assert results.count() == 2
            assert page.locator('[data-outcome="enrolled"]').count() == 2
            _shot(page, "results")

            page.get_by_role("link", name="See my timetable").first.click()
            page.wait_for_url(f"{site}/terms/{ROOM}/timetable")
            grid = page.locator("table.week").inner_text()
            assert "CS101-01" in grid
            assert "MATH201-01" in grid
            assert "Enrolled credits: 6" in page.inner_text("main")
            _shot(page, "timetable")

            # Drop, after the confirmation page.
            page.get_by_role("link", name="Drop MATH201-01").click()
            page.get_by_role("button", name="Yes, drop MATH201-01").click()
            page.wait_for_url(f"{site}/terms/{ROOM}/timetable?dropped=MATH201-01")
            assert "MATH201-01" not in page.locator("table.week").inner_text()
        finally:
            browser.close()
    assert time.monotonic() - started < 60


def _tab_to(page: Page, text: str, limit: int = 60) -> None:
    """Press Tab until the focused element's text (or value) contains ``text``."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        focused = page.evaluate(
            "() => { const e = document.activeElement;"
            " return e ? (e.innerText || e.value || e.getAttribute('aria-label') || '') : ''; }"
        )
        if text in focused:
            return
    raise AssertionError(f"Tab never reached {text!r}")


def test_a_student_logs_in_and_enrolls_by_keyboard_alone(site: str) -> None:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            page = browser.new_page(viewport={"width": 390, "height": 844}, locale="en-US")
            page.goto(f"{site}/login?next=/terms/{OPEN}")
            page.wait_for_selector("main")
            # The username field has the focus on arrival (autofocus), else Tab finds it.
            for _ in range(20):
                if page.evaluate("() => document.activeElement.id") == "username":
                    break
                page.keyboard.press("Tab")
            page.keyboard.type("s2")
            page.keyboard.press("Tab")
            page.keyboard.type("password-123")
            page.keyboard.press("Enter")
            page.wait_for_url(f"{site}/terms/{OPEN}")

            _tab_to(page, "Add PHYS110-01 to cart")
            page.keyboard.press("Enter")
            page.wait_for_load_state()
            assert "PHYS110-01" in page.locator("#cart").inner_text()
            _tab_to(page, "Enroll in all 1")
            page.keyboard.press("Space")
            page.wait_for_url(f"{site}/terms/{OPEN}/results")
            assert page.locator('[data-outcome="enrolled"]').count() == 1
            _tab_to(page, "See my timetable")
            page.keyboard.press("Enter")
            page.wait_for_url(f"{site}/terms/{OPEN}/timetable")
            assert "PHYS110-01" in page.locator("table.week").inner_text()
            _shot(page, "timetable-phone")

            # The catalog's seats follow enrollments elsewhere without a reload.
            page.goto(f"{site}/terms/{OPEN}")
            seats = page.locator('[data-seats="CS101-01"]')
            assert seats.inner_text() == "30"
            with httpx.Client(base_url=site) as http:
                login = {"username": "s1", "password": "password-123"}
                token = http.post("/api/v1/auth/token", json=login).json()["access_token"]
                r = http.post(
                    f"/api/v1/terms/{OPEN}/enrollments",
                    json={"section_id": "CS101-01"},
                    headers={"Authorization": f"Bearer {token}"},
                )
                assert r.status_code == 201, r.text
            page.wait_for_function(
                "() => document.querySelector('[data-seats=\"CS101-01\"]').textContent === '29'",
                timeout=15_000,
            )
            assert page.url == f"{site}/terms/{OPEN}"
        finally:
            browser.close()


def test_without_server_sent_events_the_waiting_room_polls(site: str) -> None:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            page = browser.new_page(locale="en-US")
            page.add_init_script("delete window.EventSource;")  # an old browser, or a proxy
            page.goto(f"{site}/login?next=/terms/{BUSY}/queue")
            page.get_by_label("Username").fill("s2")
            page.get_by_label("Password").fill("password-123")
            page.get_by_role("button", name="Log in").click()
            page.wait_for_url(f"{site}/terms/{BUSY}/queue")
            page.get_by_role("button", name="Join the line").click()
            # Admitted within a tick; /status polling notices and moves on to the cart.
            page.wait_for_url(f"{site}/terms/{BUSY}#cart", timeout=20_000)
            token = page.locator('input[name="admission_token"]')
            assert token.count() == 0  # the cart is empty: no form, nothing to send yet
        finally:
            browser.close()
