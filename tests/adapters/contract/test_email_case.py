"""An email address is one account whatever its case, on SQLite and PostgreSQL: the
repositories refuse a second spelling with ``Conflict``, the unique indexes on
``lower(…)`` refuse it whatever writes the row, and migration 0006 brings existing
data there (or stops, naming the clashes)."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta

import pytest
from alembic import command
from sqlalchemy import insert, select, text
from sqlalchemy.exc import IntegrityError

from rushgate.adapters.sql.engine import SqlStorage, create_engine
from rushgate.adapters.sql.migrate import alembic_config, upgrade
from rushgate.adapters.sql.tables import applicants, metadata, students, users
from rushgate.domain.errors import Conflict
from tests.adapters.contract.test_schema_0005 import compare
from tests.support import T0, add_students, new_student

ADDRESS_TABLES = {"students", "applicants", "users"}


async def add_applicant(storage: SqlStorage, email: str) -> None:
    async with storage.unit_of_work() as uow:
        await uow.admissions.add_applicant(
            email=email, name="지원자", password_hash="x", locale=None, now=T0
        )
        await uow.commit()


async def student_emails(storage: SqlStorage) -> list[str]:
    async with storage.primary_reads.connect() as conn:
        rows = await conn.execute(select(students.c.email).order_by(students.c.email))
        return list(rows.scalars())


async def test_a_student_email_in_another_case_is_taken(storage: SqlStorage) -> None:
    await add_students(storage, new_student("s1", email="s1@x.edu"))
    async with storage.unit_of_work() as uow:
        with pytest.raises(Conflict) as caught:
            await uow.registry.add_students(
                [new_student("s2"), new_student("s3", email="S1@X.EDU")]
            )
    assert caught.value.context["existing"] == ["s1@x.edu"]
    assert await student_emails(storage) == ["s1@x.edu"]


async def test_one_batch_with_two_spellings_of_an_email(storage: SqlStorage) -> None:
    batch = [new_student("s1", email="Same@X.edu"), new_student("s2", email="same@x.EDU")]
    async with storage.unit_of_work() as uow:
        with pytest.raises(Conflict) as caught:
            await uow.registry.add_students(batch)
    assert caught.value.context["duplicates"] == ["same@x.edu"]
    assert await student_emails(storage) == []


async def test_an_applicant_email_in_another_case_is_taken(storage: SqlStorage) -> None:
    await add_applicant(storage, "kim@example.test")
    with pytest.raises(Conflict):
        await add_applicant(storage, "Kim@Example.TEST")


async def test_an_admin_address_is_taken_for_applicants_in_any_case(storage: SqlStorage) -> None:
    async with storage.unit_of_work() as uow:
        assert await uow.registry.add_admin("boss@x.edu", "hash")
        await uow.commit()
    with pytest.raises(Conflict):
        await add_applicant(storage, "BOSS@x.edu")


async def test_the_indexes_hold_whatever_writes_the_row(storage: SqlStorage) -> None:
    """The guarantee under races and for any other writer: the unique indexes."""
    pks = await add_students(storage, new_student("s1", email="s1@x.edu"))
    async with storage.primary.connect() as conn:
        user_pk = (
            await conn.execute(select(students.c.user_id).where(students.c.id == pks["s1"]))
        ).scalar_one()
    row = {
        "user_id": user_pk,
        "student_id": "s2",
        "name": "S",
        "email": "S1@x.EDU",
        "class_year": 1,
        "max_credits": 1,
    }
    async with storage.primary.connect() as conn:
        with pytest.raises(IntegrityError):
            await conn.execute(insert(students).values(row))
    user = {"password_hash": "x", "role": "applicant", "created_at": T0}
    async with storage.primary.connect() as conn:
        await conn.execute(insert(users).values(username="a@x.edu", **user))
        with pytest.raises(IntegrityError):
            await conn.execute(insert(users).values(username="A@x.edu", **user))
    async with storage.primary.connect() as conn:
        # Student ids stay exact: only usernames with an "@" are addresses.
        await conn.execute(insert(users).values(username="S1", **user))
        await conn.execute(insert(users).values(username="s1x", **user))


# --- migration 0006 ------------------------------------------------------------------


def _downgrade(url: str, revision: str) -> None:
    command.downgrade(alembic_config(url), revision)


async def _execute(url: str, *statements: str) -> None:
    engine = create_engine(url, writer=True, pool_size=1)
    try:
        async with engine.begin() as conn:
            for statement in statements:
                await conn.execute(text(statement))
    finally:
        await engine.dispose()


async def _rows(url: str, query: str) -> list[tuple[object, ...]]:
    engine = create_engine(url, writer=False, pool_size=1)
    try:
        async with engine.connect() as conn:
            return [tuple(r) for r in await conn.execute(text(query))]
    finally:
        await engine.dispose()


_AT = (T0 - timedelta(days=1)).strftime("%Y-%m-%d %H:%M:%S")


def _legacy_rows(student_emails: tuple[str, str]) -> list[str]:
    """Rows as versions before 0006 could write them: mixed-case addresses."""
    return [
        "INSERT INTO users (id, username, password_hash, role, created_at) VALUES "
        f"(1, 's1', 'x', 'student', '{_AT}'), (2, 's2', 'x', 'student', '{_AT}'), "
        f"(3, 'Boss@Uni.EDU', 'x', 'admin', '{_AT}'), (4, 'S1', 'x', 'student', '{_AT}')",
        "INSERT INTO students (id, user_id, student_id, name, email, class_year, max_credits) "
        f"VALUES (1, 1, 's1', 'S', '{student_emails[0]}', 1, 1), "
        f"(2, 2, 's2', 'S', '{student_emails[1]}', 1, 1)",
    ]


async def test_migration_0006_lower_cases_existing_addresses(database_url: str) -> None:
    await asyncio.to_thread(_downgrade, database_url, "0005")
    await _execute(database_url, *_legacy_rows(("S1@X.EDU", "s2@x.edu")))
    await asyncio.to_thread(upgrade, database_url)
    assert await _rows(database_url, "SELECT email FROM students ORDER BY id") == [
        ("s1@x.edu",),
        ("s2@x.edu",),
    ]
    assert await _rows(database_url, "SELECT username FROM users ORDER BY id") == [
        ("s1",),
        ("s2",),
        ("boss@uni.edu",),
        ("S1",),  # a student id, not an address: left as it is
    ]


async def test_migration_0006_stops_on_clashing_addresses(database_url: str) -> None:
    await asyncio.to_thread(_downgrade, database_url, "0005")
    await _execute(database_url, *_legacy_rows(("S1@X.EDU", "s1@x.edu")))
    with pytest.raises(RuntimeError, match=r"students\.email 's1@x\.edu' \(2 rows\)"):
        await asyncio.to_thread(upgrade, database_url)
    # Nothing was changed: the operator sees the rows as they were.
    assert await _rows(database_url, "SELECT email FROM students ORDER BY id") == [
        ("S1@X.EDU",),
        ("s1@x.edu",),
    ]
    assert await _rows(database_url, "SELECT version_num FROM alembic_version") == [("0005",)]


_INDEXES = {
    "ix_students_lower_email": "lower(email)",
    "ix_applicants_lower_email": "lower(email)",
    "ix_users_lower_username": "lower(username)",
}


async def test_the_migration_creates_the_declared_indexes(storage: SqlStorage) -> None:
    """tables.py declares what 0006 creates. Read from the catalogs: neither SQLAlchemy
    nor Alembic reflects expression indexes on SQLite."""
    declared = {i.name for t in (students, applicants, users) for i in t.indexes}
    assert set(_INDEXES) <= declared
    if storage.primary.dialect.name == "postgresql":
        query = "SELECT indexname, indexdef FROM pg_indexes WHERE indexname LIKE 'ix_%_lower_%'"
    else:
        query = "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND name LIKE 'ix_%'"
    async with storage.primary_reads.connect() as conn:
        found = {name: sql for name, sql in await conn.execute(text(query))}
    for name, expression in _INDEXES.items():
        # PostgreSQL shows lower((email)::text); compare without casts and parentheses.
        definition = re.sub(r"::text|[()]", "", found[name].lower())
        assert definition.startswith("create unique index"), found[name]
        assert re.sub(r"[()]", "", expression) in definition, found[name]
    partial = found["ix_users_lower_username"].lower().replace("~~", "like")  # PostgreSQL
    assert "like '%@%'" in partial, partial
    if storage.primary.dialect.name == "postgresql":  # the only engine Alembic reflects them on
        async with storage.primary_reads.connect() as conn:
            diffs = await conn.run_sync(lambda sync: compare(sync, metadata, ADDRESS_TABLES))
        assert diffs == []
