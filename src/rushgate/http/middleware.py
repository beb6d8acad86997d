"""ASGI middleware kept deliberately thin: it runs on every request of a rush."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping, Sequence

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

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
        body = json.dumps(
            {
                "type": "https://rushgate.dev/problems/payload_too_large",
                "title": "Payload too large",
                "status": 413,
                "code": "payload_too_large",
                "detail": f"the request body is larger than {limit} bytes",
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/problem+json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


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


class HttpMetrics:
    """Count every request and time it, labelled by the template of the route that
    matched (``unmatched`` when none did), never by the raw path. One wrapper around
    ``send`` to learn the status; nothing else per request.

    The route is what the router left in the scope after the app ran: ``scope["route"]``
    for the API's routes; FastAPI's router sets only ``scope["endpoint"]`` for plain
    Starlette routes (``/docs``, ``/openapi.json``), whose templates ``endpoints`` gives
    (read once, at the first request that needs it)."""

    def __init__(
        self,
        app: ASGIApp,
        metrics: RequestMetrics,
        endpoints: Callable[[], Mapping[object, str]] = dict,
    ) -> None:
        self.app = app
        self.observe = metrics.observe
        self._endpoints = endpoints
        self._templates: Mapping[object, str] | None = None

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
        status = 500  # what the server answers when the app raises before responding

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            self.observe(
                self._template(scope), scope["method"], status, time.perf_counter() - started
            )
