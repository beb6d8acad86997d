"""an admin's pause of a term's waiting room

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06

A term setting, like the admit rate: the admitter reads it with the term and admits no
one while it is set; the queue keeps its order.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("terms") as batch:
        batch.add_column(
            sa.Column("admission_paused", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("terms") as batch:
        batch.drop_column("admission_paused")
