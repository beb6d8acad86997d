"""The primary's pool after the server dropped its connections (a restart, a failover):
the enrollment hot path speaks to asyncpg directly, so it must notice dead pooled
connections itself rather than fail requests on them one by one."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from rushgate.adapters.sql.engine import SqlStorage
from rushgate.domain.clock import SystemClock
from tests.support import check_invariants, new_section, new_student, new_term, seed

pytestmark = pytest.mark.postgres


async def test_connections_the_server_closed_are_replaced_not_used(postgres_url: str) -> None:
    storage = SqlStorage.from_urls(postgres_url, None, SystemClock(), pool_size=3)
    try:
        term = new_term()
        pks = await seed(
            storage,
            term=term,
            sections=[new_section(f"S{n}-01", course_code=f"S{n}") for n in range(6)],
            students=[new_student("p1")],
        )

        async def enroll(section_id: str) -> None:
            async with storage.unit_of_work() as uow:
                section = await uow.enrollments.find_section(term.code, section_id)
                assert await uow.enrollments.take_seat(section, pks["p1"]) is not None
                await uow.commit()

        async def hold_one() -> None:
            async with storage.unit_of_work():
                await asyncio.sleep(0.05)

        await asyncio.gather(*(hold_one() for _ in range(3)))  # three pooled connections
        admin = await asyncpg.connect(postgres_url.replace("postgresql://", "postgres://"))
        try:
            database = await admin.fetchval("SELECT current_database()")
            killed = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = $1 AND application_name = 'rushgate'",
                database,
            )
        finally:
            await admin.close()
        assert killed == 3
        await asyncio.sleep(0.2)  # the server closes their sockets
        for n in range(6):  # every one of the dead connections would have failed one
            await enroll(f"S{n}-01")
        await check_invariants(storage)
    finally:
        await storage.close()
