"""Migration 0005 creates exactly the tables ``tables.py`` declares, on both engines: a
column, index or constraint added to one and not the other fails here, not in production."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, Index, MetaData, String, Table

from rushgate.adapters.sql.engine import SqlStorage
from rushgate.adapters.sql.tables import metadata

TABLES = {"admission_questions", "admission_faq", "application_documents"}


def table_of(diff: Any) -> str | None:
    """The table an autogenerate difference is about (its formats vary by kind)."""
    if isinstance(diff, list):  # modifications of one column come as a list
        diff = diff[0]
    rest = diff[1:]
    first = rest[0] if rest else None
    if isinstance(first, Table):
        return str(first.name)
    table = getattr(first, "table", None)
    if table is not None:  # indexes, constraints
        return str(table.name)
    if len(rest) >= 2 and isinstance(rest[1], str):  # (op, schema, table, …)
        return rest[1]
    return None


def compare(sync: Connection, declared: MetaData, tables: set[str] = TABLES) -> list[Any]:
    """Differences between the database and ``declared``, for ``tables`` only: reflecting
    the others would warn on SQLite, which cannot reflect expression indexes (0006's
    ``lower(email)``; ``test_email_case`` checks those)."""
    opts = {
        "include_name": lambda name, type_, _: type_ != "table" or name in tables,
        "include_object": lambda obj, name, type_, *_: type_ != "table" or name in tables,
    }
    return list(compare_metadata(MigrationContext.configure(sync, opts=opts), declared))


async def test_migration_matches_the_declared_tables(storage: SqlStorage) -> None:
    async with storage.primary_reads.connect() as conn:
        diffs = await conn.run_sync(lambda sync: compare(sync, metadata))
    assert [d for d in diffs if table_of(d) in TABLES] == []


async def test_the_comparison_notices_drift(storage: SqlStorage) -> None:
    """The check above could pass by filtering everything away; a changed copy of the
    declared schema must show up, attributed to the right tables."""
    changed = MetaData(naming_convention=metadata.naming_convention)
    for table in metadata.tables.values():
        table.to_metadata(changed)
    changed.tables["application_documents"].c.kind.type = String(64)
    changed.tables["admission_questions"].c.title.nullable = True
    Index("ix_extra", changed.tables["admission_faq"].c.created_at)
    async with storage.primary_reads.connect() as conn:
        diffs = await conn.run_sync(lambda sync: compare(sync, changed))
    assert sorted(str(table_of(d)) for d in diffs) == [
        "admission_faq",
        "admission_questions",
        "application_documents",
    ]
