"""The pages everyone shares, in-process: language, logging in and out, static files, the
pages' security headers, and the checks every page must pass."""

from __future__ import annotations

import json
import re
from importlib import resources

import httpx
import pytest

from rushgate.http.pages.i18n import load_catalogs, negotiate
from tests.http.api import Api, student_json
from tests.pages.a11y import problems

# t("key") or t("key", value=...) in a template; not asset("...") and not t("error." ~ code).
WORD = re.compile(r"""(?<![\w.])t\(\s*["']([a-z0-9_.]+)["']\s*[,)]""")

PAGES = ("/", "/login", "/login?next=/terms", "/static/no-such-file.css")


@pytest.fixture
async def api(client: httpx.AsyncClient) -> Api:
    api = Api(client)
    await api.create_students([student_json("s1")])
    return api


@pytest.mark.parametrize("path", PAGES)
async def test_every_page_has_a_language_a_title_a_main_landmark_and_labels(
    client: httpx.AsyncClient, path: str
) -> None:
    r = await client.get(path)
    assert r.headers["content-type"].startswith("text/html")
    assert problems(r.text) == []


@pytest.mark.parametrize(
    ("accept", "chosen", "expected"),
    [
        (None, None, "ko"),
        ("en-US,en;q=0.9", None, "en"),
        ("fr-FR,en;q=0.5,ko;q=0.8", None, "ko"),
        ("ko;q=0.1, en;q=0.2", None, "en"),
        ("en;q=oops, ko", None, "ko"),
        ("en", "ko", "ko"),
        ("ko", "en", "en"),
        ("ko", "xx", "ko"),
    ],
)
def test_the_language_is_the_choice_else_the_browsers_best(
    accept: str | None, chosen: str | None, expected: str
) -> None:
    assert negotiate(accept, chosen) == expected


async def test_the_switch_remembers_the_language_and_returns_to_the_page(
    client: httpx.AsyncClient,
) -> None:
    assert '<html lang="ko">' in (await client.get("/login")).text
    english = await client.get("/login", headers={"Accept-Language": "en"})
    assert '<html lang="en">' in english.text
    assert "<title>Log in" in english.text
    switched = await client.get("/lang/en?next=/login%3Fnext%3D/terms")
    assert switched.status_code == 303
    assert switched.headers["location"] == "/login?next=/terms"
    page = await client.get("/login", headers={"Accept-Language": "ko"})
    assert '<html lang="en">' in page.text  # the choice beats the browser
    for elsewhere in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
        r = await client.get("/lang/ko", params={"next": elsewhere})
        assert r.headers["location"] == "/"  # never an open redirect


async def test_logging_in_sets_the_session_and_goes_home_by_role(
    api: Api, client: httpx.AsyncClient
) -> None:
    form = {"username": "s1", "password": "password-123", "next": "/"}
    r = await client.post("/login", data=form)
    assert r.status_code == 303, r.text
    assert r.headers["location"] == "/terms"
    cookies = r.headers.get_list("set-cookie")
    session = next(c for c in cookies if c.startswith("rg_session="))
    assert "HttpOnly" in session
    assert "SameSite=lax" in session
    assert any(c.startswith("rg_csrf=") and "HttpOnly" not in c for c in cookies)
    # The front page now sends the student home; logging out clears the session.
    assert (await client.get("/")).headers["location"] == "/terms"
    out = await client.post("/logout")
    assert out.status_code == 303
    assert (await client.get("/")).status_code == 200

    admin = await client.post("/login", data={"username": "admin", "password": "admin-password"})
    assert admin.headers["location"] == "/admin"
    back = await client.post(
        "/login", data={"username": "admin", "password": "admin-password", "next": "/admin/x"}
    )
    assert back.headers["location"] == "/admin/x"


async def test_a_refused_login_says_why_and_keeps_the_username(
    api: Api, client: httpx.AsyncClient
) -> None:
    r = await client.post(
        "/login",
        data={"username": "s1", "password": "wrong-password"},
        headers={"Accept-Language": "en"},
    )
    assert r.status_code == 401
    assert 'role="alert"' in r.text
    assert "Wrong username or password." in r.text
    assert 'value="s1"' in r.text
    assert "set-cookie" not in r.headers
    assert problems(r.text) == []
    foreign = await client.post(
        "/login",
        data={"username": "s1", "password": "password-123"},
        headers={"Origin": "https://evil.example"},
    )
    assert foreign.status_code == 403
    assert "set-cookie" not in foreign.headers


async def test_static_files_are_served_under_hashed_names_for_good(
    client: httpx.AsyncClient,
) -> None:
    page = (await client.get("/login")).text
    [css] = re.findall(r'href="(/static/app\.[0-9a-f]{10}\.css)"', page)
    [js] = re.findall(r'src="(/static/app\.[0-9a-f]{10}\.js)"', page)
    r = await client.get(css)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/css")
    assert r.headers["cache-control"] == "public, max-age=31536000, immutable"
    again = await client.get(css, headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304
    assert again.content == b""
    assert (await client.get(js)).headers["content-type"].startswith("text/javascript")
    plain = await client.get("/static/app.css")
    assert plain.headers["cache-control"] == "public, max-age=60"
    assert (await client.get("/static/app.0000000000.css")).status_code == 404


async def test_pages_may_load_only_their_own_files(client: httpx.AsyncClient) -> None:
    page = await client.get("/login")
    # Its own origin as referrer, or browsers send "Origin: null" on the page's own forms.
    assert page.headers["referrer-policy"] == "same-origin"
    policy = page.headers["content-security-policy"]
    for directive in (
        "default-src 'self'",
        "script-src 'self'",
        "frame-ancestors 'none'",
        "form-action 'self'",
        "object-src 'none'",
    ):
        assert directive in policy
    assert "unsafe-inline" not in policy
    api_policy = (await client.get("/api/v1/terms")).headers["content-security-policy"]
    assert api_policy.startswith("default-src 'none'")


def test_both_languages_have_every_word_the_templates_use() -> None:
    http = resources.files("rushgate.http")
    catalogs = load_catalogs()
    areas = {e.name.partition(".")[0] for e in http.joinpath("locales").iterdir()}
    for area in areas:  # each area has both languages, with the same keys
        ko, en = (
            json.loads(http.joinpath("locales", f"{area}.{locale}.json").read_text("utf-8"))
            for locale in ("ko", "en")
        )
        assert set(ko) == set(en), area
    assert set(catalogs["ko"]) == set(catalogs["en"])
    used: set[str] = set()
    templates = http.joinpath("templates")
    folders = [templates, *(d for d in templates.iterdir() if d.is_dir())]
    for template in (f for folder in folders for f in folder.iterdir() if f.is_file()):
        used |= set(WORD.findall(template.read_text("utf-8")))
    assert used, "no t('...') found: the pattern above is stale"
    assert used - set(catalogs["ko"]) == set()
