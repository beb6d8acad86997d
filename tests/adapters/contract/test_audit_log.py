"""The audit log's storage on SQLite and PostgreSQL: entries read back newest first, they
commit or roll back with their unit of work, and the database refuses to change or
delete one, whoever asks."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from rushgate.adapters.security import Argon2Hasher
from rushgate.adapters.sql.engine import SqlStorage
from rushgate.adapters.sql.tables import metadata
from rushgate.domain.clock import FixedClock
from rushgate.domain.errors import NotFound
from rushgate.services.ports.audit import Actor, AuditEntry
from rushgate.services.registry import RegistryService
from tests.adapters.contract.test_schema_0005 import compare, table_of
from tests.support import T0, new_term

ADMIN = Actor(user_pk=7, username="registrar", request_id="a" * 32, client_ip="10.0.0.5")


def entry(n: int, action: str = "term.create") -> AuditEntry:
    return AuditEntry(
        at=T0 + timedelta(seconds=n),
        actor=ADMIN,
        action=action,
        target=f"term:t{n}",
        details={"n": n, "ids": ["A-1", "B-2"], "nested": {"ok": True}},
    )


async def append(storage: SqlStorage, *entries: AuditEntry) -> list[int]:
    async with storage.unit_of_work() as uow:
        ids = [await uow.audit.append(e) for e in entries]
        await uow.commit()
    return ids


async def test_entries_read_back_newest_first(storage: SqlStorage) -> None:
    ids = await append(storage, *(entry(n) for n in range(5)))
    assert ids == sorted(ids)
    async with storage.unit_of_work() as uow:
        newest = await uow.audit.entries(limit=2)
        older = await uow.audit.entries(limit=10, before=newest[-1].pk)
    assert [r.pk for r in newest] == ids[:-3:-1]
    assert [r.entry.target for r in older] == ["term:t2", "term:t1", "term:t0"]
    assert newest[0].entry == entry(4)  # every field, the time zone and the JSON included
    assert newest[0].entry.at.utcoffset() == timedelta(0)


async def test_an_entry_rolls_back_with_its_change(storage: SqlStorage) -> None:
    async def failing_change() -> None:
        async with storage.unit_of_work() as uow:
            await uow.audit.append(entry(1))
            raise RuntimeError("the change failed after its entry was written")

    with pytest.raises(RuntimeError):
        await failing_change()
    async with storage.unit_of_work() as uow:
        await uow.audit.append(entry(2))
        # No commit: left without one, the unit of work rolls back.
    async with storage.unit_of_work() as uow:
        assert await uow.audit.entries(limit=10) == []


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_log SET action = 'nothing.happened'",
        "UPDATE audit_log SET details = '{}' WHERE id = :id",
        "DELETE FROM audit_log WHERE id = :id",
        "DELETE FROM audit_log",
    ],
)
async def test_the_database_refuses_to_rewrite_history(storage: SqlStorage, statement: str) -> None:
    [pk] = await append(storage, entry(1))
    # Straight to the database, as anyone holding the application's credentials could.
    with pytest.raises(DBAPIError, match="append-only"):
        async with storage.primary_reads.begin() as conn:
            await conn.execute(text(statement), {"id": pk})
    async with storage.unit_of_work() as uow:
        [kept] = await uow.audit.entries(limit=10)
    assert kept.entry == entry(1)


# PostgreSQL only: SQLite has no TRUNCATE (its DELETE is covered above).
@pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.postgres)])
async def test_postgres_refuses_truncate(storage: SqlStorage) -> None:
    await append(storage, entry(1))
    with pytest.raises(DBAPIError, match="append-only"):
        async with storage.primary_reads.begin() as conn:
            await conn.execute(text("TRUNCATE audit_log"))


async def test_migration_matches_the_declared_table(storage: SqlStorage) -> None:
    async with storage.primary_reads.connect() as conn:
        diffs = await conn.run_sync(lambda sync: compare(sync, metadata, {"audit_log"}))
    assert [d for d in diffs if table_of(d) == "audit_log"] == []


@pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.postgres)])
async def test_a_change_is_not_kept_without_its_entry(storage: SqlStorage) -> None:
    """The service writes the change and its entry in one transaction: an entry the
    database refuses (an actor name past the column's length) takes the change with it.
    PostgreSQL only: SQLite does not enforce column lengths, so it cannot refuse one."""
    registry = RegistryService(storage, Argon2Hasher("low"), clock=FixedClock(T0))
    too_long = Actor(user_pk=1, username="x" * 255)
    with pytest.raises(DBAPIError):
        await registry.create_term(new_term(), actor=too_long)
    with pytest.raises(NotFound):
        await storage.reads(fresh=True).term(new_term().code)
    await registry.create_term(new_term(), actor=ADMIN)
    assert (await storage.reads(fresh=True).term(new_term().code)).code == new_term().code
    async with storage.unit_of_work() as uow:
        [logged] = await uow.audit.entries(limit=10)
    assert (logged.entry.action, logged.entry.actor) == ("term.create", ADMIN)
