"""A real ``rushgate serve`` (uvicorn, 2 workers, loopback) per backend, shared by the module.

One node per backend for the whole module (starting one costs seconds); every test makes
its own term, so tests never see each other's seats. The students (global, not per term)
and their tokens are made once per node.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from rushgate.adapters.sql.engine import sqlite_url_for
from tests.serverproc import DEFAULT_ADMIN, HttpPool, ServerConfig, ServerProcess
from tests.support import PostgresTemplates

STUDENTS = 1000
POOL = 200  # client connections: the rush is limited by the server, not by the pool
PASSWORD = "rush-password-1"


@dataclass
class Rush:
    """A running node, its database and a logged-in crowd."""

    backend: str
    server: ServerProcess
    database_url: str  # for direct checks: postgresql://… or sqlite:///…
    client: HttpPool
    admin_headers: dict[str, str] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)  # student id -> bearer token

    @property
    def students(self) -> list[str]:
        return sorted(self.tokens)

    def auth(self, student_id: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[student_id]}"}

    async def new_term(self, prefix: str) -> str:
        code = f"{prefix}-{uuid.uuid4().hex[:8]}"
        now = datetime.now(UTC)
        r = await self.client.post(
            "/api/v1/admin/terms",
            json={
                "code": code,
                "name": f"Rush {code}",
                "opens_at": (now - timedelta(hours=1)).isoformat(),
                "closes_at": (now + timedelta(hours=6)).isoformat(),
            },
            headers=self.admin_headers,
        )
        assert r.status_code == 201, r.text
        return code

    async def add_sections(self, term: str, sections: list[dict[str, Any]]) -> None:
        r = await self.client.post(
            f"/api/v1/admin/terms/{term}/sections", json=sections, headers=self.admin_headers
        )
        assert r.status_code == 201, r.text

    async def enroll(
        self, term: str, student_id: str, section_id: str, *, key: str | None = None
    ) -> httpx.Response:
        headers = self.auth(student_id)
        if key is not None:
            headers["Idempotency-Key"] = key
        return await self.client.post(
            f"/api/v1/terms/{term}/enrollments", json={"section_id": section_id}, headers=headers
        )

    async def drop(self, term: str, student_id: str, section_id: str) -> httpx.Response:
        return await self.client.delete(
            f"/api/v1/terms/{term}/enrollments/{section_id}", headers=self.auth(student_id)
        )

    async def catalog(self, term: str) -> dict[str, dict[str, Any]]:
        student = next(iter(self.tokens))
        r = await self.client.get(f"/api/v1/terms/{term}/sections", headers=self.auth(student))
        assert r.status_code == 200, r.text
        return {s["section_id"]: s for s in r.json()["sections"]}

    async def roster(self, term: str, section_id: str) -> dict[str, Any]:
        r = await self.client.get(
            f"/api/v1/admin/terms/{term}/sections/{section_id}/roster", headers=self.admin_headers
        )
        assert r.status_code == 200, r.text
        return dict(r.json())

    async def warm_up(self) -> None:
        """Open every client connection before a race, so the race measures the server."""
        await self.client.warm_up()


def section(
    section_id: str,
    *,
    capacity: int,
    waitlist: int = 0,
    course: str | None = None,
    day: str = "MON",
    start: str = "09:00",
    end: str = "10:15",
    credits: int = 3,
) -> dict[str, Any]:
    return {
        "section_id": section_id,
        "course_code": course or section_id.split("-")[0],
        "title": f"Title of {section_id}",
        "credits": credits,
        "capacity": capacity,
        "waitlist_capacity": waitlist,
        "meetings": [{"day": day, "start": start, "end": end}],
    }


async def _login_all(client: HttpPool, students: list[str]) -> dict[str, str]:
    async def login(student_id: str) -> tuple[str, str]:
        r = await client.post(
            "/api/v1/auth/token", json={"username": student_id, "password": PASSWORD}
        )
        assert r.status_code == 200, r.text
        return student_id, str(r.json()["access_token"])

    return dict(await asyncio.gather(*(login(s) for s in students)))


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def rush_backend(request: pytest.FixtureRequest) -> tuple[str, PostgresTemplates | None]:
    """The backend, and for PostgreSQL the templates (asked for only then: no server, no
    PostgreSQL needed for the SQLite half)."""
    backend = str(request.param)
    if backend == "postgres":
        return backend, request.getfixturevalue("pg_templates")
    return backend, None


@pytest.fixture(scope="module")
async def rush(
    rush_backend: tuple[str, PostgresTemplates | None], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Rush]:
    backend, pg = rush_backend
    workdir: Path = tmp_path_factory.mktemp(f"rush-{backend}")
    if pg is not None:
        url = await pg.new_database()
        config = ServerConfig(log_dir=workdir, database_url=url, name="pg")
    else:
        data_dir = workdir / "data"
        url = sqlite_url_for(data_dir)
        config = ServerConfig(log_dir=workdir, data_dir=data_dir, name="sqlite")
    server = ServerProcess(config)
    try:
        await server.astart()
        async with HttpPool(server.base_url, size=POOL) as client:
            admin = await client.post(
                "/api/v1/auth/token",
                json={"username": DEFAULT_ADMIN[0], "password": DEFAULT_ADMIN[1]},
            )
            assert admin.status_code == 200, admin.text
            node = Rush(
                backend=backend,
                server=server,
                database_url=url,
                client=client,
                admin_headers={"Authorization": f"Bearer {admin.json()['access_token']}"},
            )
            students = [f"rush{i:05d}" for i in range(STUDENTS)]
            r = await client.post(
                "/api/v1/admin/students",
                json=[
                    {
                        "student_id": s,
                        "name": f"Student {s}",
                        "email": f"{s}@example.test",
                        "password": PASSWORD,
                        "class_year": 1 + i % 4,
                        "max_credits": 60,
                    }
                    for i, s in enumerate(students)
                ],
                headers=node.admin_headers,
            )
            assert r.status_code == 201, r.text
            node.tokens = await _login_all(client, students)
            yield node
    finally:
        await server.astop()
        if pg is not None:
            await pg.drop(url)
    # A worker that crashed or logged an unhandled error fails the module's last test.
    log = server.log_text()
    assert "Traceback" not in log, server.log_tail(80)
