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
    false,
    func,
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
    Column("admission_paused", Boolean, nullable=False, default=False, server_default=false()),
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

# The transactional outbox (see services/ports/outbox.py). ``available_at`` is when a
# pending row is due: a claim moves it forward by the lease, so a relay that dies
# mid-send leaves its rows to be claimed again once the lease ends.
outbox = Table(
    "outbox",
    metadata,
    Column("id", Pk, primary_key=True, autoincrement=True),
    Column("kind", String(64), nullable=False),
    Column("dedupe_key", String(255), nullable=False, unique=True),
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("payload", Json, nullable=False),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("available_at", UTCDateTime, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("delivered_at", UTCDateTime, nullable=True),
    Column("last_error", Text, nullable=True),
    CheckConstraint("state IN ('pending', 'delivered', 'dead')", name="state"),
    CheckConstraint("attempts >= 0", name="attempts"),
    Index("ix_outbox_due", "state", "available_at"),
)

admission_rounds = Table(
    "admission_rounds",
    metadata,
    Column("id", Pk, primary_key=True, autoincrement=True),
    Column("code", String(64), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("opens_at", UTCDateTime, nullable=False),
    Column("closes_at", UTCDateTime, nullable=False),
    Column("tracks", Json, nullable=False),  # [{"code", "name", "capacity"}]
    Column("required_documents", Json, nullable=False),
    Column("receipt_prefix", String(16), nullable=False),
    # The last receipt sequence handed out; only grows (see next_receipt_sequence).
    Column("receipt_seq", BigInteger, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    CheckConstraint("closes_at > opens_at", name="window"),
    CheckConstraint("receipt_seq >= 0", name="receipt_seq"),
)

applicants = Table(
    "applicants",
    metadata,
    Column("id", Pk, primary_key=True, autoincrement=True),
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), nullable=False, unique=True),
    # Lower-cased, as the username: one account per address whatever its case.
    Column("email", String(254), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("locale", String(8), nullable=True),
    Column("verified_at", UTCDateTime, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
)

applications = Table(
    "applications",
    metadata,
    Column("id", Pk, primary_key=True, autoincrement=True),
    Column("round_id", ForeignKey("admission_rounds.id", ondelete="CASCADE"), nullable=False),
    Column("applicant_id", ForeignKey("applicants.id", ondelete="CASCADE"), nullable=False),
    Column("status", String(16), nullable=False),
    Column("track", String(64), nullable=True),
    Column("personal", Json, nullable=True),  # sealed: phones and birth date are ciphertext
    Column("statement", Text, nullable=False),
    Column("consent_at", UTCDateTime, nullable=True),
    Column("receipt_number", String(64), nullable=True, unique=True),
    Column("submitted_at", UTCDateTime, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("version", Integer, nullable=False),
    # One application per person per round, whatever the code does.
    UniqueConstraint("round_id", "applicant_id"),
    CheckConstraint(
        "status IN ('draft', 'submitted', 'under_review', 'waitlisted', 'accepted', "
        "'rejected', 'withdrawn')",
        name="status",
    ),
    CheckConstraint(
        "status = 'draft' OR status = 'withdrawn' OR receipt_number IS NOT NULL",
        name="receipt_once_submitted",
    ),
    Index(None, "round_id", "status", "id"),
)

application_history = Table(
    "application_history",
    metadata,
    Column("id", Pk, primary_key=True, autoincrement=True),
    Column("application_id", ForeignKey("applications.id", ondelete="CASCADE"), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("actor_user_id", Pk, nullable=False),
    Column("action", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("snapshot", Json, nullable=False),
    Index(None, "application_id", "id"),
)


# The Q&A board. A post is one INSERT (no counters to bump: 2,000 applicants posting at
# once share no row); the answer lives on the question's row and is replaced in place.
admission_questions = Table(
    "admission_questions",
    metadata,
    Column("id", Pk, primary_key=True, autoincrement=True),
    Column("round_id", ForeignKey("admission_rounds.id", ondelete="CASCADE"), nullable=False),
    Column("applicant_id", ForeignKey("applicants.id", ondelete="CASCADE"), nullable=False),
    Column("title", String(200), nullable=False),
    Column("body", Text, nullable=False),
    Column("public", Boolean, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("answer", Text, nullable=True),
    Column("answered_at", UTCDateTime, nullable=True),
    Column("answered_by", ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
    CheckConstraint("(answer IS NULL) = (answered_at IS NULL)", name="answered"),
    # The board's pages: newest first within a round (keyset on id).
    Index(None, "round_id", "id"),
    Index(None, "applicant_id"),
)

admission_faq = Table(
    "admission_faq",
    metadata,
    Column("id", Pk, primary_key=True, autoincrement=True),
    Column("round_id", ForeignKey("admission_rounds.id", ondelete="CASCADE"), nullable=False),
    Column("question", String(200), nullable=False),
    Column("answer", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("created_by", ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
    Index(None, "round_id", "id"),
)

# Documents' records; their bytes are in the DocumentStore under ``storage_key``.
application_documents = Table(
    "application_documents",
    metadata,
    Column("id", Pk, primary_key=True, autoincrement=True),
    Column("application_id", ForeignKey("applications.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(200), nullable=False),  # a required document's name, or "other"
    Column("filename", String(255), nullable=False),
    Column("content_type", String(100), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("storage_key", String(255), nullable=False, unique=True),
    Column("uploaded_at", UTCDateTime, nullable=False),
    CheckConstraint("size > 0", name="size"),
    Index(None, "application_id", "id"),
)

# Who changed what, and when: append-only (migration 0007's triggers refuse UPDATE and
# DELETE). No foreign key to users: an entry outlives the account, and a cascade would
# have to delete rows the triggers protect.
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Pk, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime, nullable=False),
    Column("actor_user_id", Pk, nullable=False),
    Column("actor_username", String(254), nullable=False),
    Column("action", String(64), nullable=False),
    Column("target", String(300), nullable=False),
    Column("details", Json, nullable=False),
    Column("request_id", String(128), nullable=True),
    Column("client_ip", String(64), nullable=True),
)

# An address is one account whatever its case. Services store addresses lower-cased;
# these indexes are the guarantee, whatever wrote the row (SQLite's lower() folds ASCII
# only, which is enough once rows are lower-cased in Python). Usernames with an "@"
# are applicants' addresses, or admins named by theirs; student ids stay exact.
Index("ix_students_lower_email", func.lower(students.c.email), unique=True)
Index("ix_applicants_lower_email", func.lower(applicants.c.email), unique=True)
Index(
    "ix_users_lower_username",
    func.lower(users.c.username),
    unique=True,
    postgresql_where=users.c.username.like("%@%"),
    sqlite_where=users.c.username.like("%@%"),
)

__all__ = [
    "Text",
    "admission_faq",
    "admission_questions",
    "admission_rounds",
    "applicants",
    "application_documents",
    "application_history",
    "applications",
    "audit_log",
    "enrollments",
    "idempotency_keys",
    "metadata",
    "outbox",
    "sections",
    "students",
    "terms",
    "users",
]
