"""emails unique whatever their case

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04

Students' and applicants' emails, and usernames that are emails, were unique only as
typed (``S1@X.EDU`` beside ``s1@x.edu``; students' not at all across batches). Existing
addresses are lower-cased, as the services now store them, and unique indexes on
``lower(…)`` refuse a second spelling from then on. Rows that already clash are not
merged or dropped here: the migration stops and names them, for an operator to decide.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# (table, column, which rows): the addresses that must be unique whatever their case.
_ADDRESSES = (
    ("students", "email", "1 = 1"),
    ("applicants", "email", "1 = 1"),
    ("users", "username", "username LIKE '%@%'"),
)
_SHOWN = 20


def _clashes() -> list[str]:
    bind = op.get_bind()
    found: list[str] = []
    for table, column, rows in _ADDRESSES:
        query = sa.text(
            f"SELECT lower({column}) AS address, count(*) AS n FROM {table} "  # noqa: S608  # nosec B608
            f"WHERE {rows} GROUP BY lower({column}) HAVING count(*) > 1 "
            f"ORDER BY lower({column}) LIMIT {_SHOWN}"
        )
        found += [f"{table}.{column} {r.address!r} ({r.n} rows)" for r in bind.execute(query)]
    return found


def upgrade() -> None:
    clashes = _clashes()
    if clashes:
        raise RuntimeError(
            "migration 0006 makes emails unique whatever their case, but some exist in "
            "several spellings (or, for students, several times); change or remove all "
            "but one of each, then migrate again: " + "; ".join(clashes)
        )
    for table, column, rows in _ADDRESSES:
        op.execute(
            f"UPDATE {table} SET {column} = lower({column}) "  # noqa: S608  # nosec B608
            f"WHERE {rows} AND {column} <> lower({column})"
        )
    op.create_index("ix_students_lower_email", "students", [sa.text("lower(email)")], unique=True)
    op.create_index(
        "ix_applicants_lower_email", "applicants", [sa.text("lower(email)")], unique=True
    )
    email_usernames = sa.text("username LIKE '%@%'")
    op.create_index(
        "ix_users_lower_username",
        "users",
        [sa.text("lower(username)")],
        unique=True,
        postgresql_where=email_usernames,
        sqlite_where=email_usernames,
    )


def downgrade() -> None:
    # The addresses stay lower-cased: nothing recorded how they were typed.
    op.drop_index("ix_users_lower_username", table_name="users")
    op.drop_index("ix_applicants_lower_email", table_name="applicants")
    op.drop_index("ix_students_lower_email", table_name="students")
