"""admission applications

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "admission_rounds",
        sa.Column("id", PK, autoincrement=True, nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("opens_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closes_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tracks", JSON, nullable=False),
        sa.Column("required_documents", JSON, nullable=False),
        sa.Column("receipt_prefix", sa.String(length=16), nullable=False),
        sa.Column("receipt_seq", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("closes_at > opens_at", name=op.f("ck_admission_rounds_window")),
        sa.CheckConstraint("receipt_seq >= 0", name=op.f("ck_admission_rounds_receipt_seq")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_admission_rounds")),
        sa.UniqueConstraint("code", name=op.f("uq_admission_rounds_code")),
    )
    op.create_table(
        "applicants",
        sa.Column("id", PK, autoincrement=True, nullable=False),
        sa.Column("user_id", PK, nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("locale", sa.String(length=8), nullable=True),
        sa.Column("verified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_applicants_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_applicants")),
        sa.UniqueConstraint("email", name=op.f("uq_applicants_email")),
        sa.UniqueConstraint("user_id", name=op.f("uq_applicants_user_id")),
    )
    op.create_table(
        "applications",
        sa.Column("id", PK, autoincrement=True, nullable=False),
        sa.Column("round_id", PK, nullable=False),
        sa.Column("applicant_id", PK, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("track", sa.String(length=64), nullable=True),
        sa.Column("personal", JSON, nullable=True),
        sa.Column("statement", sa.Text(), nullable=False),
        sa.Column("consent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("receipt_number", sa.String(length=64), nullable=True),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "status = 'draft' OR status = 'withdrawn' OR receipt_number IS NOT NULL",
            name=op.f("ck_applications_receipt_once_submitted"),
        ),
        sa.CheckConstraint(
            "status IN ('draft', 'submitted', 'under_review', 'waitlisted', 'accepted', "
            "'rejected', 'withdrawn')",
            name=op.f("ck_applications_status"),
        ),
        sa.ForeignKeyConstraint(
            ["applicant_id"],
            ["applicants.id"],
            name=op.f("fk_applications_applicant_id_applicants"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["round_id"],
            ["admission_rounds.id"],
            name=op.f("fk_applications_round_id_admission_rounds"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_applications")),
        sa.UniqueConstraint("receipt_number", name=op.f("uq_applications_receipt_number")),
        sa.UniqueConstraint(
            "round_id", "applicant_id", name=op.f("uq_applications_round_id_applicant_id")
        ),
    )
    with op.batch_alter_table("applications", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_applications_round_id_status_id"),
            ["round_id", "status", "id"],
            unique=False,
        )

    op.create_table(
        "application_history",
        sa.Column("id", PK, autoincrement=True, nullable=False),
        sa.Column("application_id", PK, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor_user_id", PK, nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("snapshot", JSON, nullable=False),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["applications.id"],
            name=op.f("fk_application_history_application_id_applications"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_application_history")),
    )
    with op.batch_alter_table("application_history", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_application_history_application_id_id"),
            ["application_id", "id"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("application_history", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_application_history_application_id_id"))

    op.drop_table("application_history")
    with op.batch_alter_table("applications", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_applications_round_id_status_id"))

    op.drop_table("applications")
    op.drop_table("applicants")
    op.drop_table("admission_rounds")
