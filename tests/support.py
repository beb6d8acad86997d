"""Test helpers shared by every suite: real databases, apps, factories."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import asyncpg
import pytest

from rushgate.adapters.sql.migrate import upgrade
from rushgate.domain.model import Day, Meeting, RegistrationWindow
from rushgate.services.ports import NewSection, NewTerm

# The server tests create their throwaway databases on. Any superuser-ish login works.
POSTGRES_URL = os.environ.get(
    "RUSHGATE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
SECRET = "test-secret-key-that-is-long-enough-0123456789"
T0 = datetime(2026, 2, 10, 10, 0, tzinfo=UTC)


def require_service(what: str, reason: str) -> None:
    """Skip locally when a real service is missing; in CI a missing service is a failure."""
    message = f"{what} is not reachable: {reason}"
    if IN_CI:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def _db_url(name: str) -> str:
    base, _, _ = POSTGRES_URL.rpartition("/")
    return f"{base}/{name}"


class PostgresTemplates:
    """A migrated template database; each test gets a copy in ~50 ms (CREATE ... TEMPLATE)."""

    def __init__(self) -> None:
        self.template = f"rushgate_tmpl_{uuid.uuid4().hex[:8]}"
        self.created: list[str] = []

    async def _admin(self) -> asyncpg.Connection:
        return await asyncpg.connect(POSTGRES_URL.replace("postgresql://", "postgres://", 1))

    async def setup(self) -> None:
        conn = await self._admin()
        try:
            await conn.execute(f'CREATE DATABASE "{self.template}"')
        finally:
            await conn.close()
        await asyncio.to_thread(upgrade, _db_url(self.template))

    async def new_database(self) -> str:
        name = f"rushgate_test_{uuid.uuid4().hex[:12]}"
        conn = await self._admin()
        try:
            await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
        finally:
            await conn.close()
        self.created.append(name)
        return _db_url(name)

    async def drop(self, url: str) -> None:
        name = url.rpartition("/")[2]
        conn = await self._admin()
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    async def teardown(self) -> None:
        conn = await self._admin()
        try:
            for name in [*self.created, self.template]:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


async def postgres_reachable() -> str | None:
    """None when reachable, else the reason."""
    try:
        conn = await asyncpg.connect(
            POSTGRES_URL.replace("postgresql://", "postgres://", 1), timeout=5
        )
    except (OSError, asyncpg.PostgresError, asyncio.TimeoutError) as exc:
        return f"{POSTGRES_URL}: {exc}"
    await conn.close()
    return None


def sqlite_database(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'rushgate.sqlite3'}"
    upgrade(url)
    return url


# --- factories ---------------------------------------------------------------------------


def window(
    opens_at: datetime = T0, hours: int = 6, by_year: dict[int, datetime] | None = None
) -> RegistrationWindow:
    return RegistrationWindow(opens_at, opens_at + timedelta(hours=hours), by_year or {})


def new_term(code: str = "2026-spring", **overrides: object) -> NewTerm:
    values: dict[str, object] = {
        "code": code,
        "name": f"Term {code}",
        "window": window(),
        "waiting_room_enabled": False,
        "admit_per_second": 10,
    }
    values.update(overrides)
    return NewTerm(**values)  # type: ignore[arg-type]


def meeting(day: str = "MON", start: str = "09:00", end: str = "10:15") -> Meeting:
    return Meeting(Day(day), time.fromisoformat(start), time.fromisoformat(end))


def new_section(
    section_id: str = "CS101-01",
    *,
    course_code: str | None = None,
    capacity: int = 40,
    credits: int = 3,
    waitlist_capacity: int = 0,
    meetings: tuple[Meeting, ...] | None = None,
) -> NewSection:
    return NewSection(
        section_id=section_id,
        course_code=course_code or section_id.split("-")[0],
        title=f"Title of {section_id}",
        credits=credits,
        capacity=capacity,
        meetings=meetings if meetings is not None else (meeting(),),
        waitlist_capacity=waitlist_capacity,
    )


@asynccontextmanager
async def nothing() -> AsyncIterator[None]:
    yield
