"""admissions Q&A board, FAQ and application documents

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "admission_questions",
        sa.Column("id", PK, autoincrement=True, nullable=False),
        sa.Column("round_id", PK, nullable=False),
        sa.Column("applicant_id", PK, nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("public", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("answer", sa.Text(), nullable=True),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("answered_by", PK, nullable=True),
        sa.CheckConstraint(
            "(answer IS NULL) = (answered_at IS NULL)",
            name=op.f("ck_admission_questions_answered"),
        ),
        sa.ForeignKeyConstraint(
            ["round_id"],
            ["admission_rounds.id"],
            name=op.f("fk_admission_questions_round_id_admission_rounds"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["applicant_id"],
            ["applicants.id"],
            name=op.f("fk_admission_questions_applicant_id_applicants"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["answered_by"],
            ["users.id"],
            name=op.f("fk_admission_questions_answered_by_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_admission_questions")),
    )
    op.create_index(
        op.f("ix_admission_questions_round_id_id"), "admission_questions", ["round_id", "id"]
    )
    op.create_index(
        op.f("ix_admission_questions_applicant_id"), "admission_questions", ["applicant_id"]
    )

    op.create_table(
        "admission_faq",
        sa.Column("id", PK, autoincrement=True, nullable=False),
        sa.Column("round_id", PK, nullable=False),
        sa.Column("question", sa.String(length=200), nullable=False),
        sa.Column("answer", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", PK, nullable=True),
        sa.ForeignKeyConstraint(
            ["round_id"],
            ["admission_rounds.id"],
            name=op.f("fk_admission_faq_round_id_admission_rounds"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["users.id"],
            name=op.f("fk_admission_faq_created_by_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_admission_faq")),
    )
    op.create_index(op.f("ix_admission_faq_round_id_id"), "admission_faq", ["round_id", "id"])

    op.create_table(
        "application_documents",
        sa.Column("id", PK, autoincrement=True, nullable=False),
        sa.Column("application_id", PK, nullable=False),
        sa.Column("kind", sa.String(length=200), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("content_type", sa.String(length=100), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("storage_key", sa.String(length=255), nullable=False),
        sa.Column("uploaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("size > 0", name=op.f("ck_application_documents_size")),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["applications.id"],
            name=op.f("fk_application_documents_application_id_applications"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_application_documents")),
        sa.UniqueConstraint("storage_key", name=op.f("uq_application_documents_storage_key")),
    )
    op.create_index(
        op.f("ix_application_documents_application_id_id"),
        "application_documents",
        ["application_id", "id"],
    )


def downgrade() -> None:
    op.drop_index(
        op.f("ix_application_documents_application_id_id"), table_name="application_documents"
    )
    op.drop_table("application_documents")
    op.drop_index(op.f("ix_admission_faq_round_id_id"), table_name="admission_faq")
    op.drop_table("admission_faq")
    op.drop_index(op.f("ix_admission_questions_applicant_id"), table_name="admission_questions")
    op.drop_index(op.f("ix_admission_questions_round_id_id"), table_name="admission_questions")
    op.drop_table("admission_questions")
