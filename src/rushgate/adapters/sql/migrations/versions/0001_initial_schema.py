"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Frozen here: a migration must not change when the application's tables do.
PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "terms",
        sa.Column("id", PK, autoincrement=True, nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("opens_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closes_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("class_year_opens_at", JSON, nullable=False),
        sa.Column("waiting_room_enabled", sa.Boolean(), nullable=False),
        sa.Column("admit_per_second", sa.Integer(), nullable=False),
        sa.CheckConstraint("closes_at > opens_at", name=op.f("ck_terms_window")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_terms")),
        sa.UniqueConstraint("code", name=op.f("uq_terms_code")),
    )
    op.create_table(
        "users",
        sa.Column("id", PK, autoincrement=True, nullable=False),
        sa.Column("username", sa.String(length=254), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("role IN ('admin', 'student', 'applicant')", name=op.f("ck_users_role")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("username", name=op.f("uq_users_username")),
    )
    op.create_table(
        "sections",
        sa.Column("id", PK, autoincrement=True, nullable=False),
        sa.Column("term_id", PK, nullable=False),
        sa.Column("section_id", sa.String(length=64), nullable=False),
        sa.Column("course_code", sa.String(length=64), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("credits", sa.Integer(), nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=False),
        sa.Column("enrolled", sa.Integer(), nullable=False),
        sa.Column("waitlist_capacity", sa.Integer(), nullable=False),
        sa.Column("waitlisted", sa.Integer(), nullable=False),
        sa.Column("waitlist_seq", sa.BigInteger(), nullable=False),
        sa.Column("meetings", JSON, nullable=False),
        sa.CheckConstraint("credits >= 0", name=op.f("ck_sections_credits")),
        sa.CheckConstraint(
            "enrolled >= 0 AND enrolled <= capacity", name=op.f("ck_sections_seats")
        ),
        sa.CheckConstraint(
            "waitlisted >= 0 AND waitlisted <= waitlist_capacity", name=op.f("ck_sections_waitlist")
        ),
        sa.ForeignKeyConstraint(
            ["term_id"], ["terms.id"], name=op.f("fk_sections_term_id_terms"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sections")),
        sa.UniqueConstraint("term_id", "section_id", name=op.f("uq_sections_term_id_section_id")),
    )
    op.create_table(
        "students",
        sa.Column("id", PK, autoincrement=True, nullable=False),
        sa.Column("user_id", PK, nullable=False),
        sa.Column("student_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("class_year", sa.Integer(), nullable=False),
        sa.Column("max_credits", sa.Integer(), nullable=False),
        sa.CheckConstraint("max_credits >= 0", name=op.f("ck_students_max_credits")),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_students_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_students")),
        sa.UniqueConstraint("student_id", name=op.f("uq_students_student_id")),
        sa.UniqueConstraint("user_id", name=op.f("uq_students_user_id")),
    )
    op.create_table(
        "enrollments",
        sa.Column("id", PK, autoincrement=True, nullable=False),
        sa.Column("term_id", PK, nullable=False),
        sa.Column("student_id", PK, nullable=False),
        sa.Column("section_id", PK, nullable=False),
        sa.Column("course_code", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("waitlist_seq", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "(status = 'enrolled') = (waitlist_seq IS NULL)",
            name=op.f("ck_enrollments_waitlist_seq_iff_waitlisted"),
        ),
        sa.CheckConstraint(
            "status IN ('enrolled', 'waitlisted')", name=op.f("ck_enrollments_status")
        ),
        sa.ForeignKeyConstraint(
            ["section_id"],
            ["sections.id"],
            name=op.f("fk_enrollments_section_id_sections"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["student_id"],
            ["students.id"],
            name=op.f("fk_enrollments_student_id_students"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["term_id"], ["terms.id"], name=op.f("fk_enrollments_term_id_terms"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_enrollments")),
        sa.UniqueConstraint(
            "term_id",
            "student_id",
            "course_code",
            name=op.f("uq_enrollments_term_id_student_id_course_code"),
        ),
    )
    with op.batch_alter_table("enrollments", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_enrollments_section_id_status_waitlist_seq"),
            ["section_id", "status", "waitlist_seq"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_enrollments_student_id_term_id"), ["student_id", "term_id"], unique=False
        )

    op.create_table(
        "idempotency_keys",
        sa.Column("student_id", PK, nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("response", JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["student_id"],
            ["students.id"],
            name=op.f("fk_idempotency_keys_student_id_students"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("student_id", "key", name=op.f("pk_idempotency_keys")),
    )


def downgrade() -> None:
    op.drop_table("idempotency_keys")
    with op.batch_alter_table("enrollments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_enrollments_student_id_term_id"))
        batch_op.drop_index(batch_op.f("ix_enrollments_section_id_status_waitlist_seq"))

    op.drop_table("enrollments")
    op.drop_table("students")
    op.drop_table("sections")
    op.drop_table("users")
    op.drop_table("terms")
