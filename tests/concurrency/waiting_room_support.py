"""Real ``rushgate serve`` nodes for the waiting-room tests: several nodes on one PostgreSQL
database and one Redis key prefix, students with tokens, and the queue calls.

Used by ``tests/concurrency/test_waiting_room.py`` and ``tests/chaos/``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
from sqlalchemy import text

from rushgate.adapters.security import JwtSigner
from rushgate.adapters.sql.engine import create_engine
from rushgate.domain.clock import SystemClock
from rushgate.services.ports.auth import Principal
from tests.serverproc import DEFAULT_ADMIN, DEFAULT_SECRET, HttpPool, ServerConfig, ServerProcess
from tests.support import REDIS_URL, redis_reachable, require_service

PASSWORD = "room-password-1"
# The bulk endpoint takes more, but a batch also has to fit the default 8 MiB body limit.
STUDENT_BATCH = 1000  # the admin API's cap per bulk request


async def require_redis() -> None:
    reason = await redis_reachable()
    if reason is not None:
        require_service("Redis", reason)


async def delete_redis_prefix(url: str, prefix: str) -> None:
    """Drop every key a test's nodes wrote (each config has its own prefix)."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url, socket_connect_timeout=5)
    try:
        doomed = [key async for key in client.scan_iter(match=f"{prefix}*", count=1000)]
        for start in range(0, len(doomed), 500):
            await client.unlink(*doomed[start : start + 500])
    finally:
        await client.aclose()


def room_term(
    code: str,
    *,
    opens_at: datetime | None = None,
    admit_per_second: int,
    max_active: int = 1_000_000,
    admission_ttl_seconds: int = 600,
) -> dict[str, Any]:
    opens = opens_at or datetime.now(UTC) - timedelta(hours=1)
    return {
        "code": code,
        "name": f"Room {code}",
        "opens_at": opens.isoformat(),
        "closes_at": (opens + timedelta(hours=6)).isoformat(),
        "waiting_room": {
            "enabled": True,
            "admit_per_second": admit_per_second,
            "max_active": max_active,
            "admission_ttl_seconds": admission_ttl_seconds,
        },
    }


def section(section_id: str, *, capacity: int, day: str = "MON") -> dict[str, Any]:
    return {
        "section_id": section_id,
        "course_code": section_id.split("-")[0],
        "title": f"Title of {section_id}",
        "credits": 3,
        "capacity": capacity,
        "waitlist_capacity": 0,
        "meetings": [{"day": day, "start": "09:00", "end": "10:15"}],
    }


def student_json(student_id: str) -> dict[str, Any]:
    return {
        "student_id": student_id,
        "name": f"Student {student_id}",
        "email": f"{student_id}@example.test",
        "password": PASSWORD,
        "class_year": 2,
        "max_credits": 60,
    }


def claims(admission_token: str) -> dict[str, Any]:
    """The payload of an admission token, read without checking the signature."""
    payload: dict[str, Any] = jwt.decode(admission_token, options={"verify_signature": False})
    return payload


def problem_code(response: httpx.Response) -> str | None:
    if response.headers.get("content-type", "").startswith("application/problem+json"):
        return str(response.json().get("code"))
    return None


def serving_seen(body: dict[str, Any]) -> int | None:
    """The room's serving counter as a waiting student's status shows it: for a ticket past
    the pre-queue the admission position is the ticket, and ``position`` counts from serving."""
    if body.get("state") != "waiting" or body.get("position") is None:
        return None
    return int(body["ticket"]) - int(body["position"])


class RawConnection:
    """One keep-alive HTTP/1.1 connection speaking just enough of the protocol for small
    requests and ``Content-Length`` responses. A request costs the client a few tens of
    microseconds instead of over a millisecond with httpx, so a burst from one test process
    measures the node, not the client."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)

    async def request(
        self, method: str, path: str, headers: dict[str, str], body: bytes = b""
    ) -> tuple[int, bytes]:
        """The status and body. Raises ``ConnectionError`` if the node hangs up."""
        if self._writer is None:
            await self.open()
        assert self._reader is not None
        assert self._writer is not None
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        lines.append(f"Content-Length: {len(body)}")
        self._writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        try:
            head = await self._reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            await self.close()
            raise ConnectionError("the node closed the connection") from exc
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        length = 0
        for line in header_lines:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        payload = await self._reader.readexactly(length) if length else b""
        return int(status_line.split(" ", 2)[1]), payload

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()
        self._reader = self._writer = None


@dataclass
class Cluster:
    """Nodes on one database and one Redis prefix, a client per node, and students."""

    database_url: str
    redis_url: str
    redis_prefix: str
    servers: list[ServerProcess]
    clients: list[HttpPool]
    admin_headers: dict[str, str] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)  # student id -> access token
    pks: dict[str, int] = field(default_factory=dict)  # student id -> student pk
    responses: list[tuple[str, int, str | None]] = field(default_factory=list)
    # Retry ``503 coordination_unavailable`` for up to this many seconds (each one is
    # still remembered in ``responses``); 0: return it.
    retry_unavailable_seconds: float = 0.0
    hang_ups: int = 0  # requests sent again after the node closed an idle connection

    def client(self, node: int) -> HttpPool:
        return self.clients[node % len(self.clients)]

    def auth(self, student: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[student]}"}

    async def call(
        self, node: int, method: str, url: str, *, what: str = "", **kwargs: Any
    ) -> httpx.Response:
        """A request to one node; every answer is remembered (status, problem code)."""
        loop = asyncio.get_running_loop()
        until = loop.time() + self.retry_unavailable_seconds
        while True:
            try:
                response = await self.client(node).request(method, url, **kwargs)
            except httpx.RemoteProtocolError:
                # uvicorn closes a keep-alive connection after 5 idle seconds; a request
                # sent at that instant is dropped unread. Sent again once (queue calls are
                # idempotent), as browsers do; a node that really hangs up fails again.
                self.hang_ups += 1
                response = await self.client(node).request(method, url, **kwargs)
            code = problem_code(response)
            self.responses.append((what or url, response.status_code, code))
            unavailable = (response.status_code, code) == (503, "coordination_unavailable")
            if not unavailable or loop.time() >= until:
                return response
            await asyncio.sleep(0.1)

    # --- admin ---------------------------------------------------------------------------

    async def create_term(self, prefix: str, **room: Any) -> str:
        code = f"{prefix}-{uuid.uuid4().hex[:8]}"
        r = await self.call(
            0,
            "POST",
            "/api/v1/admin/terms",
            json=room_term(code, **room),
            headers=self.admin_headers,
        )
        assert r.status_code == 201, r.text
        return code

    async def add_sections(self, term: str, sections: list[dict[str, Any]]) -> None:
        r = await self.call(
            0,
            "POST",
            f"/api/v1/admin/terms/{term}/sections",
            json=sections,
            headers=self.admin_headers,
        )
        assert r.status_code == 201, r.text

    async def create_students(self, students: Sequence[str]) -> None:
        """Through the bulk endpoint, in batches spread over the nodes (they hash)."""
        batches = [
            students[start : start + STUDENT_BATCH]
            for start in range(0, len(students), STUDENT_BATCH)
        ]

        async def create(node: int, batch: Sequence[str]) -> None:
            r = await self.client(node).post(
                "/api/v1/admin/students",
                json=[student_json(s) for s in batch],
                headers=self.admin_headers,
                timeout=300,
            )
            assert r.status_code == 201, r.text

        await asyncio.gather(*(create(i, batch) for i, batch in enumerate(batches)))

    async def login(self, students: Sequence[str]) -> None:
        """Real logins (POST /api/v1/auth/token), spread over the nodes."""

        async def one(i: int, student: str) -> tuple[str, str]:
            r = await self.client(i).post(
                "/api/v1/auth/token", json={"username": student, "password": PASSWORD}
            )
            assert r.status_code == 200, r.text
            return student, str(r.json()["access_token"])

        self.tokens.update(await asyncio.gather(*(one(i, s) for i, s in enumerate(students))))
        await self.load_pks(students)

    async def load_pks(self, students: Sequence[str]) -> None:
        wanted = set(students)
        self.pks.update(
            {s: pk for s, (pk, _) in (await accounts(self.database_url)).items() if s in wanted}
        )
        missing = wanted - set(self.pks)
        assert not missing, f"{len(missing)} students are not in the database"

    async def mint_tokens(self, students: Sequence[str], secret: str = DEFAULT_SECRET) -> None:
        """Access tokens signed as the nodes sign them, for students that really exist
        (their pks are read from the database): logging in 20,000 students costs minutes."""
        rows = await accounts(self.database_url)
        signer = JwtSigner(secret, SystemClock(), timedelta(hours=4))
        for student in students:
            student_pk, user_pk = rows[student]
            token, _ = signer.issue(Principal(user_pk, student, "student", student_pk))
            self.tokens[student] = token
            self.pks[student] = student_pk

    async def roster(self, term: str, section_id: str) -> dict[str, Any]:
        r = await self.call(
            0,
            "GET",
            f"/api/v1/admin/terms/{term}/sections/{section_id}/roster",
            headers=self.admin_headers,
        )
        assert r.status_code == 200, r.text
        return dict(r.json())

    # --- students ------------------------------------------------------------------------

    async def join(self, term: str, student: str, node: int = 0) -> httpx.Response:
        return await self.call(
            node, "POST", f"/api/v1/queue/{term}/join", what="join", headers=self.auth(student)
        )

    async def status(self, term: str, student: str, node: int = 0) -> httpx.Response:
        return await self.call(
            node, "GET", f"/api/v1/queue/{term}/status", what="status", headers=self.auth(student)
        )

    async def leave(self, term: str, student: str, node: int = 0) -> httpx.Response:
        return await self.call(
            node, "POST", f"/api/v1/queue/{term}/leave", what="leave", headers=self.auth(student)
        )

    async def enroll(
        self, term: str, student: str, section_id: str, token: str | None, node: int = 0
    ) -> httpx.Response:
        headers = self.auth(student)
        if token is not None:
            headers["X-Admission-Token"] = token
        return await self.call(
            node,
            "POST",
            f"/api/v1/terms/{term}/enrollments",
            what="enroll",
            json={"section_id": section_id},
            headers=headers,
        )

    async def wait_admitted(
        self, term: str, student: str, *, timeout: float, node: int = 0
    ) -> dict[str, Any]:
        """The student's status once admitted (polled every 50 ms)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        body: dict[str, Any] = {}
        while loop.time() < deadline:
            r = await self.status(term, student, node)
            assert r.status_code == 200, r.text
            body = r.json()
            if body["state"] == "admitted":
                return body
            await asyncio.sleep(0.05)
        raise AssertionError(f"{student} not admitted within {timeout}s: {body}")

    def unexpected_server_errors(self, allowed: frozenset[int] = frozenset()) -> list[str]:
        return [
            f"{what}: {status} {code}"
            for what, status, code in self.responses
            if status >= 500 and status not in allowed
        ]


async def accounts(database_url: str) -> dict[str, tuple[int, int]]:
    """Straight from the database: student id -> (student pk, user pk)."""
    engine = create_engine(database_url, writer=False, pool_size=1)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(text("SELECT student_id, id, user_id FROM students"))
            return {str(r[0]): (int(r[1]), int(r[2])) for r in rows}
    finally:
        await engine.dispose()


@contextlib.asynccontextmanager
async def cluster(
    workdir: Path,
    database_url: str,
    *,
    nodes: int,
    workers: int = 1,
    tick_ms: int = 100,
    redis_url: str = REDIS_URL,
    pool_size: int = 50,
    extra_env: dict[str, str] | None = None,
    check_logs: bool = True,
) -> AsyncIterator[Cluster]:
    """``nodes`` nodes of ``workers`` workers each on one database and one Redis prefix.

    The first node starts alone (it creates the admin), the others together. With
    ``check_logs`` a traceback in any node's log fails the caller once the nodes stop.
    """
    base = ServerConfig(
        log_dir=workdir,
        database_url=database_url,
        workers=workers,
        redis_url=redis_url,
        extra_env={"RUSHGATE_QUEUE_TICK_MS": str(tick_ms), **(extra_env or {})},
    )
    configs = [dataclasses.replace(base, name=f"node{i}") for i in range(nodes)]
    servers = [ServerProcess(c) for c in configs]
    clients: list[HttpPool] = []
    try:
        await servers[0].astart()
        await asyncio.gather(*(s.astart() for s in servers[1:]))
        clients = [HttpPool(s.base_url, size=pool_size, timeout=60.0) for s in servers]
        admin = await clients[0].post(
            "/api/v1/auth/token", json={"username": DEFAULT_ADMIN[0], "password": DEFAULT_ADMIN[1]}
        )
        assert admin.status_code == 200, admin.text
        yield Cluster(
            database_url=database_url,
            redis_url=redis_url,
            redis_prefix=base.redis_prefix,
            servers=servers,
            clients=clients,
            admin_headers={"Authorization": f"Bearer {admin.json()['access_token']}"},
        )
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))
        await asyncio.gather(*(s.astop() for s in servers))
        with contextlib.suppress(Exception):
            await delete_redis_prefix(redis_url, base.redis_prefix)
    if check_logs:
        for server in servers:
            assert "Traceback" not in server.log_text(), server.log_tail(80)
