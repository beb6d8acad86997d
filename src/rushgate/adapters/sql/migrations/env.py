"""Alembic environment: async engines, and one migrator at a time on PostgreSQL."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection

from rushgate.adapters.sql.engine import create_engine
from rushgate.adapters.sql.tables import metadata

# Any constant works; it only has to be the same on every node.
_MIGRATION_LOCK_ID = 0x7275736867617465  # "rushgate"


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Several nodes may start at once; the second waits and then finds nothing to do.
            connection.execute(text(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK_ID})"))
        context.run_migrations()


async def _main(url: str) -> None:
    engine = create_engine(url, writer=True, pool_size=1)
    try:
        async with engine.connect() as conn:
            await conn.run_sync(_run)
            await conn.commit()
    finally:
        await engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run `rushgate migrate`")
asyncio.run(_main(context.config.attributes["rushgate_url"]))
