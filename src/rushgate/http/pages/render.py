"""Rendering a page: the Jinja2 environment, and what every template may use."""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse

from rushgate.domain.errors import DomainError
from rushgate.http.deps import site_cookies
from rushgate.http.pages.assets import Assets
from rushgate.http.pages.i18n import LANG_COOKIE, Translator, load_catalogs, negotiate
from rushgate.services.ports.auth import Principal


@dataclass(frozen=True, slots=True)
class Visitor:
    """Who is looking at a page: signed in (``principal``, with the session's CSRF token
    for its forms) or not."""

    principal: Principal | None
    csrf_token: str | None

    @property
    def role(self) -> str | None:
        return None if self.principal is None else self.principal.role


class Pages:
    """Built once per app (``app.state.pages``)."""

    def __init__(self) -> None:
        self.assets = Assets()
        self.catalogs = load_catalogs()
        self.env = Environment(
            loader=PackageLoader("rushgate.http", "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            undefined=StrictUndefined,  # a misspelt variable fails the page's test
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.globals["asset"] = self.assets.url

    def translator(self, request: Request) -> Translator:
        locale = negotiate(request.headers.get("accept-language"), request.cookies.get(LANG_COOKIE))
        return Translator(self.catalogs[locale], locale)


def pages_of(request: Request) -> Pages:
    pages: Pages = request.app.state.pages
    return pages


def visitor(request: Request) -> Visitor:
    """The signed-in user of the session cookie, if any (an expired or forged cookie is
    no one)."""
    cookies = site_cookies(request)
    token = request.cookies.get(cookies.session)
    if not token:
        return Visitor(None, None)
    try:
        principal = request.app.state.container.auth.authenticate(token)
    except DomainError:
        return Visitor(None, None)
    return Visitor(principal, cookies.csrf_token(token))


def render(
    request: Request,
    template: str,
    *,
    status_code: int = 200,
    who: Visitor | None = None,
    **context: Any,
) -> HTMLResponse:
    pages = pages_of(request)
    t = pages.translator(request)
    who = who if who is not None else visitor(request)
    body = pages.env.get_template(template).render(
        t=t,
        locale=t.locale,
        who=who,
        path=request.url.path,
        here=quote(request.url.path + (f"?{request.url.query}" if request.url.query else "")),
        **context,
    )
    return HTMLResponse(body, status_code=status_code)


def to_login(request: Request) -> RedirectResponse:
    """Send a visitor who is not signed in to the login page, and back here after."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)


def check_csrf(request: Request, form: Mapping[str, Any]) -> bool:
    """Whether a posted form carries this session's CSRF token (and, when the browser
    says where it comes from, comes from this site)."""
    origin = request.headers.get("origin")
    if origin is not None and origin.lower() != site_cookies(request).origin:
        return False
    expected = visitor(request).csrf_token
    sent = form.get("csrf_token")
    if expected is None or not isinstance(sent, str) or not sent:
        return False
    return hmac.compare_digest(sent.encode(), expected.encode())
