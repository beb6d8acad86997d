"""SQLAlchemy Core tables: the schema the migrations create. One definition, two engines."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC on both engines (SQLite would otherwise hand back naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; pass an aware one")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


Json: Any = JSON().with_variant(JSONB(), "postgresql")
Pk: Any = BigInteger().with_variant(Integer(), "sqlite")  # SQLite autoincrements INTEGER only

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

users = Table(
    "users",
    metadata,
    Column("id", Pk, primary_key=True, autoincrement=True),
    Column("username", String(254), nullable=False, unique=True),
    Column("password_hash", String(255), nullable=False),
    Column("role", String(16), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    CheckConstraint("role IN ('admin', 'student', 'applicant')", name="role"),
)

students = Table(
    "students",
    metadata,
    Column("id", Pk, primary_key=True, autoincrement=True),
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), nullable=False, unique=True),
    Column("student_id", String(64), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("email", String(254), nullable=False),
    Column("class_year", Integer, nullable=False),
    Column("max_credits", Integer, nullable=False),
    CheckConstraint("max_credits >= 0", name="max_credits"),
)

terms = Table(
    "terms",
    metadata,
    Column("id", Pk, primary_key=True, autoincrement=True),
    Column("code", String(64), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("opens_at", UTCDateTime, nullable=False),
    Column("closes_at", UTCDateTime, nullable=False),
    # {"4": "2026-02-10T09:00:00+00:00", ...}: class years that open at their own time.
    Column("class_year_opens_at", Json, nullable=False),
    Column("waiting_room_enabled", Boolean, nullable=False),
    Column("admit_per_second", Integer, nullable=False),
    Column("max_active", Integer, nullable=False),
    Column("admission_ttl_seconds", Integer, nullable=False),
    CheckConstraint("closes_at > opens_at", name="window"),
)

sections = Table(
    "sections",
    metadata,
    Column("id", Pk, primary_key=True, autoincrement=True),
    Column("term_id", ForeignKey("terms.id", ondelete="CASCADE"), nullable=False),
    Column("section_id", String(64), nullable=False),
    Column("course_code", String(64), nullable=False),
    Column("title", String(300), nullable=False),
    Column("credits", Integer, nullable=False),
    Column("capacity", Integer, nullable=False),
    Column("enrolled", Integer, nullable=False, default=0),
    Column("waitlist_capacity", Integer, nullable=False, default=0),
    Column("waitlisted", Integer, nullable=False, default=0),
    # Next waitlist ticket; only grows, so waitlist order is arrival order.
    Column("waitlist_seq", BigInteger, nullable=False, default=0),
    Column("meetings", Json, nullable=False),
    UniqueConstraint("term_id", "section_id"),
    CheckConstraint("enrolled >= 0 AND enrolled <= capacity", name="seats"),
    CheckConstraint("waitlisted >= 0 AND waitlisted <= waitlist_capacity", name="waitlist"),
    CheckConstraint("credits >= 0", name="credits"),
)

enrollments = Table(
    "enrollments",
    metadata,
    Column("id", Pk, primary_key=True, autoincrement=True),
    Column("term_id", ForeignKey("terms.id", ondelete="CASCADE"), nullable=False),
    Column("student_id", ForeignKey("students.id", ondelete="CASCADE"), nullable=False),
    Column("section_id", ForeignKey("sections.id", ondelete="CASCADE"), nullable=False),
    Column("course_code", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("waitlist_seq", BigInteger, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    # The last line of defence: one place per student, term and course, whatever the code does.
    UniqueConstraint("term_id", "student_id", "course_code"),
    CheckConstraint("status IN ('enrolled', 'waitlisted')", name="status"),
    CheckConstraint(
        "(status = 'enrolled') = (waitlist_seq IS NULL)", name="waitlist_seq_iff_waitlisted"
    ),
    Index(None, "section_id", "status", "waitlist_seq"),
    Index(None, "student_id", "term_id"),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("student_id", ForeignKey("students.id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("request_hash", String(64), nullable=False),
    Column("response", Json, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

__all__ = [
    "Text",
    "enrollments",
    "idempotency_keys",
    "metadata",
    "sections",
    "students",
    "terms",
    "users",
]
