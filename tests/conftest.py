"""Fixtures: every storage test runs against real SQLite and real PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from rushgate.adapters.security import Argon2Hasher
from rushgate.adapters.sql.engine import SqlStorage
from rushgate.composition import Container
from rushgate.config import Settings
from rushgate.domain.clock import FixedClock
from rushgate.http.app import create_app
from tests.support import (
    SECRET,
    T0,
    PostgresTemplates,
    postgres_reachable,
    require_service,
    sqlite_database,
)


@pytest.fixture(scope="session")
async def pg_templates() -> AsyncIterator[PostgresTemplates]:
    reason = await postgres_reachable()
    if reason is not None:
        require_service("PostgreSQL", reason)
    templates = PostgresTemplates()
    await templates.setup()
    yield templates
    await templates.teardown()


@pytest.fixture
async def postgres_url(pg_templates: PostgresTemplates) -> AsyncIterator[str]:
    url = await pg_templates.new_database()
    yield url
    await pg_templates.drop(url)


@pytest.fixture
async def sqlite_url(tmp_path: Path) -> str:
    return await asyncio.to_thread(sqlite_database, tmp_path)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest) -> str:
    """A fresh, migrated database of the parametrized backend."""
    fixture = "sqlite_url" if backend == "sqlite" else "postgres_url"
    return str(request.getfixturevalue(fixture))


@pytest.fixture
def clock() -> FixedClock:
    """Half an hour into the default test term's window."""
    from datetime import timedelta

    return FixedClock(T0 + timedelta(minutes=30))


@pytest.fixture
async def storage(database_url: str, clock: FixedClock) -> AsyncIterator[SqlStorage]:
    store = SqlStorage.from_urls(database_url, None, clock, pool_size=5)
    yield store
    await store.close()


@pytest.fixture
def hasher() -> Argon2Hasher:
    return Argon2Hasher("low")


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=database_url,
        secret_key=SECRET,  # type: ignore[arg-type]
        password_hash_cost="low",
        data_dir=tmp_path / "data",
        admin_username=None,
        admin_password=None,
        max_body_bytes=256 * 1024,
    )


@pytest.fixture
async def app(settings: Settings, clock: FixedClock) -> AsyncIterator[FastAPI]:
    """The app on the parametrized backend, with in-process coordination and an admin
    ``admin``. No background tasks run: tests tick the admitter themselves."""
    app = create_app(settings, clock=clock)
    await app.state.container.registry.ensure_admin("admin", "admin-password")
    yield app
    await app.state.container.close()


@pytest.fixture
def container(app: FastAPI) -> Container:
    node: Container = app.state.container
    return node


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """The app in-process over ASGI (see ``app``)."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://rushgate.test") as c:
        yield c


@pytest.fixture(autouse=True)
def _no_leaked_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests configure rushgate explicitly; the developer's RUSHGATE_* must not leak in."""
    import os

    for name in list(os.environ):
        if name.startswith("RUSHGATE_") and not name.startswith("RUSHGATE_TEST_"):
            monkeypatch.delenv(name)
