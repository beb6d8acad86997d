"""The application factory. Settings come in; nothing is built at import time."""

from __future__ import annotations

import asyncio
import gc
import signal
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import FrameType

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.routing import Route

from rushgate import __version__
from rushgate.composition import Container, configure_process
from rushgate.config import Settings
from rushgate.domain.clock import Clock
from rushgate.http import errors
from rushgate.http.client import ClientResolver
from rushgate.http.deps import document_bearer_auth
from rushgate.http.limits import CountryRule, Guard
from rushgate.http.middleware import BodyLimit, CloseWhileDraining, Observe, SecurityHeaders
from rushgate.http.openapi_problems import document_problems
from rushgate.http.pages import admin as admin_pages
from rushgate.http.pages import applicant as applicant_pages
from rushgate.http.pages import routes as shared_pages
from rushgate.http.pages import student as student_pages
from rushgate.http.pages.render import Pages
from rushgate.http.routes import (
    admin,
    admin_admissions,
    admissions,
    audit,
    auth,
    challenge,
    documents,
    health,
    qna,
    queue,
    session,
    student,
)
from rushgate.observability import metrics


def create_app(
    settings: Settings, *, clock: Clock | None = None, own_process: bool = False
) -> FastAPI:
    """``own_process``: the app is all this process serves (a server worker, not a test),
    so it may tune process-wide settings such as the garbage collector."""
    container = Container.build(settings, clock)
    metrics.process_started(__version__)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.draining = False
        _drain_on_sigterm(app, settings.shutdown_drain_seconds)
        container.start()
        if own_process:
            _settle_garbage_collector()
        try:
            yield
        finally:
            app.state.draining = True
            await container.close()
            metrics.process_exiting()

    app = FastAPI(
        title="rushgate",
        version=__version__,
        summary="Registration rushes that stay correct, fair and fast.",
        lifespan=lifespan,
    )
    app.state.container = container
    app.state.metrics_registry = metrics.registry()
    errors.install(app, container.storage)
    # The rush's hottest routes first: routes are matched in order.
    for module in (
        queue,
        student,
        health,
        auth,
        session,
        challenge,
        admin,
        audit,
        admissions,
        admin_admissions,
        qna,
        documents,
    ):
        app.include_router(module.router)
    # The web pages, after the API (none of them is in the OpenAPI document).
    app.state.pages = Pages()
    for pages in (shared_pages, student_pages, applicant_pages, admin_pages):
        app.include_router(pages.router)
    # Innermost: the client address (behind trusted proxies), the country rule and the
    # rate-limit budgets, before a guarded route parses its body.
    app.state.client_resolver = ClientResolver(settings.trusted_proxy_networks)
    allowed_countries = settings.allowed_country_codes
    app.add_middleware(
        Guard,
        resolver=app.state.client_resolver,
        rate_limits=container.rate_limits,
        authenticate=container.auth.authenticate,
        exempt=settings.rate_limit_exempt_networks,
        countries=CountryRule(
            allowed_countries, header=settings.country_header or None, lookup=container.countries
        )
        if allowed_countries
        else None,
    )
    # Uploads are bounded by their own setting (exactly by the route, as they stream).
    upload_limit = settings.max_upload_bytes + documents.FORM_OVERHEAD_BYTES
    app.add_middleware(
        BodyLimit,
        limit=settings.max_body_bytes,
        routes=[(documents.UPLOAD_PATH, upload_limit), (applicant_pages.UPLOAD_PATH, upload_limit)],
    )
    app.add_middleware(
        CloseWhileDraining, draining=lambda: bool(getattr(app.state, "draining", False))
    )
    # Outermost: every answer is counted, logged and given its headers, refusals of the
    # middlewares above included.
    app.add_middleware(
        Observe,
        metrics=metrics.RequestMetrics(),
        endpoints=lambda: _plain_routes(app),
        security_headers=SecurityHeaders(hsts=settings.public_url.startswith("https://")),
        access_log=settings.access_log,
    )
    document_bearer_auth(app)
    document_problems(app)
    return app


def _plain_routes(app: FastAPI) -> dict[object, str]:
    """Endpoint -> path template of the app's own Starlette routes (the docs)."""
    return {
        route.endpoint: route.path
        for route in app.router.routes
        if isinstance(route, Route) and not isinstance(route, APIRoute)
    }


def _settle_garbage_collector() -> None:
    """Move what startup built (routes, models, compiled scripts) out of the collector's
    sight, and collect young objects less often. Requests allocate many short-lived
    objects that reference counting frees anyway; with the default threshold of 700 the
    cyclic collector ran often and rescanned the app's long-lived objects. Tuned like
    this, an enroll took about 13 % less CPU (see bench/README.md)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(_GC_YOUNG_THRESHOLD, 20, 20)


# Young-generation allocations between collections; Python's default is 700.
_GC_YOUNG_THRESHOLD = 20_000


def _drain_on_sigterm(app: FastAPI, drain_seconds: float) -> None:
    """On SIGTERM, fail readiness and end SSE streams at once, keep serving for
    ``drain_seconds`` (so health checkers stop sending), then hand over to the server's
    own graceful shutdown (stop accepting, finish what is in flight).

    Chains the handler uvicorn installed; does nothing when there is none (in-process
    tests) or outside the main thread (signals can only be handled there)."""
    if threading.current_thread() is not threading.main_thread():
        return
    server_handler = signal.getsignal(signal.SIGTERM)
    if not callable(server_handler):
        return
    loop = asyncio.get_running_loop()

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        app.state.draining = True
        if drain_seconds > 0:
            loop.call_soon_threadsafe(loop.call_later, drain_seconds, server_handler, signum, frame)
        else:
            server_handler(signum, frame)

    signal.signal(signal.SIGTERM, on_sigterm)


def factory() -> FastAPI:
    """Entry point for ASGI servers (``uvicorn --factory rushgate.http.app:factory``)."""
    settings = Settings()
    configure_process(settings)
    return create_app(settings, own_process=True)
