"""Where a user's mail goes: ``Contacts`` on SQL."""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import column, select, table
from sqlalchemy.ext.asyncio import AsyncEngine

from rushgate.adapters.sql.tables import students as ST
from rushgate.adapters.sql.tables import users as U
from rushgate.services.ports.mail import Contact

# The admissions tables are named here, not imported, so this module does not follow that
# feature's table definitions (only these columns are read).
_applicants = table(
    "applicants", column("user_id"), column("email"), column("name"), column("locale")
)


class SqlContacts:
    """``Contacts`` read on the primary: a message may be for a user who signed up a
    moment ago, whom a replica may not know yet (the message would then be dropped).

    Students: their address in ``students``; applicants: theirs in ``applicants``, with
    their language; admins: their login, when it is an address."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def contacts(self, user_pks: Collection[int]) -> dict[int, Contact]:
        if not user_pks:
            return {}
        wanted = sorted(set(user_pks))
        found: dict[int, Contact] = {}
        async with self._engine.connect() as conn:
            users = await conn.execute(
                select(U.c.id, U.c.role, U.c.username, ST.c.email, ST.c.name)
                .select_from(U.outerjoin(ST, ST.c.user_id == U.c.id))
                .where(U.c.id.in_(wanted))
            )
            applicants: list[int] = []
            for user in users:
                if user.role == "student" and user.email is not None:
                    found[user.id] = Contact(user.email, user.name, None)
                elif user.role == "applicant":
                    applicants.append(user.id)
                elif user.role == "admin" and "@" in user.username:
                    found[user.id] = Contact(user.username, user.username, None)
            if applicants:
                rows = await conn.execute(
                    select(
                        _applicants.c.user_id,
                        _applicants.c.email,
                        _applicants.c.name,
                        _applicants.c.locale,
                    ).where(_applicants.c.user_id.in_(applicants))
                )
                for row in rows:
                    found[row.user_id] = Contact(row.email, row.name, row.locale)
        return found
