"""Where a user's mail goes (``SqlContacts``), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import column, insert, table

from rushgate.adapters.sql.engine import SqlStorage
from rushgate.adapters.sql.tables import users
from rushgate.domain.clock import FixedClock
from rushgate.services.ports.mail import Contact
from tests.support import add_students, new_student

_applicants = table(
    "applicants",
    column("user_id"),
    column("email"),
    column("name"),
    column("locale"),
    column("created_at"),
)


async def user_pk(storage: SqlStorage, username: str) -> int:
    account = await storage.reads(fresh=True).account(username)
    assert account is not None
    return account.user_pk


async def add_applicant(
    storage: SqlStorage, email: str, name: str, locale: str | None, now: datetime
) -> int:
    async with storage.primary.begin() as conn:
        pk = (
            await conn.execute(
                insert(users)
                .values(username=email, password_hash="x", role="applicant", created_at=now)
                .returning(users.c.id)
            )
        ).scalar_one()
        await conn.execute(
            insert(_applicants).values(
                user_id=pk, email=email, name=name, locale=locale, created_at=now
            )
        )
    return int(pk)


async def test_one_look_up_finds_every_kind_of_user(storage: SqlStorage, clock: FixedClock) -> None:
    await add_students(storage, new_student("s1", name="김민준", email="minjun@example.test"))
    s1 = await user_pk(storage, "s1")
    ana = await add_applicant(storage, "ana@example.test", "Ana", "en", clock.now())
    bo = await add_applicant(storage, "bo@example.test", "Bo", None, clock.now())
    async with storage.unit_of_work() as uow:
        await uow.registry.add_admin("ops@example.test", "x")
        await uow.registry.add_admin("admin", "x")  # no address: no contact
        await uow.commit()
    ops = await user_pk(storage, "ops@example.test")
    admin = await user_pk(storage, "admin")
    gone = 12345
    assert await storage.contacts().contacts([s1, ana, bo, ops, admin, gone, s1]) == {
        s1: Contact("minjun@example.test", "김민준", None),
        ana: Contact("ana@example.test", "Ana", "en"),
        bo: Contact("bo@example.test", "Bo", None),
        ops: Contact("ops@example.test", "ops@example.test", None),
    }


async def test_students_alone_and_nobody(storage: SqlStorage) -> None:
    await add_students(storage, new_student("s1"), new_student("s2"))
    pks = [await user_pk(storage, s) for s in ("s1", "s2")]
    found = await storage.contacts().contacts(pks)
    assert [found[pk].email for pk in pks] == ["s1@example.test", "s2@example.test"]
    assert await storage.contacts().contacts([]) == {}
