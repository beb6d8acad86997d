"""In a real browser: an applicant signs up, confirms the address from the mailed link,
fills in the application, uploads a PDF, submits and sees the receipt; and the form can be
filled in and saved with the keyboard alone. Debian's chromium driven by Playwright, the
app served by a real uvicorn on a thread."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import uvicorn
from playwright.sync_api import Page, sync_playwright

from rushgate.config import Settings
from rushgate.domain.admissions import AdmissionRound, FilingWindow, Track
from rushgate.http.app import create_app
from tests.serverproc import free_port
from tests.support import SECRET, require_service, sqlite_database

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
ROUND = "hs-2027"
PASSWORD = "applicant-pass-1"
PDF = b"%PDF-1.7\n" + b"1 0 obj << /Type /Catalog >> endobj\n" * 40 + b"%%EOF\n"


@dataclass(frozen=True)
class Site:
    url: str
    database: Path


async def _prepare(settings: Settings) -> None:
    """A round open now, made through the service (as an admin would)."""
    app = create_app(settings)
    container = app.state.container
    now = datetime.now(UTC)
    try:
        await container.admissions.create_round(
            AdmissionRound(
                code=ROUND,
                name="2027 Freshman Admission",
                window=FilingWindow(now - timedelta(hours=1), now + timedelta(days=1)),
                tracks=(Track("general", "General", 200), Track("arts", "Arts", 20)),
                required_documents=("transcript",),
                receipt_prefix="2027-A",
            )
        )
    finally:
        await container.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    if not CHROMIUM.exists():
        require_service("chromium", "not installed (sudo ./scripts/ensure-services chromium)")
    folder = tmp_path_factory.mktemp("applicant-e2e")
    url = sqlite_database(folder)
    port = free_port()
    settings = Settings(
        database_url=url,
        secret_key=SECRET,  # type: ignore[arg-type]
        password_hash_cost="low",
        data_dir=folder / "data",
        admin_username=None,
        admin_password=None,
        public_url=f"http://127.0.0.1:{port}",  # the Origin the browser sends
        require_email_verification=True,
    )
    asyncio.run(_prepare(settings))
    app = create_app(settings)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False)
    )
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the server did not start")
        time.sleep(0.02)
    try:
        yield Site(f"http://127.0.0.1:{port}", folder / "rushgate.sqlite3")
    finally:
        server.should_exit = True
        thread.join(20)


def verification_link(site: Site, email: str) -> str:
    """The link of the mail sign-up queued (the outbox row the mailer delivers)."""
    with sqlite3.connect(site.database) as db:
        rows = db.execute(
            "SELECT o.payload FROM outbox o JOIN users u ON u.id = o.user_id "
            "WHERE o.kind = 'applicant.verify_email' AND u.username = ?",
            (email,),
        ).fetchall()
    assert len(rows) == 1, rows
    link: str = json.loads(rows[0][0])["verify_url"]
    return link


def sign_up(page: Page, site: Site, email: str, name: str) -> None:
    page.goto(f"{site.url}/signup")
    page.fill("#f-email", email)
    page.fill("#f-password", PASSWORD)
    page.fill("#f-name", name)
    page.click("button[type=submit] >> text=Sign up")
    page.wait_for_url("**/signup/sent")
    assert "We sent you an email" in page.inner_text("main")
    page.goto(verification_link(site, email))
    assert "Your email address is confirmed." in page.inner_text("main")
    page.goto(f"{site.url}/login?next=/apply")
    page.fill("#username", email)
    page.fill("#password", PASSWORD)
    page.click("main button[type=submit]")
    page.wait_for_url("**/apply")


@pytest.fixture
def page(site: Site) -> Iterator[Page]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-US")
            context.set_default_timeout(15_000)
            yield context.new_page()
        finally:
            browser.close()


def test_an_applicant_signs_up_applies_uploads_and_gets_a_receipt(
    site: Site, page: Page, tmp_path: Path
) -> None:
    problems: list[str] = []  # script errors (a CSP refusal among them) and failed loads
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on(
        "response",
        lambda r: (
            problems.append(f"{r.status} {r.url}")
            if r.status >= 400 and not r.url.endswith("/favicon.ico")
            else None
        ),
    )
    page.on(
        "console",
        lambda m: (
            problems.append(m.text)
            if m.type == "error" and "Failed to load resource" not in m.text
            else None
        ),
    )
    page.set_viewport_size({"width": 390, "height": 844})  # mobile first: a phone
    page.goto(f"{site.url}/signup")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "applicant-signup.png"))
    page.set_viewport_size({"width": 1280, "height": 800})
    sign_up(page, site, "haneul@example.com", "Kim Haneul")
    page.screenshot(path=str(SHOTS / "applicant-home.png"))

    page.fill("#round-code", ROUND)
    page.click("main button[type=submit]")
    page.wait_for_url(f"**/apply/{ROUND}")
    page.check("#f-track-general")
    for field, value in {
        "name": "Kim Haneul",
        "birth_date": "2011-03-14",
        "phone": "010-1234-5678",
        "guardian_name": "Kim Boho",
        "guardian_phone": "010-8765-4321",
        "middle_school": "Hanbit Middle School",
        "address": "110 Sejong-daero, Jung-gu, Seoul",
    }.items():
        page.fill(f"#f-{field}", value)
    page.fill("#f-statement", "I like science, and I would like to study it here.")
    page.check("#f-consent")
    page.click("text=Save draft")
    page.wait_for_selector("text=Your draft is saved.")

    pdf = tmp_path / "transcript.pdf"
    pdf.write_bytes(PDF)
    page.select_option("#f-kind", "transcript")
    page.set_input_files("#f-file", str(pdf))
    page.click("#upload-form button[type=submit]")
    page.wait_for_selector("text=The document is uploaded.")
    assert page.is_visible("#documents >> text=transcript.pdf")
    page.screenshot(path=str(SHOTS / "applicant-form.png"), full_page=True)

    page.once("dialog", lambda dialog: dialog.accept())  # "Submit your application now?"
    page.click("text=Submit application")
    page.wait_for_url(f"**/apply/{ROUND}/receipt")
    number = page.inner_text(".receipt-number")
    assert number.startswith("2027-A-")
    assert "transcript: transcript.pdf" in page.inner_text(".receipt")
    assert page.is_visible("#print-receipt")  # the script shows the print button
    page.screenshot(path=str(SHOTS / "applicant-receipt.png"))
    page.emulate_media(media="print")
    assert not page.is_visible("header.top")  # printed: the receipt alone
    page.emulate_media(media="screen")

    page.goto(f"{site.url}/apply/{ROUND}/status")
    assert "Submitted" in page.inner_text("table")
    page.screenshot(path=str(SHOTS / "applicant-status.png"))
    assert problems == []


def tab_to(page: Page, element_id: str, limit: int = 60) -> None:
    """Press Tab until the element with ``element_id`` has the focus."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement && document.activeElement.id") == element_id:
            return
    raise AssertionError(f"Tab never reached #{element_id}")


def test_the_form_works_with_the_keyboard_alone(site: Site, page: Page) -> None:
    sign_up(page, site, "keys@example.com", "이키보")  # Hangul typed as it is
    page.goto(f"{site.url}/apply/{ROUND}")
    # The skip link comes first and moves past the menus.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip"
    page.keyboard.press("Enter")
    tab_to(page, "f-track-general")
    page.keyboard.press("ArrowDown")  # radios move with the arrows
    assert page.is_checked("#f-track-arts")
    for field, value in (
        ("f-name", "이키보"),
        ("f-birth_date", "03142011"),  # the date field's own segments: mm dd yyyy (en-US)
        ("f-phone", "010-2222-3333"),
        ("f-guardian_name", "이보호"),
        ("f-guardian_phone", "010-4444-5555"),
        ("f-middle_school", "한빛중학교"),
        ("f-address", "부산광역시 해운대구 1"),
        ("f-statement", "키보드로 작성했습니다."),
    ):
        tab_to(page, field)
        page.keyboard.type(value)
    tab_to(page, "f-consent")
    page.keyboard.press("Space")
    assert page.is_checked("#f-consent")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent.trim()") == "Save draft"
    page.keyboard.press("Enter")
    page.wait_for_selector("text=Your draft is saved.")
    assert page.input_value("#f-name") == "이키보"
    assert page.is_checked("#f-track-arts")
