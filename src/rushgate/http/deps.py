"""Typed dependencies: routes ask for what they need by name.

Each is one flat ``async def`` reading the request itself. FastAPI spends ~60 µs of CPU
per dependency it resolves, and a chain (container → bearer scheme → principal → role)
cost a queue status request more than its Redis round trip. ``async`` because plain
``def`` dependencies run in a thread pool. The schemes are declared in the OpenAPI
document by :func:`document_bearer_auth`, not by a dependency.

Two ways to authenticate, one token. Scripts and apps send it as a bearer header; the
browser UI keeps it in an HttpOnly session cookie (``POST /api/v1/auth/session``).
Browsers attach cookies to requests other sites make them send, so a cookie request that
changes something (POST, PUT, PATCH, DELETE) must also carry the session's CSRF token (the
``X-CSRF-Token`` header, or a ``csrf_token`` form field), which another site cannot read;
its ``Origin``, when sent, must be this site's. A bearer header is never sent by a
browser on its own, so bearer requests need neither check, and stay as cheap as before.
"""

from __future__ import annotations

import base64
import hmac
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import Depends, FastAPI, Request, Response
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from rushgate.composition import Container
from rushgate.http.client import client_ip
from rushgate.http.errors import ApiError
from rushgate.observability.logging import request_id
from rushgate.services.ports.audit import Actor
from rushgate.services.ports.auth import Principal

_SCHEME = "bearer"
_UNAUTHORIZED = {"WWW-Authenticate": "Bearer"}
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
_FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")


@dataclass(frozen=True, slots=True)
class Cookies:
    """The session cookies of this site. On https they carry the ``__Host-`` prefix: the
    browser then accepts them only Secure, for the whole site and from this host itself
    (no sibling subdomain can plant one)."""

    secure: bool
    session: str
    csrf: str
    origin: str
    _csrf_key: bytes

    @classmethod
    def for_site(cls, public_url: str, secret: str) -> Cookies:
        parts = urlsplit(public_url)
        secure = parts.scheme == "https"
        prefix = "__Host-" if secure else ""
        return cls(
            secure=secure,
            session=f"{prefix}rg_session",
            csrf=f"{prefix}rg_csrf",
            origin=f"{parts.scheme}://{parts.netloc}".lower(),
            # A key of its own: a CSRF token is no use as anything else.
            _csrf_key=hmac.new(secret.encode(), b"rushgate csrf tokens", "sha256").digest(),
        )

    def csrf_token(self, session_token: str) -> str:
        """The CSRF token of one session: a MAC of its session token, so it cannot be
        made without the secret, and the token of one session fails for any other."""
        mac = hmac.new(self._csrf_key, session_token.encode(), "sha256").digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def set_session_cookies(response: Response, cookies: Cookies, token: str, ttl: int) -> str:
    """Put a session into the browser: the token in an HttpOnly cookie, its CSRF token in
    one the page's script can read (to send it back as a header). Returns the CSRF token."""
    csrf = cookies.csrf_token(token)
    for name, value, script in ((cookies.session, token, False), (cookies.csrf, csrf, True)):
        response.set_cookie(
            name,
            value,
            max_age=ttl,
            path="/",
            secure=cookies.secure,
            httponly=not script,
            samesite="lax",
        )
    return csrf


def clear_session_cookies(response: Response, cookies: Cookies) -> None:
    for name, script in ((cookies.session, False), (cookies.csrf, True)):
        response.delete_cookie(
            name, path="/", secure=cookies.secure, httponly=not script, samesite="lax"
        )


def _node(request: Request) -> Container:
    container: Container = request.app.state.container
    return container


def site_cookies(request: Request) -> Cookies:
    """This app's cookies, worked out on first use."""
    state = request.app.state
    cookies: Cookies | None = getattr(state, "session_cookies", None)
    if cookies is None:
        settings = _node(request).settings
        cookies = Cookies.for_site(settings.public_url, settings.effective_secret_key())
        state.session_cookies = cookies
    return cookies


async def _authenticate(request: Request) -> Principal:
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != _SCHEME or not token.strip():
            raise ApiError(401, "unauthorized", "a bearer token is required", _UNAUTHORIZED)
        return _node(request).auth.authenticate(token.strip())
    return await _from_cookie(request)


async def _from_cookie(request: Request) -> Principal:
    cookies = site_cookies(request)
    token = request.cookies.get(cookies.session)
    if not token:
        raise ApiError(
            401, "unauthorized", "a bearer token or a session cookie is required", _UNAUTHORIZED
        )
    principal = _node(request).auth.authenticate(token)
    if request.method not in _SAFE_METHODS:
        origin = request.headers.get("origin")
        if origin is not None and origin.lower() != cookies.origin:
            raise ApiError(403, "csrf_failed", "a request from another site was refused")
        sent = request.headers.get(CSRF_HEADER) or await _form_token(request)
        if not sent or not hmac.compare_digest(sent.encode(), cookies.csrf_token(token).encode()):
            raise ApiError(
                403,
                "csrf_failed",
                "send this session's CSRF token in the X-CSRF-Token header "
                f"(or the {CSRF_FIELD} form field)",
            )
    return principal


async def _form_token(request: Request) -> str | None:
    """The ``csrf_token`` field of a form body. Read only when FastAPI has read the body
    already (the route takes one), so a route that streams its body itself (uploads)
    still gets it whole; such routes need the header."""
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith(_FORMS):
        return None
    route = request.scope.get("route")
    if not isinstance(route, APIRoute) or route.body_field is None:
        return None
    value = (await request.form()).get(CSRF_FIELD)
    return value if isinstance(value, str) else None


async def _container(request: Request) -> Container:
    return _node(request)


async def _principal(request: Request) -> Principal:
    return await _authenticate(request)


async def _admin(request: Request) -> Principal:
    principal = await _authenticate(request)
    if principal.role != "admin":
        raise ApiError(403, "forbidden", "this needs an admin")
    return principal


async def _admin_actor(request: Request) -> Actor:
    principal = await _admin(request)
    return Actor(
        user_pk=principal.user_pk,
        username=principal.username,
        request_id=request_id.get(),
        client_ip=client_ip(request),
    )


@dataclass(frozen=True, slots=True)
class StudentCall:
    """A signed-in student and this node's parts: what every student route needs, as
    one dependency."""

    node: Container
    pk: int
    principal: Principal


async def _student(request: Request) -> StudentCall:
    principal = await _authenticate(request)
    if principal.role != "student" or principal.student_pk is None:
        raise ApiError(403, "forbidden", "this needs a student")
    return StudentCall(_node(request), principal.student_pk, principal)


async def _applicant(request: Request) -> Principal:
    principal = await _authenticate(request)
    if principal.role != "applicant":
        raise ApiError(403, "forbidden", "this needs an applicant account")
    return principal


ContainerDep = Annotated[Container, Depends(_container)]
CurrentUser = Annotated[Principal, Depends(_principal)]
AdminUser = Annotated[Principal, Depends(_admin)]
# An admin making a change: who, for the audit log (with the request id and address).
AdminActor = Annotated[Actor, Depends(_admin_actor)]
StudentUser = Annotated[StudentCall, Depends(_student)]
# An applicant's login; ``user_pk`` identifies them to the admissions services.
ApplicantUser = Annotated[Principal, Depends(_applicant)]

# Every API operation authenticates but these.
_PUBLIC = {
    ("post", "/api/v1/auth/token"),
    ("post", "/api/v1/auth/session"),
    ("delete", "/api/v1/auth/session"),
    ("post", "/api/v1/applicants"),
    ("post", "/api/v1/applicants/verify"),
    ("get", "/api/v1/applicants/verify"),
    # The same for every caller, so shared caches may keep it: see the route.
    ("get", "/api/v1/terms/{term}/sections"),
}


_COOKIE_AUTH = (
    "The session cookie set by POST /api/v1/auth/session (rg_session; __Host-rg_session "
    "when the site is served over https), for the browser UI. With it, a request that "
    "changes something (POST, PUT, PATCH, DELETE) must also send the session's CSRF "
    "token in the X-CSRF-Token header (or a csrf_token form field), and its Origin, if "
    "sent, must be this site's: else 403 csrf_failed. Bearer requests need neither."
)


def document_bearer_auth(app: FastAPI) -> None:
    """Declare the bearer and cookie schemes on every operation that authenticates, as a
    security dependency would, without paying for one on every request."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title,
            version=app.version,
            summary=app.summary,
            routes=app.routes,
        )
        components = schema.setdefault("components", {})
        components.setdefault("securitySchemes", {})["bearer"] = {
            "type": "http",
            "scheme": "bearer",
            "description": "A token from POST /api/v1/auth/token",
        }
        # The name documented is the plain one; on https it carries the __Host- prefix.
        components["securitySchemes"]["session"] = {
            "type": "apiKey",
            "in": "cookie",
            "name": "rg_session",
            "description": _COOKIE_AUTH,
        }
        for path, operations in schema["paths"].items():
            for method, operation in operations.items():
                if path.startswith("/api/v1/") and (method, path) not in _PUBLIC:
                    # Either one (a list of alternatives).
                    operation["security"] = [{"bearer": []}, {"session": []}]
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
