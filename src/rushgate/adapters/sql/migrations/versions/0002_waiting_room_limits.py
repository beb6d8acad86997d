"""waiting room limits: active admissions cap and admission lifetime per term

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("terms") as batch:
        batch.add_column(
            sa.Column("max_active", sa.Integer(), nullable=False, server_default="500")
        )
        batch.add_column(
            sa.Column("admission_ttl_seconds", sa.Integer(), nullable=False, server_default="600")
        )


def downgrade() -> None:
    with op.batch_alter_table("terms") as batch:
        batch.drop_column("admission_ttl_seconds")
        batch.drop_column("max_active")
