"""ASGI middleware kept deliberately thin: it runs on every request of a rush."""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rushgate.observability.logging import AccessLog, accept_request_id, request_id
from rushgate.observability.metrics import UNMATCHED, RequestMetrics


class _TooLarge(HTTPException):
    """Raised from ``receive``: FastAPI passes HTTP exceptions through its body parsing,
    so the app's error handler renders it as problem+json."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than {limit} bytes")


class BodyLimit:
    """Refuse bodies over ``limit`` bytes with 413, declared or streamed, before parsing.

    ``routes`` gives POST paths (full matches) a limit of their own: document uploads are
    bounded by the upload size, not by the general limit, in either direction."""

    def __init__(
        self, app: ASGIApp, limit: int, routes: Sequence[tuple[re.Pattern[str], int]] = ()
    ) -> None:
        self.app = app
        self.limit = limit
        self.routes = tuple(routes)

    def _limit_for(self, scope: Scope) -> int:
        if self.routes and scope["method"] == "POST":
            for path, limit in self.routes:
                if path.fullmatch(scope["path"]):
                    return limit
        return self.limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self._limit_for(scope)
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = limit + 1
                if declared > limit:
                    await self._refuse(send, limit)
                    return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _TooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not started:
                await self._refuse(send, limit)

    async def _refuse(self, send: Send, limit: int) -> None:
        await send_problem(
            send,
            413,
            "payload_too_large",
            f"the request body is larger than {limit} bytes",
            close=True,
        )


class CloseWhileDraining:
    """While the node drains, answer with ``Connection: close``: a load balancer then
    stops reusing its pooled connections to this node, so none is left idle for the
    shutdown to cut under a request the balancer is just sending."""

    def __init__(self, app: ASGIApp, draining: Callable[[], bool]) -> None:
        self.app = app
        self.draining = draining

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_closing(message: Message) -> None:
            if message["type"] == "http.response.start" and self.draining():
                message["headers"] = [*message.get("headers", []), (b"connection", b"close")]
            await send(message)

        await self.app(scope, receive, send_closing)


class Observe:
    """The outermost layer of every request: it counts and times it (labelled by the
    template of the route that matched, ``unmatched`` when none did, never by the raw
    path), gives it a request id (the proxy's ``X-Request-ID`` when it sent a well-formed
    one) that every log record of the request carries and the response echoes, writes
    the access line, and adds the security headers every response has.

    It also answers an error that escaped every handler with a problem+json 500 itself:
    left to the server, such an error closes the client's keep-alive connection, and the
    client's next request on it is reset (nginx then counts a failure against the node).
    Only an error after the response began (a stream cut short) still goes on to the
    server, which must close the connection because the body is incomplete.

    The route is what the router left in the scope after the app ran: ``scope["route"]``
    for the API's routes; FastAPI's router sets only ``scope["endpoint"]`` for plain
    Starlette routes (``/docs``, ``/openapi.json``), whose templates ``endpoints`` gives
    (read once, at the first request that needs it)."""

    def __init__(
        self,
        app: ASGIApp,
        metrics: RequestMetrics,
        *,
        endpoints: Callable[[], Mapping[object, str]] = dict,
        security_headers: SecurityHeaders | None = None,
        access_log: bool = True,
    ) -> None:
        self.app = app
        self.observe = metrics.observe
        self._endpoints = endpoints
        self._templates: Mapping[object, str] | None = None
        self._headers = security_headers or SecurityHeaders()
        self._access = AccessLog() if access_log else None

    def _template(self, scope: Scope) -> str:
        route = scope.get("route")
        if route is not None:
            return getattr(route, "path", UNMATCHED)
        endpoint = scope.get("endpoint")
        if endpoint is None:
            return UNMATCHED
        if self._templates is None:
            self._templates = self._endpoints()
        return self._templates.get(endpoint, UNMATCHED)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        incoming = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                incoming = value
                break
        rid = accept_request_id(incoming)
        request_id.set(rid)
        extra_headers = self._headers.for_path(scope["path"], rid)
        status = 0

        async def observed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = _with_defaults(message.get("headers", ()), extra_headers)
            await send(message)

        try:
            await self.app(scope, receive, observed_send)
        except Exception:
            if status:
                raise  # the response began: only closing the connection ends it cleanly
            logging.getLogger("rushgate.http").exception(
                "unhandled error", extra={"route": self._template(scope), "method": scope["method"]}
            )
            await send_problem(
                observed_send,
                500,
                "internal_error",
                "an unexpected error occurred; it was logged",
            )
        finally:
            elapsed = time.perf_counter() - started
            template = self._template(scope)
            # 500 is what the server answers when the app ended without a response.
            final = status or 500
            self.observe(template, scope["method"], final, elapsed)
            if self._access is not None:
                self._access.write(template, scope["method"], final, elapsed)


def _with_defaults(
    headers: Iterable[tuple[bytes, bytes]], defaults: Sequence[tuple[bytes, bytes]]
) -> list[tuple[bytes, bytes]]:
    """The response's headers, plus each default the response did not set itself."""
    merged = list(headers)
    present = {name.lower() for name, _ in merged}
    merged.extend(header for header in defaults if header[0] not in present)
    return merged


async def send_problem(
    send: Send, status: int, code: str, detail: str, *, close: bool = False
) -> None:
    """A problem+json answer written straight to ASGI, for the layers that answer before
    (or instead of) the app and its error handlers."""
    body = json.dumps(
        {
            "type": f"https://rushgate.dev/problems/{code}",
            "title": code.replace("_", " ").capitalize(),
            "status": status,
            "code": code,
            "detail": detail,
        }
    ).encode()
    headers = [
        (b"content-type", b"application/problem+json"),
        (b"content-length", str(len(body)).encode()),
    ]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


# Pages that load their own scripts and styles: the interactive API docs.
_DOCS_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc"})
# What answers JSON (or text) only: nothing may run or load there.
_API_PREFIXES = ("/api/", "/healthz", "/readyz", "/metrics", "/openapi.json")
# The web pages: their own files only (no inline script or style, no other origin), and
# forms sent only to this site.
_PAGES_POLICY = (
    b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    b"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
    b"object-src 'none'"
)


class SecurityHeaders:
    """The headers every response carries unless the route set its own.

    The API answers JSON only, so its policy forbids everything (no scripts, no frames,
    no embedding anywhere); the API docs pages keep the frame rule only, as they load
    Swagger UI's scripts; the web pages load this site's own files and nothing else.
    ``Cache-Control: no-store`` keeps tokens and personal data out
    of shared caches; a route that may be cached (the catalog) says so itself. HSTS only
    when the site is served over HTTPS (``RUSHGATE_PUBLIC_URL``), as browsers ignore it
    otherwise and a plain-HTTP test site must stay reachable."""

    def __init__(self, *, hsts: bool = False) -> None:
        common = [
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),
            (b"x-frame-options", b"DENY"),
            (b"cross-origin-opener-policy", b"same-origin"),
            (b"cache-control", b"no-store"),
        ]
        if hsts:
            common.append((b"strict-transport-security", b"max-age=63072000; includeSubDomains"))
        self._api = (
            *common,
            (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
        )
        self._docs = (*common, (b"content-security-policy", b"frame-ancestors 'none'"))
        # Pages send their own origin as referrer: with no-referrer, browsers send
        # "Origin: null" on the site's own form posts, which the CSRF check refuses.
        self._pages = tuple(
            (b"referrer-policy", b"same-origin") if name == b"referrer-policy" else (name, value)
            for name, value in (*common, (b"content-security-policy", _PAGES_POLICY))
        )

    def for_path(self, path: str, rid: str) -> tuple[tuple[bytes, bytes], ...]:
        if path.startswith(_API_PREFIXES):
            chosen = self._api
        elif path in _DOCS_PATHS:
            chosen = self._docs
        else:
            chosen = self._pages
        return (*chosen, (b"x-request-id", rid.encode()))
