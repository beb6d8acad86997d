"""The application factory. Settings come in; nothing is built at import time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from rushgate import __version__
from rushgate.config import Settings
from rushgate.domain.clock import Clock
from rushgate.http import errors
from rushgate.http.container import Container
from rushgate.http.deps import document_bearer_auth
from rushgate.http.middleware import BodyLimit
from rushgate.http.routes import admin, auth, health, queue, student


def create_app(settings: Settings, *, clock: Clock | None = None) -> FastAPI:
    container = Container.build(settings, clock)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.draining = False
        container.start()
        try:
            yield
        finally:
            app.state.draining = True
            await container.close()

    app = FastAPI(
        title="rushgate",
        version=__version__,
        summary="Registration rushes that stay correct, fair and fast.",
        lifespan=lifespan,
    )
    app.state.container = container
    errors.install(app)
    # The rush's hottest routes first: routes are matched in order.
    for module in (queue, student, health, auth, admin):
        app.include_router(module.router)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    document_bearer_auth(app)
    return app


def factory() -> FastAPI:
    """Entry point for ASGI servers (``uvicorn --factory rushgate.http.app:factory``)."""
    return create_app(Settings())
