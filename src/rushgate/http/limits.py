"""Which routes spend which rate-limit budget, which need an allowed country, and the one
middleware that applies both before the route runs.

The table is keyed by (method, route path template), so the routes themselves stay
unaware of it; a test checks that every template names a real route. The per-account key
is the caller's verified identity (``auth.authenticate``, cached per token): an
unverified or invalid token gives no account key (the route refuses it anyway), so a
forged token can neither spend someone else's budget nor dodge its own.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from starlette.requests import cookie_parser
from starlette.responses import HTMLResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from rushgate.domain.errors import CountryNotAllowed, DomainError
from rushgate.http import errors
from rushgate.http.client import Client, ClientResolver, Networks
from rushgate.services import rate_limits as budgets
from rushgate.services.ports.auth import Principal
from rushgate.services.ports.geo import CountryLookup
from rushgate.services.rate_limits import RateLimits


@dataclass(frozen=True, slots=True)
class Guarded:
    """``budget``: the rate-limit budget the route spends (``None``: none).
    ``country``: the route is a step the country rule guards."""

    budget: str | None
    country: bool
    step: str


@dataclass(frozen=True, slots=True)
class _Matched:
    """Left in the scope as ``route`` when the guard answers itself: the access log and
    request metrics then label the refusal with the route's template, as the router
    would have."""

    path: str


GUARDED_ROUTES: Mapping[tuple[str, str], Guarded] = {
    ("POST", "/api/v1/auth/token"): Guarded(budgets.LOGIN, True, "logging in"),
    ("POST", "/api/v1/auth/session"): Guarded(budgets.LOGIN, True, "logging in"),
    ("POST", "/login"): Guarded(budgets.LOGIN, True, "logging in"),
    ("POST", "/api/v1/applicants"): Guarded(budgets.SIGN_UP, True, "signing up"),
    ("POST", "/signup"): Guarded(budgets.SIGN_UP, True, "signing up"),
    ("POST", "/api/v1/queue/{term}/join"): Guarded(budgets.JOIN, True, "joining the queue"),
    ("POST", "/api/v1/terms/{term}/enrollments"): Guarded(budgets.ENROLL, True, "enrolling"),
    ("DELETE", "/api/v1/terms/{term}/enrollments/{section_id}"): Guarded(
        budgets.ENROLL, True, "dropping a section"
    ),
    ("POST", "/api/v1/admissions/{round_code}/questions"): Guarded(
        budgets.QNA, False, "posting a question"
    ),
    ("POST", "/apply/{round_code}/questions"): Guarded(budgets.QNA, False, "posting a question"),
}

# The browser UI's session cookie carries the same token as a bearer header (either name:
# ``__Host-`` on https sites).
SESSION_COOKIES = ("rg_session", "__Host-rg_session")

# Codes a CDN sends for "no country": unknown (XX) and Tor exits (T1) are not countries.
_NOT_COUNTRIES = frozenset({"XX", "T1"})


class CountryRule:
    """Allows the guarded steps only from ``allowed`` countries. The country comes from
    ``header`` when a trusted proxy set it, else from ``lookup`` (a GeoIP database). A
    request whose country cannot be told is refused as well: an allowlist that let
    unknowns in would be bypassed by any address the database misses."""

    def __init__(
        self, allowed: frozenset[str], *, header: str | None, lookup: CountryLookup | None
    ) -> None:
        self.allowed = allowed
        self._header = header.lower().encode("latin-1") if header else None
        self._lookup = lookup

    def country_of(self, scope: Scope, client: Client) -> str | None:
        if self._header is not None and client.via_proxy:
            name: bytes
            value: bytes
            for name, value in scope["headers"]:
                if name == self._header:
                    code = value.decode("latin-1").strip().upper()
                    if len(code) == 2 and code.isalpha() and code not in _NOT_COUNTRIES:
                        return code
                    break
        if self._lookup is not None and client.ip is not None:
            return self._lookup.country(client.ip)
        return None

    def check(self, scope: Scope, client: Client, step: str) -> None:
        country = self.country_of(scope, client)
        if country in self.allowed:
            return
        where = "an unknown country" if country is None else country
        raise CountryNotAllowed(
            f"{step} is open only to connections from {', '.join(sorted(self.allowed))}; "
            f"this one appears to come from {where}",
            country=country,
            step=step,
            allowed=sorted(self.allowed),
        )


def _wants_html(scope: Scope) -> bool:
    """A browser navigating (a form sent without script) asks for a page; an API client
    or a page's own script asks for JSON."""
    for name, value in scope["headers"]:
        if name == b"accept":
            return b"text/html" in value
    return False


_COUNTRY_PAGE = """<!doctype html>
<html lang="ko">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>접속 지역 제한 · Not available from your country</title></head>
<body>
<main>
<h1>이 지역에서는 이용할 수 없습니다</h1>
<p>이 사이트는 {allowed}에서 접속한 경우에만 {step_ko} 수 있습니다. 접속 위치가 {where_ko}(으)로
확인되었습니다. VPN이나 해외 프록시를 사용 중이라면 끄고 다시 시도해 주세요.</p>
<h1 lang="en">Not available from your country</h1>
<p lang="en">{step_en} is open only to connections from {allowed}; yours appears to come from
{where_en}. If you use a VPN or a proxy abroad, turn it off and try again.</p>
<p><small>country_not_allowed</small></p>
</main>
</body>
</html>
"""


def country_page(refusal: CountryNotAllowed) -> Response:
    """The country refusal as a page in Korean and English, for browsers."""
    country = refusal.context.get("country")
    step = str(refusal.context.get("step", "this step"))
    allowed = ", ".join(refusal.context.get("allowed", ()))
    body = _COUNTRY_PAGE.format(
        allowed=html.escape(allowed),
        step_ko="진행할",
        step_en=html.escape(step[:1].upper() + step[1:]),
        where_ko=html.escape(country or "알 수 없는 지역"),
        where_en=html.escape(country or "an unknown country"),
    )
    return HTMLResponse(body, status_code=403, headers={"Cache-Control": "no-store"})


def _compile(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}]+\})", template)
    return re.compile("".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts if p))


class Guard:
    """ASGI middleware: resolves the client address of every request (once, into the
    scope), then, for a guarded route, checks the country rule and spends the route's
    budget per address and per account, answering 403/429 problem+json itself.

    ``exempt``: client addresses the budgets never apply to (load generators, this
    machine's own tools), neither per address nor per account."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        resolver: ClientResolver,
        rate_limits: RateLimits,
        authenticate: Callable[[str], Principal],
        exempt: Sequence[str] = (),
        countries: CountryRule | None = None,
        routes: Mapping[tuple[str, str], Guarded] = GUARDED_ROUTES,
    ) -> None:
        self.app = app
        self._resolver = resolver
        self._limits = rate_limits
        self._authenticate = authenticate
        self._exempt = Networks(exempt)
        self._countries = countries
        self._routes: dict[str, list[tuple[re.Pattern[str], Guarded, _Matched]]] = {}
        for (method, template), guarded in routes.items():
            entry = (_compile(template), guarded, _Matched(template))
            self._routes.setdefault(method, []).append(entry)

    def _guarded(self, scope: Scope) -> tuple[Guarded, _Matched] | None:
        candidates = self._routes.get(scope["method"])
        if candidates:
            path = scope["path"]
            for pattern, guarded, matched in candidates:
                if pattern.fullmatch(path):
                    return guarded, matched
        return None

    def _account(self, scope: Scope) -> str | None:
        token: str | None = None
        cookie: bytes | None = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, credentials = value.decode("latin-1").partition(" ")
                if scheme.lower() != "bearer":
                    return None
                token = credentials.strip()
                break
            if name == b"cookie":
                cookie = value
        if token is None and cookie is not None:
            jar = cookie_parser(cookie.decode("latin-1"))
            token = next((jar[name] for name in SESSION_COOKIES if jar.get(name)), None)
        if not token:
            return None
        try:
            principal = self._authenticate(token)
        except DomainError:
            return None  # the route answers 401 itself
        return f"{principal.role}:{principal.user_pk}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client = self._resolver.resolve(scope)
        found = self._guarded(scope)
        if found is not None:
            guarded, matched = found
            try:
                if guarded.country and self._countries is not None:
                    self._countries.check(scope, client, guarded.step)
                if (
                    guarded.budget is not None
                    and self._limits.enabled
                    and client.ip not in self._exempt
                ):
                    await self._limits.check(
                        guarded.budget, address=client.ip, account=self._account(scope)
                    )
            except DomainError as refusal:
                scope["route"] = matched
                if isinstance(refusal, CountryNotAllowed) and _wants_html(scope):
                    await country_page(refusal)(scope, receive, send)
                    return
                await errors.domain_problem(refusal)(scope, receive, send)
                return
        await self.app(scope, receive, send)
