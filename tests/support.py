"""Test helpers shared by every suite: real databases, apps, factories."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from rushgate.adapters.sql.engine import SqlStorage, create_engine
from rushgate.adapters.sql.migrate import upgrade
from rushgate.domain.model import Day, Meeting, RegistrationWindow
from rushgate.services.ports.registry import NewSection, NewStudent, Term
from rushgate.services.ports.storage import Storage
from rushgate.services.registry import StudentInput

# The server tests create their throwaway databases on. Any superuser-ish login works.
POSTGRES_URL = os.environ.get(
    "RUSHGATE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("RUSHGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
SECRET = "test-secret-key-that-is-long-enough-0123456789"
T0 = datetime(2026, 2, 10, 10, 0, tzinfo=UTC)


def closed_port() -> int:
    """A loopback port nothing listens on (it was free a moment ago)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


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
    except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
        return f"{POSTGRES_URL}: {exc}"
    await conn.close()
    return None


async def redis_reachable() -> str | None:
    """None when reachable, else the reason."""
    import redis.asyncio as aioredis
    from redis.exceptions import RedisError

    client = aioredis.Redis.from_url(REDIS_URL, socket_connect_timeout=5)
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        return f"{REDIS_URL}: {exc}"
    finally:
        await client.aclose()
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


def new_term(code: str = "2026-spring", **overrides: object) -> Term:
    values: dict[str, object] = {
        "code": code,
        "name": f"Term {code}",
        "window": window(),
        "waiting_room_enabled": False,
        "admit_per_second": 10,
    }
    values.update(overrides)
    return Term(**values)  # type: ignore[arg-type]


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


# --- students, seeding and invariants (shared by the behaviour and concurrency suites) ---


def new_student(
    student_id: str = "s1",
    *,
    class_year: int = 2,
    max_credits: int = 18,
    name: str | None = None,
    email: str | None = None,
) -> NewStudent:
    """A student row as the registry writes it (the hash is a placeholder: no login)."""
    return NewStudent(
        student_id=student_id,
        name=name or f"Student {student_id}",
        email=email or f"{student_id}@example.test",
        password_hash="not-a-real-hash",
        class_year=class_year,
        max_credits=max_credits,
    )


def student_input(
    student_id: str = "s1",
    *,
    password: str = "password-123",
    class_year: int = 2,
    max_credits: int = 18,
    email: str | None = None,
) -> StudentInput:
    """A student as an admin submits it to ``RegistryService.create_students``."""
    return StudentInput(
        student_id=student_id,
        name=f"Student {student_id}",
        email=email or f"{student_id}@example.test",
        password=password,
        class_year=class_year,
        max_credits=max_credits,
    )


async def add_students(storage: Storage, *students: NewStudent) -> dict[str, int]:
    """Write students directly (no hashing); their pks by student id."""
    async with storage.unit_of_work() as uow:
        await uow.registry.add_students(list(students))
        await uow.commit()
    return {s.student_id: await student_pk(storage, s.student_id) for s in students}


async def student_pk(storage: Storage, student_id: str) -> int:
    account = await storage.reads(fresh=True).account(student_id)
    assert account is not None, student_id
    assert account.student_pk is not None, student_id
    return account.student_pk


async def seed(
    storage: Storage,
    *,
    term: Term | None = None,
    sections: Sequence[NewSection] = (),
    students: Sequence[NewStudent] = (),
) -> dict[str, int]:
    """A term (default ``new_term()``), its sections and students; student pks by id."""
    term = term or new_term()
    async with storage.unit_of_work() as uow:
        await uow.registry.add_term(term)
        if sections:
            await uow.registry.add_sections(await uow.registry.term_pk(term.code), sections)
        await uow.commit()
    return await add_students(storage, *students) if students else {}


def _engine_for(target: str | SqlStorage) -> tuple[AsyncEngine, bool]:
    """An engine to read with, and whether it is ours to dispose."""
    if isinstance(target, str):
        return create_engine(target, writer=False, pool_size=1), True
    return target.primary_reads, False


_INVARIANT_QUERIES: dict[str, str] = {
    "seat count differs from enrolled rows, or exceeds capacity": """
        SELECT t.code, s.section_id, s.capacity, s.enrolled, c.n
        FROM sections s JOIN terms t ON t.id = s.term_id
        JOIN (SELECT s2.id AS id, (SELECT count(*) FROM enrollments e
                                   WHERE e.section_id = s2.id AND e.status = 'enrolled') AS n
              FROM sections s2) c ON c.id = s.id
        WHERE s.enrolled <> c.n OR s.enrolled > s.capacity OR s.enrolled < 0""",
    "waitlist count differs from waitlisted rows, or exceeds waitlist capacity": """
        SELECT t.code, s.section_id, s.waitlist_capacity, s.waitlisted, c.n
        FROM sections s JOIN terms t ON t.id = s.term_id
        JOIN (SELECT s2.id AS id, (SELECT count(*) FROM enrollments e
                                   WHERE e.section_id = s2.id AND e.status = 'waitlisted') AS n
              FROM sections s2) c ON c.id = s.id
        WHERE s.waitlisted <> c.n OR s.waitlisted > s.waitlist_capacity OR s.waitlisted < 0""",
    "a student holds two places in one course": """
        SELECT term_id, student_id, course_code, count(*)
        FROM enrollments GROUP BY term_id, student_id, course_code HAVING count(*) > 1""",
    "a row disagrees with its section's term or course": """
        SELECT e.id, e.term_id, e.course_code, s.term_id, s.course_code
        FROM enrollments e JOIN sections s ON s.id = e.section_id
        WHERE e.term_id <> s.term_id OR e.course_code <> s.course_code""",
    "two waitlist entries share a ticket": """
        SELECT section_id, waitlist_seq, count(*) FROM enrollments
        WHERE waitlist_seq IS NOT NULL GROUP BY section_id, waitlist_seq HAVING count(*) > 1""",
    "a ticket is beyond the section's ticket counter": """
        SELECT e.id, e.waitlist_seq, s.waitlist_seq
        FROM enrollments e JOIN sections s ON s.id = e.section_id
        WHERE e.waitlist_seq > s.waitlist_seq""",
    "students wait while a seat is free": """
        SELECT t.code, s.section_id, s.capacity, s.enrolled, s.waitlisted
        FROM sections s JOIN terms t ON t.id = s.term_id
        WHERE s.waitlisted > 0 AND s.enrolled < s.capacity""",
}


async def invariant_violations(target: str | SqlStorage) -> list[str]:
    """Every broken seat invariant, as readable lines; empty when all hold.

    ``target`` is a database URL (``postgresql://…`` / ``sqlite:///…``) or a ``SqlStorage``.
    All checks read one snapshot (REPEATABLE READ on PostgreSQL, one transaction on SQLite),
    so they can run while other processes write.
    """
    engine, owned = _engine_for(target)
    found: list[str] = []
    try:
        async with engine.connect() as conn:
            if engine.dialect.name == "postgresql":
                conn = await conn.execution_options(isolation_level="REPEATABLE READ")
            async with conn.begin():
                for what, sql in _INVARIANT_QUERIES.items():
                    for row in await conn.execute(text(sql)):
                        found.append(f"{what}: {tuple(row)}")
    finally:
        if owned:
            await engine.dispose()
    return found


async def check_invariants(target: str | SqlStorage) -> None:
    """Fail with every violation listed (see ``invariant_violations``)."""
    found = await invariant_violations(target)
    assert not found, "seat invariants violated:\n" + "\n".join(found)


async def reset_enrollments(storage: SqlStorage) -> None:
    """Back to a just-seeded state: no enrollments or idempotency keys, all counters zero.

    Terms, sections and students stay. Children are deleted before the counters are zeroed,
    in one transaction, so the CHECK constraints hold at every statement.
    """
    async with storage.primary.begin() as conn:
        await conn.execute(text("DELETE FROM idempotency_keys"))
        await conn.execute(text("DELETE FROM enrollments"))
        await conn.execute(
            text("UPDATE sections SET enrolled = 0, waitlisted = 0, waitlist_seq = 0")
        )


async def holding_rows(target: SqlStorage) -> list[tuple[str, str, str, int | None]]:
    """Every enrollment row as ``(section_id, student_id, status, waitlist_seq)``, sorted."""
    engine, _ = _engine_for(target)
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT s.section_id, st.student_id, e.status, e.waitlist_seq FROM enrollments e"
                " JOIN sections s ON s.id = e.section_id JOIN students st ON st.id = e.student_id"
                " ORDER BY s.section_id, e.status, e.waitlist_seq, st.student_id"
            )
        )
        return [(r[0], r[1], r[2], r[3]) for r in rows]


@contextmanager
def own_event_loop() -> Iterator[asyncio.Runner]:
    """A private event loop for sync tests (hypothesis) that drive async code.

    Not installed as the thread's current loop, so pytest-asyncio's session loop is untouched.
    """
    with asyncio.Runner(loop_factory=asyncio.new_event_loop) as runner:
        yield runner
