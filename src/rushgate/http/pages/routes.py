"""The pages everyone shares: the front page, logging in and out, the language switch, and
the static files."""

from __future__ import annotations

import math
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from rushgate.domain.errors import DomainError, RateLimited
from rushgate.http.deps import clear_session_cookies, set_session_cookies, site_cookies
from rushgate.http.pages.i18n import LANG_COOKIE, LOCALES
from rushgate.http.pages.render import pages_of, render, visitor
from rushgate.http.routes.auth import sign_in

router = APIRouter(include_in_schema=False)

# A year: a hashed name never changes its content.
_IMMUTABLE = "public, max-age=31536000, immutable"
_SHORT = "public, max-age=60"
_LOGIN_STATUS = {"invalid_credentials": 401, "rate_limited": 429}


def local_target(raw: str | None, default: str = "/") -> str:
    """Where to go after a form: only a path on this site (never ``//elsewhere`` or a
    full URL, which would make the login page an open redirect)."""
    if not raw or not raw.startswith("/") or raw.startswith("//") or "\\" in raw:
        return default
    return raw


def home_of(role: str | None) -> str:
    return {"student": "/terms", "applicant": "/apply", "admin": "/admin"}.get(role or "", "/")


@router.get("/")
async def front_page(request: Request) -> Response:
    who = visitor(request)
    if who.principal is not None and home_of(who.role) != "/":
        return RedirectResponse(home_of(who.role), status_code=303)
    return render(request, "home.html", who=who)


@router.get("/login")
async def login_page(request: Request) -> Response:
    return render(
        request,
        "login.html",
        next=local_target(request.query_params.get("next")),
        username="",
        error=None,
    )


@router.post("/login")
async def log_in(request: Request) -> Response:
    cookies = site_cookies(request)
    form = await request.form()
    username = str(form.get("username", ""))[:254]
    password = str(form.get("password", ""))[:1024]
    target = local_target(str(form.get("next", "")) or None)
    origin = request.headers.get("origin")
    context: dict[str, Any] = {"next": target, "username": username}
    if origin is not None and origin.lower() != cookies.origin:
        # Another site logging this browser into an account of its choosing.
        return render(request, "login.html", status_code=403, error="csrf_failed", **context)
    challenge = str(form.get("challenge", "")) or None
    try:
        token, ttl = await sign_in(
            request, request.app.state.container, username, password, challenge
        )
    except DomainError as refusal:
        refused = render(
            request,
            "login.html",
            status_code=_LOGIN_STATUS.get(refusal.code, 403),
            error=refusal.code,
            **context,
        )
        if isinstance(refusal, RateLimited):
            refused.headers["Retry-After"] = str(max(1, math.ceil(refusal.retry_after)))
        return refused
    principal = request.app.state.container.auth.authenticate(token)
    response = RedirectResponse(
        target if target != "/" else home_of(principal.role), status_code=303
    )
    set_session_cookies(response, cookies, token, ttl)
    return response


@router.post("/logout")
async def log_out(request: Request) -> Response:
    """Clears the session. Needs no CSRF token: another site can at worst log you out."""
    cookies = site_cookies(request)
    response = RedirectResponse("/", status_code=303)
    clear_session_cookies(response, cookies)
    return response


@router.get("/lang/{locale}")
async def switch_language(locale: str, request: Request) -> Response:
    response = RedirectResponse(local_target(request.query_params.get("next")), status_code=303)
    if locale in LOCALES:
        response.set_cookie(
            LANG_COOKIE,
            locale,
            max_age=365 * 24 * 3600,
            path="/",
            samesite="lax",
            secure=site_cookies(request).secure,
        )
    return response


@router.get("/static/{name}")
async def static_file(name: str, request: Request) -> Response:
    found = pages_of(request).assets.find(name)
    if found is None:
        return render(request, "not_found.html", status_code=404)
    asset, hashed = found
    headers = {"Cache-Control": _IMMUTABLE if hashed else _SHORT, "ETag": asset.etag}
    if request.headers.get("if-none-match") == asset.etag:
        return Response(status_code=304, headers=headers)
    return Response(asset.body, media_type=asset.content_type, headers=headers)
