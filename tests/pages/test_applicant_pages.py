"""The applicants' pages, in-process: sign-up and verification, the application form
(draft, documents, submit), the receipt and status, the Q&A board; each page's
accessibility, CSRF refusals and that no applicant ever sees another's application."""

from __future__ import annotations

import html
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from rushgate.composition import Container
from rushgate.config import Settings
from rushgate.domain.clock import FixedClock
from tests.fake_verifier import fake_verifier
from tests.http.admissions_api import ROUND, Admissions
from tests.http.api import Api
from tests.http.challenge_support import node, pow_answer
from tests.pages.a11y import problems
from tests.support import SECRET

PASSWORD = "applicant-pass-1"
PDF = b"%PDF-1.7\n" + bytes(range(256)) * 8
UPLOAD_LIMIT = 4096
EN = {"Accept-Language": "en"}
PERSONAL = {
    "name": "김하늘",
    "birth_date": "2011-03-14",
    "phone": "010-1234-5678",
    "guardian_name": "김보호",
    "guardian_phone": "010-8765-4321",
    "middle_school": "한빛중학교",
    "address": "서울특별시 중구 세종대로 110",
}


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=database_url,
        secret_key=SECRET,  # type: ignore[arg-type]
        password_hash_cost="low",
        data_dir=tmp_path / "data",
        admin_username=None,
        admin_password=None,
        max_body_bytes=256 * 1024,
        max_upload_bytes=UPLOAD_LIMIT,
        require_email_verification=True,
    )


@pytest.fixture
async def adm(client: httpx.AsyncClient, container: Container) -> Admissions:
    admissions = Admissions(Api(client), container)
    r = await admissions.create_round()
    assert r.status_code == 201, r.text
    return admissions


def browser(app: FastAPI) -> httpx.AsyncClient:
    """A browser of its own: its own cookie jar."""
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://rushgate.test", headers=EN
    )


@pytest.fixture
async def alice(app: FastAPI, adm: Admissions) -> AsyncIterator[httpx.AsyncClient]:
    async with browser(app) as b:
        await sign_up_and_log_in(b, adm, "alice@example.com")
        yield b


@pytest.fixture
async def bob(app: FastAPI, adm: Admissions) -> AsyncIterator[httpx.AsyncClient]:
    async with browser(app) as b:
        await sign_up_and_log_in(b, adm, "bob@example.com")
        yield b


async def sign_up_and_log_in(b: httpx.AsyncClient, adm: Admissions, email: str) -> None:
    r = await b.post("/signup", data={"email": email, "password": PASSWORD, "name": "지원자"})
    assert r.status_code == 303, r.text
    token = await adm.verification_token(email)
    assert (await b.get("/verify", params={"token": token})).status_code == 200
    r = await b.post("/login", data={"username": email, "password": PASSWORD})
    assert r.headers["location"] == "/apply"


def csrf(b: httpx.AsyncClient) -> str:
    return str(b.cookies["rg_csrf"])


def form(b: httpx.AsyncClient, **fields: str) -> dict[str, str]:
    return {"csrf_token": csrf(b), "track": "general", **PERSONAL, "consent": "yes", **fields}


async def upload(
    b: httpx.AsyncClient,
    content: bytes = PDF,
    name: str = "transcript.pdf",
    content_type: str = "application/pdf",
    *,
    token: str | None = None,
) -> httpx.Response:
    return await b.post(
        f"/apply/{ROUND}/documents",
        data={"csrf_token": csrf(b) if token is None else token, "kind": "transcript"},
        files={"file": (name, content, content_type)},
    )


def error_of(html: str, field: str) -> str:
    """The error text shown next to a field, and checks it is tied to the input."""
    match = re.search(rf'<p class="field-error" id="f-{field}-error">([^<]*)</p>', html)
    assert match is not None, f"no error next to {field}"
    tag = re.search(rf'<input id="f-{field}"[^>]*>', html) or re.search(
        rf'<textarea id="f-{field}"[^>]*>', html
    )
    assert tag is not None
    assert 'aria-invalid="true"' in tag[0]
    assert f"f-{field}-error" in tag[0]
    return match[1]


# --------------------------------------------------------------------------- sign-up


async def test_sign_up_sends_a_mail_whose_link_verifies_on_a_page(
    app: FastAPI, adm: Admissions
) -> None:
    async with browser(app) as b:
        page = await b.get("/signup")
        assert page.status_code == 200
        for attribute in ('type="email"', "required", 'minlength="', 'autocomplete="new-password"'):
            assert attribute in page.text
        r = await b.post(
            "/signup", data={"email": "New@Example.com", "password": PASSWORD, "name": "새 지원자"}
        )
        assert r.status_code == 303
        assert r.headers["location"] == "/signup/sent"
        sent = await b.get("/signup/sent")
        assert "We sent you an email" in sent.text
        [mail] = await adm.outbox("applicant.verify_email")
        assert mail["username"] == "new@example.com"
        link = mail["payload"]["verify_url"]
        assert "/verify?token=" in link
        assert "/api/" not in link
        token = link.split("token=", 1)[1]
        done = await b.get("/verify", params={"token": token})
        assert done.status_code == 200
        assert "Your email address is confirmed." in done.text
        assert (await b.get("/verify", params={"token": token})).status_code == 200  # again
        bad = await b.get("/verify", params={"token": token[:-3] + "xyz"})
        assert bad.status_code == 400
        assert "invalid or has expired" in bad.text
        assert (await b.get("/verify")).status_code == 400


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"email": "not-an-email"}, "email", "Enter a valid email address."),
        ({"password": "short"}, "password", "Choose a longer"),
        ({"password": "alice@example.com"}, "password", "Choose a longer"),
        ({"name": "   "}, "name", "Enter 1 to 50 characters."),
        ({"name": "x" * 51}, "name", "Enter 1 to 50 characters."),
    ],
)
async def test_a_refused_sign_up_shows_each_error_next_to_its_field(
    app: FastAPI, adm: Admissions, fields: dict[str, str], field: str, message: str
) -> None:
    body = {"email": "alice@example.com", "password": PASSWORD, "name": "지원자", **fields}
    async with browser(app) as b:
        r = await b.post("/signup", data=body)
    assert r.status_code == 422
    assert message in error_of(r.text, field)
    assert 'role="alert"' in r.text
    assert problems(r.text) == []
    if field != "email":
        assert f'value="{body["email"]}"' in r.text  # what was typed is kept
    assert PASSWORD not in r.text  # but never the password
    assert await adm.outbox("applicant.verify_email") == []


async def test_a_taken_email_says_so_and_a_foreign_post_is_refused(
    app: FastAPI, adm: Admissions
) -> None:
    body = {"email": "alice@example.com", "password": PASSWORD, "name": "지원자"}
    async with browser(app) as b:
        assert (await b.post("/signup", data=body)).status_code == 303
        again = await b.post("/signup", data=body)
        assert again.status_code == 409
        assert "already has an account" in error_of(again.text, "email")
        foreign = await b.post(
            "/signup",
            data={**body, "email": "mallory@example.com"},
            headers={"Origin": "https://evil.example"},
        )
        assert foreign.status_code == 403
    assert [m["username"] for m in await adm.outbox("applicant.verify_email")] == [
        "alice@example.com"
    ]


async def test_with_a_proof_of_work_configured_sign_up_needs_the_solved_puzzle(
    settings: Settings, clock: FixedClock
) -> None:
    async with node(settings, clock, challenge="pow", pow_difficulty=8) as n:
        b = n.client()
        b.headers.update(EN)
        page = await b.get("/signup")
        assert problems(page.text) == []
        assert re.search(r'<script src="/static/pow\.[0-9a-f]{10}\.js" defer>', page.text)
        assert re.search(r'<script src="/static/applicant-signup\.[0-9a-f]{10}\.js"', page.text)
        body = {"email": "bot@example.com", "password": PASSWORD, "name": "지원자"}
        unsolved = await b.post("/signup", data={**body, "challenge": ""})
        assert unsolved.status_code == 403
        assert "A security check is needed" in unsolved.text
        assert 'value="bot@example.com"' in unsolved.text
        forged = await b.post("/signup", data={**body, "challenge": "x.1"})
        assert forged.status_code == 403
        assert "The security check failed" in forged.text
        [puzzle] = re.findall(r'data-puzzle="([^"]*)"', forged.text)  # a fresh one
        answer = pow_answer({"kind": "pow", "params": json.loads(html.unescape(puzzle))})
        solved = await b.post("/signup", data={**body, "challenge": answer})
        assert solved.status_code == 303, solved.text
        replayed = await b.post(
            "/signup", data={**body, "email": "bot2@example.com", "challenge": answer}
        )
        assert replayed.status_code == 403


@pytest.mark.parametrize(
    ("kind", "origin", "script", "field"),
    [
        (
            "turnstile",
            "https://challenges.cloudflare.com",
            "https://challenges.cloudflare.com/turnstile/v0/api.js",
            "challenge",  # the widget is told to use this name
        ),
        (
            "hcaptcha",
            "https://*.hcaptcha.com",
            "https://js.hcaptcha.com/1/api.js",
            "h-captcha-response",
        ),
    ],
)
async def test_with_a_captcha_configured_the_sign_up_page_shows_its_widget(
    settings: Settings, clock: FixedClock, kind: str, origin: str, script: str, field: str
) -> None:
    with fake_verifier(kind) as fake:
        captcha = {
            "challenge": kind,
            "challenge_site_key": fake.site_key,
            "challenge_secret_key": fake.secret,
            "challenge_verify_url": fake.url,
            "challenge_timeout_seconds": 2,
        }
        async with node(settings, clock, **captcha) as n:
            b = n.client()
            page = await b.get("/signup")
            assert problems(page.text) == []
            assert f'data-sitekey="{fake.site_key}"' in page.text
            assert f'<script src="{script}" async defer>' in page.text
            policy = page.headers["content-security-policy"]
            assert "script-src 'self' " in policy
            assert origin in policy
            assert "unsafe-inline" not in policy
            other = await b.get("/login")  # only the sign-up page allows the provider
            assert origin not in other.headers["content-security-policy"]
            body = {"email": "human@example.com", "password": PASSWORD, "name": "지원자"}
            assert (await b.post("/signup", data=body)).status_code == 403
            solved = await b.post("/signup", data={**body, field: fake.issue("signup")})
            assert solved.status_code == 303, solved.text


async def test_the_sign_up_page_spends_the_sign_up_budget_as_the_api_does(
    settings: Settings, clock: FixedClock
) -> None:
    # Sign-ups: 100 at once per address by default; scaled by 0.01, one.
    async with node(settings, clock, rate_limit_scale=0.01) as n:
        b = n.client("203.0.113.7")
        body = {"email": "one@example.com", "password": PASSWORD, "name": "지원자"}
        assert (await b.post("/signup", data=body)).status_code == 303
        again = await b.post("/signup", data={**body, "email": "two@example.com"})
        assert again.status_code == 429
        assert int(again.headers["retry-after"]) >= 1
        api = await b.post("/api/v1/applicants", json={**body, "email": "three@example.com"})
        assert api.status_code == 429  # one budget for both ways in


# --------------------------------------------------------------------------- the form


async def test_the_form_saves_a_draft_uploads_a_document_and_submits_to_a_receipt(
    alice: httpx.AsyncClient,
) -> None:
    home = await alice.get("/apply")
    assert home.status_code == 200
    # The round open now is listed, with a link to its form.
    assert f'<a href="/apply/{ROUND}">2027학년도 신입생 모집</a>' in home.text
    opened = await alice.get("/apply", params={"round": ROUND})
    assert opened.headers["location"] == f"/apply/{ROUND}"
    page = await alice.get(f"/apply/{ROUND}")
    assert page.status_code == 200
    assert "Save your draft first" in page.text  # no upload before a draft exists

    saved = await alice.post(f"/apply/{ROUND}", data=form(alice, statement="과학을 좋아합니다."))
    assert saved.status_code == 303
    page = await alice.get(saved.headers["location"])
    assert "Your draft is saved." in page.text
    assert 'value="01012345678"' in page.text  # phone numbers come back opened
    assert "과학을 좋아합니다." in page.text
    assert 'id="upload-form"' in page.text

    r = await upload(alice)
    assert r.status_code == 303, r.text
    page = await alice.get(r.headers["location"])
    assert "The document is uploaded." in page.text
    assert "transcript.pdf" in page.text
    [doc_id] = re.findall(r"/documents/(\d+)/delete", page.text)
    download = await alice.get(f"/api/v1/admissions/{ROUND}/application/documents/{doc_id}")
    assert download.content == PDF

    submitted = await alice.post(f"/apply/{ROUND}/submit", data={"csrf_token": csrf(alice)})
    assert submitted.status_code == 303
    assert submitted.headers["location"] == f"/apply/{ROUND}/receipt"
    receipt = await alice.get(submitted.headers["location"])
    assert receipt.status_code == 200
    assert re.search(r'<dd class="receipt-number">2027-A-\d{6}</dd>', receipt.text)
    assert "일반전형" in receipt.text  # the track by its name
    assert "transcript: transcript.pdf" in receipt.text
    assert "(KST)" in receipt.text

    status = await alice.get(f"/apply/{ROUND}/status")
    assert status.status_code == 200
    assert "Submitted" in status.text
    assert status.text.count("<td>You</td>") == 2  # saved, submitted


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"phone": "12"}, "phone", "9 to 15 digits"),
        ({"guardian_phone": "call me"}, "guardian_phone", "9 to 15 digits"),
        ({"birth_date": "2011-02-30"}, "birth_date", "Enter a real date"),
        ({"name": ""}, "name", "Enter 1 to 50 characters."),
        ({"statement": "x" * 10_001}, "statement", "Too long"),
    ],
)
async def test_a_refused_draft_shows_each_error_next_to_its_field(
    alice: httpx.AsyncClient, fields: dict[str, str], field: str, message: str
) -> None:
    r = await alice.post(f"/apply/{ROUND}", data=form(alice, **fields))
    assert r.status_code == 422
    assert message in error_of(r.text, field)
    assert "Please check the fields marked below." in r.text
    assert problems(r.text) == []
    assert 'value="한빛중학교"' in r.text  # the rest of what was typed is kept
    missing = await alice.get(f"/api/v1/admissions/{ROUND}/application")
    assert missing.status_code == 404  # nothing was saved


async def test_an_unknown_track_is_refused_and_an_incomplete_draft_cannot_be_submitted(
    alice: httpx.AsyncClient,
) -> None:
    r = await alice.post(f"/apply/{ROUND}", data=form(alice, track="nope"))
    assert r.status_code == 422
    assert 'id="f-track-error"' in r.text
    partial = {"csrf_token": csrf(alice), "statement": "아직 작성 중"}
    assert (await alice.post(f"/apply/{ROUND}", data=partial)).status_code == 303
    r = await alice.post(f"/apply/{ROUND}/submit", data={"csrf_token": csrf(alice)})
    assert r.status_code == 422
    assert "Fill in the fields marked below" in r.text
    assert 'id="f-track-error"' in r.text
    assert 'id="f-consent-error"' in r.text
    assert problems(r.text) == []
    assert (await alice.get(f"/apply/{ROUND}/receipt")).status_code == 404


@pytest.mark.parametrize(
    ("content", "name", "content_type", "status", "message"),
    [
        (b"%PDF-" + b"x" * UPLOAD_LIMIT, "big.pdf", "application/pdf", 413, "too large"),
        (b"MZ\x90\x00 not a document", "tool.exe", "application/pdf", 415, "Only PDF, JPEG"),
        (PDF, "transcript.png", "image/png", 415, "Only PDF, JPEG"),
        (b"", "empty.pdf", "application/pdf", 415, "Only PDF, JPEG"),
    ],
)
async def test_a_refused_upload_says_why_and_keeps_nothing(
    alice: httpx.AsyncClient,
    content: bytes,
    name: str,
    content_type: str,
    status: int,
    message: str,
) -> None:
    assert (await alice.post(f"/apply/{ROUND}", data=form(alice))).status_code == 303
    r = await upload(alice, content, name, content_type)
    assert r.status_code == status
    alert = re.search(r'<p class="alert" role="alert" id="upload-error">([^<]*)</p>', r.text)
    assert alert is not None
    assert message in alert[1]
    assert problems(r.text) == []
    listed = await alice.get(f"/api/v1/admissions/{ROUND}/application/documents")
    assert listed.json() == []


async def test_an_upload_without_a_file_asks_for_one(alice: httpx.AsyncClient) -> None:
    assert (await alice.post(f"/apply/{ROUND}", data=form(alice))).status_code == 303
    r = await upload(alice, b"", "", "application/octet-stream")
    assert r.status_code == 422
    assert "Choose a file to upload." in r.text


async def test_deleting_a_document_asks_first(alice: httpx.AsyncClient) -> None:
    assert (await alice.post(f"/apply/{ROUND}", data=form(alice))).status_code == 303
    assert (await upload(alice)).status_code == 303
    [doc] = (await alice.get(f"/api/v1/admissions/{ROUND}/application/documents")).json()
    ask = await alice.get(f"/apply/{ROUND}/documents/{doc['id']}/delete")
    assert ask.status_code == 200
    assert "Delete transcript.pdf?" in ask.text
    assert problems(ask.text) == []
    r = await alice.post(
        f"/apply/{ROUND}/documents/{doc['id']}/delete", data={"csrf_token": csrf(alice)}
    )
    assert r.status_code == 303
    assert "The document is deleted." in (await alice.get(r.headers["location"])).text
    assert (await alice.get(f"/api/v1/admissions/{ROUND}/application/documents")).json() == []


async def test_an_unverified_applicant_cannot_submit_yet(app: FastAPI, adm: Admissions) -> None:
    async with browser(app) as b:
        body = {"email": "carol@example.com", "password": PASSWORD, "name": "지원자"}
        assert (await b.post("/signup", data=body)).status_code == 303
        await b.post("/login", data={"username": body["email"], "password": PASSWORD})
        assert "not confirmed yet" in (await b.get("/apply")).text
        assert (await b.post(f"/apply/{ROUND}", data=form(b))).status_code == 303
        r = await b.post(f"/apply/{ROUND}/submit", data={"csrf_token": csrf(b)})
        assert r.status_code == 403
        assert "Confirm your email address first" in r.text


async def test_pages_need_an_applicant_and_an_existing_round(
    app: FastAPI, adm: Admissions, alice: httpx.AsyncClient
) -> None:
    async with browser(app) as anonymous:
        r = await anonymous.get(f"/apply/{ROUND}")
        assert r.status_code == 303
        assert r.headers["location"] == f"/login?next=%2Fapply%2F{ROUND}"
    async with browser(app) as admin:
        await admin.post("/login", data={"username": "admin", "password": "admin-password"})
        assert (await admin.get("/apply")).status_code == 403
    missing = await alice.get("/apply/no-such-round")
    assert missing.status_code == 404
    assert problems(missing.text) == []
    bad = await alice.get("/apply", params={"round": "../../etc"})
    assert bad.status_code == 422


# --------------------------------------------------------------------------- Q&A


async def test_the_board_lists_questions_takes_new_ones_and_shows_answers(
    alice: httpx.AsyncClient, bob: httpx.AsyncClient, adm: Admissions
) -> None:
    board = await alice.get(f"/apply/{ROUND}/questions")
    assert board.status_code == 200
    assert "No questions yet." in board.text
    r = await alice.post(
        f"/apply/{ROUND}/questions",
        data={"csrf_token": csrf(alice), "title": "면접이 있나요?", "body": "궁금합니다."},
    )
    assert r.status_code == 303
    board = await alice.get(r.headers["location"])
    assert "Your question is posted." in board.text
    [qid] = re.findall(rf"/apply/{ROUND}/questions/(\d+)", board.text)
    assert "Private" in board.text  # unticked: private
    assert "면접이 있나요?" not in (await bob.get(f"/apply/{ROUND}/questions")).text
    assert (await bob.get(f"/apply/{ROUND}/questions/{qid}")).status_code == 404

    answered = await adm.client.post(
        f"/api/v1/admin/admissions/{ROUND}/questions/{qid}/answer",
        json={"body": "네, 있습니다."},
        headers=await adm.api.admin(),
    )
    assert answered.status_code in (200, 201), answered.text
    view = await alice.get(f"/apply/{ROUND}/questions/{qid}")
    assert "네, 있습니다." in view.text
    assert problems(view.text) == []

    empty = await alice.post(
        f"/apply/{ROUND}/questions", data={"csrf_token": csrf(alice), "title": "", "body": ""}
    )
    assert empty.status_code == 422
    assert error_of(empty.text, "title")
    assert error_of(empty.text, "body")


# --------------------------------------------------------------------------- every page


async def test_every_applicant_page_passes_the_checks(alice: httpx.AsyncClient) -> None:
    assert (await alice.post(f"/apply/{ROUND}", data=form(alice))).status_code == 303
    assert (await upload(alice)).status_code == 303
    await alice.post(
        f"/apply/{ROUND}/questions",
        data={"csrf_token": csrf(alice), "title": "질문", "body": "내용", "public": "yes"},
    )
    [doc] = (await alice.get(f"/api/v1/admissions/{ROUND}/application/documents")).json()
    board = (await alice.get(f"/apply/{ROUND}/questions")).text
    [qid] = re.findall(rf"/apply/{ROUND}/questions/(\d+)", board)
    before = ["/apply", f"/apply/{ROUND}", f"/apply/{ROUND}/status"]
    before += [f"/apply/{ROUND}/documents/{doc['id']}/delete", f"/apply/{ROUND}/questions"]
    before += [f"/apply/{ROUND}/questions/{qid}", "/signup", "/signup/sent", "/verify?token=x"]
    for path in before:
        for language in ("ko", "en"):
            r = await alice.get(path, headers={"Accept-Language": language})
            assert r.status_code in (200, 400), (path, r.status_code)
            assert problems(r.text) == [], path
            assert "applicant." not in r.text.replace("applicant-", ""), path  # no raw keys
    assert (
        await alice.post(f"/apply/{ROUND}/submit", data={"csrf_token": csrf(alice)})
    ).is_redirect
    for language in ("ko", "en"):
        r = await alice.get(f"/apply/{ROUND}/receipt", headers={"Accept-Language": language})
        assert problems(r.text) == []
        assert "applicant." not in r.text.replace("applicant-", "")


async def test_every_post_without_the_sessions_csrf_token_is_refused(
    alice: httpx.AsyncClient, bob: httpx.AsyncClient
) -> None:
    assert (await alice.post(f"/apply/{ROUND}", data=form(alice))).status_code == 303
    assert (await upload(alice)).status_code == 303
    [doc] = (await alice.get(f"/api/v1/admissions/{ROUND}/application/documents")).json()
    posts = [
        (f"/apply/{ROUND}", form(alice, statement="위조")),
        (f"/apply/{ROUND}/submit", {}),
        (f"/apply/{ROUND}/documents/{doc['id']}/delete", {}),
        (f"/apply/{ROUND}/questions", {"title": "위조", "body": "위조"}),
    ]
    for token in (None, "", csrf(bob)):  # none, empty, another session's
        for path, data in posts:
            fields = {k: v for k, v in data.items() if k != "csrf_token"}
            if token is not None:
                fields["csrf_token"] = token
            r = await alice.post(path, data=fields)
            assert r.status_code == 403, (path, token)
            assert "another site" in r.text
        r = await upload(alice, token=token or "")
        assert r.status_code == 403
    foreign = await alice.post(
        f"/apply/{ROUND}", data=form(alice), headers={"Origin": "https://evil.example"}
    )
    assert foreign.status_code == 403
    application = (await alice.get(f"/api/v1/admissions/{ROUND}/application")).json()
    assert application["status"] == "draft"
    assert "위조" not in application["statement"]
    documents = (await alice.get(f"/api/v1/admissions/{ROUND}/application/documents")).json()
    assert len(documents) == 1
    board = await alice.get(f"/apply/{ROUND}/questions")
    assert "위조" not in board.text


async def test_no_applicant_sees_anothers_application_or_documents(
    alice: httpx.AsyncClient, bob: httpx.AsyncClient
) -> None:
    saved = await alice.post(f"/apply/{ROUND}", data=form(alice, statement="앨리스의 글"))
    assert saved.status_code == 303
    assert (await upload(alice, name="alice-secret.pdf")).status_code == 303
    await alice.post(f"/apply/{ROUND}/submit", data={"csrf_token": csrf(alice)})
    [doc] = (await alice.get(f"/api/v1/admissions/{ROUND}/application/documents")).json()
    for path in (
        f"/apply/{ROUND}",
        f"/apply/{ROUND}/receipt",
        f"/apply/{ROUND}/status",
        f"/apply/{ROUND}/documents/{doc['id']}/delete",
    ):
        r = await bob.get(path)
        for secret in ("앨리스의 글", "alice-secret.pdf", "01012345678", "alice@example.com"):
            assert secret not in r.text, (path, secret)
    assert (await bob.get(f"/apply/{ROUND}/receipt")).status_code == 404
    assert (await bob.get(f"/apply/{ROUND}/documents/{doc['id']}/delete")).status_code == 404
    r = await bob.post(
        f"/apply/{ROUND}/documents/{doc['id']}/delete", data={"csrf_token": csrf(bob)}
    )
    assert r.status_code == 404
    still = await alice.get(f"/api/v1/admissions/{ROUND}/application/documents")
    assert len(still.json()) == 1
