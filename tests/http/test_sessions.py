"""Cookie sessions for the browser UI: the cookies' attributes, CSRF on changes, Origin,
logging out, and bearer requests left as they were."""

from __future__ import annotations

from collections.abc import AsyncIterator
from http.cookies import SimpleCookie
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from rushgate.config import Settings
from rushgate.domain.clock import FixedClock
from rushgate.http.app import create_app
from tests.http.api import ADMIN, Api, assert_problem, term_json
from tests.support import SECRET

SESSION = "/api/v1/auth/session"
SITE = "http://127.0.0.1:8000"  # the default RUSHGATE_PUBLIC_URL: the site's origin
CREDENTIALS = {"username": ADMIN[0], "password": ADMIN[1]}


@pytest.fixture
def backend() -> str:
    """Sessions do not depend on the database engine: SQLite only."""
    return "sqlite"


def set_cookies(response: httpx.Response) -> dict[str, dict[str, str | bool]]:
    """Every Set-Cookie of a response: name -> its value and attributes."""
    found: dict[str, dict[str, str | bool]] = {}
    for header in response.headers.get_list("set-cookie"):
        parsed = SimpleCookie()
        parsed.load(header)
        for name, morsel in parsed.items():
            attributes: dict[str, str | bool] = {"value": morsel.value}
            attributes |= {k: v for k, v in morsel.items() if v}
            found[name] = attributes
    return found


async def open_session(client: httpx.AsyncClient) -> tuple[str, str]:
    """(session token, CSRF token); the client keeps the cookies."""
    r = await client.post(SESSION, json=CREDENTIALS)
    assert r.status_code == 200, r.text
    cookies = set_cookies(r)
    name = "__Host-rg_session" if "__Host-rg_session" in cookies else "rg_session"
    return str(cookies[name]["value"]), r.json()["csrf_token"]


async def test_cookies_over_http(client: httpx.AsyncClient) -> None:
    r = await client.post(SESSION, json=CREDENTIALS)
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    body = r.json()
    assert body["expires_in"] == 4 * 3600
    cookies = set_cookies(r)
    assert set(cookies) == {"rg_session", "rg_csrf"}
    session, csrf = cookies["rg_session"], cookies["rg_csrf"]
    assert session["httponly"] is True
    assert "secure" not in session  # http: a Secure cookie would never come back
    assert (session["samesite"], session["path"], session["max-age"]) == ("lax", "/", "14400")
    # The CSRF cookie is for the page's script: readable, and the token of the answer.
    assert "httponly" not in csrf
    assert (csrf["samesite"], csrf["path"], csrf["max-age"]) == ("lax", "/", "14400")
    assert csrf["value"] == body["csrf_token"]
    # The session cookie holds the same kind of token as POST /auth/token.
    token = str(session["value"])
    assert (await client.get("/api/v1/admin/audit", headers=bearer(token))).status_code == 200


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def https_client(
    database_url: str, tmp_path: Path, clock: FixedClock
) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        database_url=database_url,
        secret_key=SECRET,
        password_hash_cost="low",
        data_dir=tmp_path / "https-data",
        public_url="https://rushgate.test",
    )
    app: FastAPI = create_app(settings, clock=clock)
    await app.state.container.registry.ensure_admin(*ADMIN)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://rushgate.test") as c:
        yield c
    await app.state.container.close()


async def test_cookies_over_https(https_client: httpx.AsyncClient) -> None:
    r = await https_client.post(SESSION, json=CREDENTIALS)
    assert r.status_code == 200, r.text
    cookies = set_cookies(r)
    assert set(cookies) == {"__Host-rg_session", "__Host-rg_csrf"}
    for name in cookies:
        # What the __Host- prefix demands: Secure, Path=/ and no Domain.
        assert cookies[name]["secure"] is True
        assert cookies[name]["path"] == "/"
        assert "domain" not in cookies[name]
    assert cookies["__Host-rg_session"]["httponly"] is True
    assert "httponly" not in cookies["__Host-rg_csrf"]
    # The browser (here httpx's cookie jar) sends them back over https, and they work.
    r = await https_client.post(
        "/api/v1/admin/terms",
        json=term_json(),
        headers={"X-CSRF-Token": r.json()["csrf_token"], "Origin": "https://rushgate.test"},
    )
    assert r.status_code == 201, r.text


async def test_cookie_authenticates_a_read(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/api/v1/admin/audit"), 401, "unauthorized")
    await open_session(client)
    assert (await client.get("/api/v1/admin/audit")).status_code == 200


async def test_a_change_needs_the_csrf_token(client: httpx.AsyncClient) -> None:
    _, csrf = await open_session(client)
    missing = await client.post("/api/v1/admin/terms", json=term_json())
    assert_problem(missing, 403, "csrf_failed")
    wrong = await client.post(
        "/api/v1/admin/terms", json=term_json(), headers={"X-CSRF-Token": csrf[:-2] + "xx"}
    )
    assert_problem(wrong, 403, "csrf_failed")
    # Refused before anything was done: no change was made (none is logged).
    assert (await client.get("/api/v1/admin/audit")).json()["items"] == []
    right = await client.post(
        "/api/v1/admin/terms", json=term_json(), headers={"X-CSRF-Token": csrf}
    )
    assert right.status_code == 201, right.text


async def test_the_csrf_token_of_another_session_is_refused(client: httpx.AsyncClient) -> None:
    first_session, first_csrf = await open_session(client)
    second_session, second_csrf = await open_session(client)
    assert first_session != second_session
    assert first_csrf != second_csrf
    client.cookies.clear()
    client.cookies.set("rg_session", first_session)
    r = await client.post(
        "/api/v1/admin/terms", json=term_json(), headers={"X-CSRF-Token": second_csrf}
    )
    assert_problem(r, 403, "csrf_failed")
    r = await client.post(
        "/api/v1/admin/terms", json=term_json(), headers={"X-CSRF-Token": first_csrf}
    )
    assert r.status_code == 201, r.text


async def test_a_form_field_carries_the_token(client: httpx.AsyncClient) -> None:
    """Server-rendered forms send it as ``csrf_token``: honoured in a form body."""
    _, csrf = await open_session(client)
    wrong = await client.post("/api/v1/admin/terms", data={"csrf_token": "not-it"})
    assert_problem(wrong, 403, "csrf_failed")
    # Past the CSRF check; this route then wants JSON, which a form is not.
    right = await client.post("/api/v1/admin/terms", data={"csrf_token": csrf})
    assert right.status_code == 422, right.text
    assert right.json()["code"] == "validation_error"


async def test_logout_clears_both_cookies(client: httpx.AsyncClient) -> None:
    await open_session(client)
    assert (await client.get("/api/v1/admin/audit")).status_code == 200
    r = await client.delete(SESSION)
    assert r.status_code == 204
    cookies = set_cookies(r)
    assert set(cookies) == {"rg_session", "rg_csrf"}
    assert all(c["max-age"] == "0" and c["value"] == "" for c in cookies.values())
    assert_problem(await client.get("/api/v1/admin/audit"), 401, "unauthorized")


@pytest.mark.parametrize("origin", ["https://evil.example", "http://127.0.0.1:8001", "null"])
async def test_a_cross_origin_change_is_refused(client: httpx.AsyncClient, origin: str) -> None:
    _, csrf = await open_session(client)
    r = await client.post(
        "/api/v1/admin/terms",
        json=term_json(),
        headers={"X-CSRF-Token": csrf, "Origin": origin},
    )
    assert_problem(r, 403, "csrf_failed")
    same = await client.post(
        "/api/v1/admin/terms", json=term_json(), headers={"X-CSRF-Token": csrf, "Origin": SITE}
    )
    assert same.status_code == 201, same.text


async def test_another_site_cannot_open_a_session(client: httpx.AsyncClient) -> None:
    r = await client.post(SESSION, json=CREDENTIALS, headers={"Origin": "https://evil.example"})
    assert_problem(r, 403, "csrf_failed")
    assert "set-cookie" not in r.headers


async def test_wrong_password_sets_no_cookie(client: httpx.AsyncClient) -> None:
    r = await client.post(SESSION, json={"username": "admin", "password": "wrong-password"})
    assert_problem(r, 401, "invalid_credentials")
    assert "set-cookie" not in r.headers


async def test_bearer_requests_need_no_csrf(api: Api) -> None:
    headers = await api.admin()
    # No CSRF token, a foreign Origin: a bearer header is not something a browser sends
    # on another site's behalf.
    r = await api.client.post(
        "/api/v1/admin/terms",
        json=term_json(),
        headers={**headers, "Origin": "https://evil.example"},
    )
    assert r.status_code == 201, r.text


async def test_a_bearer_header_wins_over_a_cookie(client: httpx.AsyncClient) -> None:
    """A request with both is a bearer request: a bad header is not rescued by the
    cookie, and a good one needs no CSRF token."""
    token, _ = await open_session(client)
    bad = await client.get("/api/v1/admin/audit", headers=bearer("not-a-token"))
    assert_problem(bad, 401, "invalid_credentials")
    good = await client.post("/api/v1/admin/terms", json=term_json(), headers=bearer(token))
    assert good.status_code == 201, good.text


async def test_a_forged_session_cookie_is_refused(client: httpx.AsyncClient) -> None:
    client.cookies.set("rg_session", "not-a-token")
    assert_problem(await client.get("/api/v1/admin/audit"), 401, "invalid_credentials")


async def test_openapi_documents_both_schemes(client: httpx.AsyncClient) -> None:
    doc = (await client.get("/openapi.json")).json()
    schemes = doc["components"]["securitySchemes"]
    assert schemes["session"] == {
        "type": "apiKey",
        "in": "cookie",
        "name": "rg_session",
        "description": schemes["session"]["description"],
    }
    assert "X-CSRF-Token" in schemes["session"]["description"]
    audit = doc["paths"]["/api/v1/admin/audit"]["get"]
    assert audit["security"] == [{"bearer": []}, {"session": []}]
    assert "security" not in doc["paths"][SESSION]["post"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PUT", "/api/v1/admin/admissions/hs-2027/applications/2027-A-0001/status"),
        ("DELETE", "/api/v1/terms/2026-spring/enrollments/CS101-01"),
        ("POST", "/api/v1/queue/2026-spring/join"),
    ],
)
async def test_every_unsafe_method_needs_the_token(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    """Checked before the role or the resource: a forged request learns nothing."""
    await open_session(client)
    r = await client.request(method, path, json={"status": "accepted"})
    assert_problem(r, 403, "csrf_failed")
