"""Admission applications: rounds, applicant sign-up, the application (draft, submit,
edit until the deadline, withdraw), staff decisions and waitlist admissions (충원합격).

Every change is one transaction that also writes its history entry and, where the
applicant is told about it, an outbox message (delivered as mail after the commit, see
``rushgate.workers.outbox_relay``), so a change and its mail are never one without the
other. Phone numbers and the birth date are sealed (encrypted) before they reach storage
and opened only here.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from rushgate.domain.admissions import (
    AdmissionRound,
    ApplicationStatus,
    PersonalInfo,
    check_applicant_edit,
    check_staff_transition,
    check_submit,
    check_withdraw,
    format_receipt,
    has_forbidden_characters,
)
from rushgate.domain.clock import Clock
from rushgate.domain.errors import (
    EmailUnverified,
    InvalidTransition,
    NotFound,
    ValidationFailed,
)
from rushgate.domain.model import normalize_email
from rushgate.domain.passwords import MAX_LENGTH, PasswordPolicy, password_error
from rushgate.services.audit import record as record_change
from rushgate.services.ports.admissions import (
    Applicant,
    ApplicationDraft,
    ApplicationFilter,
    ApplicationRecord,
    FieldCipher,
    HistoryEntry,
    StoredRound,
    VerificationTokens,
)
from rushgate.services.ports.audit import Actor
from rushgate.services.ports.auth import PasswordHasher
from rushgate.services.ports.outbox import OutboxMessage
from rushgate.services.ports.storage import Storage, UnitOfWork

# Sealed at rest; the other personal fields are stored as they are.
SEALED_FIELDS = frozenset({"birth_date", "phone", "guardian_phone"})
# The defaults of the password rules (``rushgate.domain.passwords``) for sign-ups.
PASSWORD_MIN = PasswordPolicy().min_length
PASSWORD_MAX = MAX_LENGTH
STATEMENT_MAX = 10_000
NAME_MAX = 50
LOCALES = frozenset({"ko", "en"})
# Deliberately loose: one @, no spaces, a dot in the domain. The verification mail is
# the real check.
_EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]+\.[^@\s]+")


@dataclass(frozen=True, slots=True)
class PersonalInput:
    name: str
    birth_date: str
    phone: str
    guardian_name: str
    guardian_phone: str
    middle_school: str
    address: str


@dataclass(frozen=True, slots=True)
class ApplicationInput:
    """What an applicant saves. Everything may be missing in a draft; submitting needs a
    track, the personal details and the consent to their processing."""

    track: str | None
    personal: PersonalInput | None
    statement: str
    consent: bool


@dataclass(frozen=True, slots=True)
class ApplicationView:
    round_code: str
    round_name: str
    status: ApplicationStatus
    track: str | None
    personal: PersonalInfo | None
    statement: str
    consent_at: datetime | None
    receipt_number: str | None
    submitted_at: datetime | None
    updated_at: datetime
    version: int


@dataclass(frozen=True, slots=True)
class StaffRow:
    """One application in the staff list or export, with its applicant; ``pk`` orders
    the list (keyset pagination)."""

    pk: int
    view: ApplicationView
    applicant: Applicant


@dataclass(frozen=True, slots=True)
class HistoryView:
    at: datetime
    action: str
    status: ApplicationStatus
    by_applicant: bool


def _field_error(field: str, message: str) -> dict[str, str]:
    return {"field": field, "message": message}


class AdmissionsService:
    def __init__(
        self,
        storage: Storage,
        hasher: PasswordHasher,
        cipher: FieldCipher,
        verification: VerificationTokens,
        clock: Clock,
        *,
        require_verification: bool,
        verify_url: str,
        passwords: PasswordPolicy | None = None,
    ) -> None:
        """``verify_url`` is the link mailed at sign-up, with ``{token}`` in it."""
        self._storage = storage
        self._hasher = hasher
        self._cipher = cipher
        self._verification = verification
        self._clock = clock
        self._require_verification = require_verification
        self._verify_url = verify_url
        self._passwords = passwords or PasswordPolicy()

    @property
    def verification_required(self) -> bool:
        return self._require_verification

    # --- rounds ------------------------------------------------------------------------

    async def create_round(self, round_: AdmissionRound, *, actor: Actor | None = None) -> None:
        async with self._storage.unit_of_work() as uow:
            await uow.admissions.add_round(round_, now=self._clock.now())
            await record_change(
                uow,
                self._clock,
                actor,
                "admission_round.create",
                f"round:{round_.code}",
                tracks=[t.code for t in round_.tracks],
            )
            await uow.commit()

    async def round(self, code: str) -> AdmissionRound:
        async with self._storage.unit_of_work() as uow:
            return (await uow.admissions.round(code)).round

    async def current_rounds(self, limit: int = 50) -> list[AdmissionRound]:
        """The rounds an applicant may still file in: open now or opening later."""
        async with self._storage.unit_of_work() as uow:
            stored = await uow.admissions.rounds_open_after(self._clock.now(), limit=limit)
        return [s.round for s in stored]

    # --- applicants --------------------------------------------------------------------

    async def sign_up(
        self, *, email: str, password: str, name: str, locale: str | None
    ) -> Applicant:
        email = normalize_email(email)
        errors: list[dict[str, str]] = []
        if len(email) > 254 or not _EMAIL.fullmatch(email) or has_forbidden_characters(email):
            errors.append(_field_error("email", "not an email address"))
        weak = self._passwords.problem(password, identities=(email,))
        if weak is not None:
            errors.append(password_error("password", weak))
        elif has_forbidden_characters(password):
            errors.append(_field_error("password", "control characters are not allowed"))
        clean_name = name.strip()
        if not 1 <= len(clean_name) <= NAME_MAX or has_forbidden_characters(clean_name):
            errors.append(_field_error("name", f"1 to {NAME_MAX} printable characters"))
        if locale is not None and locale not in LOCALES:
            errors.append(_field_error("locale", "one of: en, ko"))
        if errors:
            raise ValidationFailed("some sign-up details are invalid", errors=errors)
        password_hash = await asyncio.to_thread(self._hasher.hash, password)
        now = self._clock.now()
        async with self._storage.unit_of_work() as uow:
            applicant = await uow.admissions.add_applicant(
                email=email, name=clean_name, password_hash=password_hash, locale=locale, now=now
            )
            if self._require_verification:
                token = self._verification.issue(applicant.pk, email)
                await uow.outbox.add(
                    OutboxMessage(
                        kind="applicant.verify_email",
                        dedupe_key=f"applicant:{applicant.pk}:verify",
                        user_pk=applicant.user_pk,
                        payload={
                            "verify_url": self._verify_url.format(token=token),
                            "name": clean_name,
                        },
                    )
                )
            await uow.commit()
        return applicant

    async def verify_email(self, token: str) -> None:
        """Idempotent: a second click on the link is fine."""
        applicant_pk, email = self._verification.verify(token)
        async with self._storage.unit_of_work() as uow:
            await uow.admissions.mark_verified(applicant_pk, now=self._clock.now())
            await uow.commit()
        del email  # bound into the token so that a link is for one address only

    async def me(self, user_pk: int) -> Applicant:
        async with self._storage.unit_of_work() as uow:
            return await uow.admissions.applicant_of(user_pk)

    # --- the application ---------------------------------------------------------------

    async def application(self, user_pk: int, round_code: str) -> ApplicationView:
        async with self._storage.unit_of_work() as uow:
            stored, _, record = await self._own(uow, user_pk, round_code)
            if record is None:
                raise NotFound("you have no application in this round yet", round=round_code)
            return self._view(stored, record)

    async def save(
        self, user_pk: int, round_code: str, data: ApplicationInput
    ) -> tuple[ApplicationView, bool]:
        """Save the draft, or edit a submitted application until the deadline; the view
        and whether the application was created by this call."""
        now = self._clock.now()
        async with self._storage.unit_of_work() as uow:
            stored, applicant, record = await self._own(uow, user_pk, round_code, lock=True)
            status = ApplicationStatus.DRAFT if record is None else record.status
            check_applicant_edit(status, stored.round.window, now)
            track, personal, statement = self._checked(stored.round, data, now.date())
            # Consent is recorded when first given and dropped when withdrawn in a draft.
            kept = record.consent_at if record is not None else None
            consent_at = (kept or now) if data.consent else None
            if status is ApplicationStatus.SUBMITTED:
                # An edit of a filed application must leave it complete.
                self._require_complete(track, personal, consent_at)
            draft = ApplicationDraft(
                status=status,
                track=track,
                personal=personal,
                statement=statement,
                consent_at=consent_at,
                receipt_number=record.receipt_number if record else None,
                submitted_at=record.submitted_at if record else None,
            )
            if record is None:
                saved = await uow.admissions.insert_application(
                    stored.pk, applicant.pk, draft, now=now
                )
            else:
                saved = await uow.admissions.update_application(record, draft, now=now)
            action = "edited" if status is ApplicationStatus.SUBMITTED else "saved"
            await self._history(uow, saved, user_pk, action, now)
            await uow.commit()
        return self._view(stored, saved), record is None

    async def submit(self, user_pk: int, round_code: str) -> tuple[ApplicationView, bool]:
        """File the application and give it its receipt number; the view and whether this
        call filed it (a repeated submit answers with the same receipt)."""
        now = self._clock.now()
        async with self._storage.unit_of_work() as uow:
            stored, applicant, record = await self._own(uow, user_pk, round_code, lock=True)
            if record is None:
                raise NotFound("save your application before submitting it", round=round_code)
            if check_submit(record.status, stored.round.window, now):
                return self._view(stored, record), False
            if self._require_verification and applicant.verified_at is None:
                raise EmailUnverified("confirm your email address first (see the mail we sent)")
            self._require_complete(record.track, record.personal, record.consent_at)
            # The round's counter row stays locked until commit: receipts of one round are
            # handed out one transaction at a time, never twice.
            sequence = await uow.admissions.next_receipt_sequence(stored.pk)
            receipt = format_receipt(stored.round.receipt_prefix, sequence)
            saved = await uow.admissions.update_application(
                record,
                self._draft(
                    record,
                    status=ApplicationStatus.SUBMITTED,
                    receipt_number=receipt,
                    submitted_at=now,
                ),
                now=now,
            )
            await self._history(uow, saved, user_pk, "submitted", now)
            await self._tell(uow, applicant.user_pk, stored, saved, "application.submitted")
            await uow.commit()
        return self._view(stored, saved), True

    async def withdraw(self, user_pk: int, round_code: str) -> ApplicationView:
        now = self._clock.now()
        async with self._storage.unit_of_work() as uow:
            stored, applicant, record = await self._own(uow, user_pk, round_code, lock=True)
            if record is None:
                raise NotFound("you have no application in this round", round=round_code)
            if check_withdraw(record.status, stored.round.window, now):
                return self._view(stored, record)
            saved = await uow.admissions.update_application(
                record, self._draft(record, status=ApplicationStatus.WITHDRAWN), now=now
            )
            await self._history(uow, saved, user_pk, "withdrawn", now)
            await self._tell(uow, applicant.user_pk, stored, saved, "application.withdrawn")
            await uow.commit()
        return self._view(stored, saved)

    async def history(self, user_pk: int, round_code: str) -> list[HistoryView]:
        async with self._storage.unit_of_work() as uow:
            _, _, record = await self._own(uow, user_pk, round_code)
            if record is None:
                raise NotFound("you have no application in this round", round=round_code)
            entries = await uow.admissions.history(record.pk)
        return [
            HistoryView(e.at, e.action, e.status, by_applicant=e.actor_user_pk == user_pk)
            for e in entries
        ]

    # --- staff -------------------------------------------------------------------------

    async def list_applications(self, round_code: str, where: ApplicationFilter) -> list[StaffRow]:
        async with self._storage.unit_of_work() as uow:
            stored = await uow.admissions.round(round_code)
            rows = await uow.admissions.list_applications(stored.pk, where)
        return [
            StaffRow(row.record.pk, self._view(stored, row.record), row.applicant) for row in rows
        ]

    async def set_status(
        self,
        actor_user_pk: int,
        round_code: str,
        receipt_number: str,
        target: ApplicationStatus,
        *,
        actor: Actor | None = None,
    ) -> ApplicationView:
        """A staff decision; the applicant is mailed. Setting the status an application
        has already is a no-op (a retried request), with no second mail."""
        now = self._clock.now()
        async with self._storage.unit_of_work() as uow:
            stored = await uow.admissions.round(round_code)
            record = await uow.admissions.application_by_receipt(
                stored.pk, receipt_number, lock=True
            )
            saved = await self._decide(uow, actor_user_pk, stored, record, target, now)
            if saved is not record:  # a retried decision changed nothing: nothing to log
                await record_change(
                    uow,
                    self._clock,
                    actor,
                    "application.decide",
                    f"application:{round_code}/{receipt_number}",
                    status=target.value,
                    previous=record.status.value,
                )
            await uow.commit()
        return self._view(stored, saved)

    async def admit_from_waitlist(
        self,
        actor_user_pk: int,
        round_code: str,
        receipt_numbers: Sequence[str],
        *,
        actor: Actor | None = None,
    ) -> list[ApplicationView]:
        """충원합격: accept these waitlisted applications, all or none (one that is not
        waitlisted, or unknown, refuses the whole announcement)."""
        now = self._clock.now()
        views: list[ApplicationView] = []
        admitted: list[str] = []
        async with self._storage.unit_of_work() as uow:
            stored = await uow.admissions.round(round_code)
            # Sorted: two announcements that overlap lock their rows in the same order.
            for receipt in sorted(set(receipt_numbers)):
                record = await uow.admissions.application_by_receipt(stored.pk, receipt, lock=True)
                if record.status not in (ApplicationStatus.WAITLISTED, ApplicationStatus.ACCEPTED):
                    raise InvalidTransition(
                        "only waitlisted applications can be admitted from the waitlist",
                        receipt=receipt,
                        current=record.status.value,
                    )
                saved = await self._decide(
                    uow,
                    actor_user_pk,
                    stored,
                    record,
                    ApplicationStatus.ACCEPTED,
                    now,
                    from_waitlist=True,
                )
                views.append(self._view(stored, saved))
                if saved is not record:
                    admitted.append(receipt)
            if admitted:
                await record_change(
                    uow,
                    self._clock,
                    actor,
                    "application.admit_from_waitlist",
                    f"round:{round_code}",
                    receipt_numbers=admitted,
                )
            await uow.commit()
        return views

    # --- helpers -----------------------------------------------------------------------

    async def _decide(
        self,
        uow: UnitOfWork,
        actor_user_pk: int,
        stored: StoredRound,
        record: ApplicationRecord,
        target: ApplicationStatus,
        now: datetime,
        *,
        from_waitlist: bool = False,
    ) -> ApplicationRecord:
        check_staff_transition(record.status, target)
        if record.status is target:
            return record
        saved = await uow.admissions.update_application(
            record, self._draft(record, status=target), now=now
        )
        await self._history(uow, saved, actor_user_pk, "status", now)
        applicant = await uow.admissions.applicant(record.applicant_pk)
        await self._tell(
            uow,
            applicant.user_pk,
            stored,
            saved,
            "application.status_changed",
            from_waitlist=from_waitlist,
        )
        return saved

    async def _own(
        self, uow: UnitOfWork, user_pk: int, round_code: str, *, lock: bool = False
    ) -> tuple[StoredRound, Applicant, ApplicationRecord | None]:
        stored = await uow.admissions.round(round_code)
        # Lock order: the applicant, then their application, then (submit) the round's
        # receipt counter.
        applicant = await uow.admissions.applicant_of(user_pk, lock=lock)
        record = await uow.admissions.application(stored.pk, applicant.pk, lock=lock)
        return stored, applicant, record

    def _checked(
        self, round_: AdmissionRound, data: ApplicationInput, today: date
    ) -> tuple[str | None, dict[str, str] | None, str]:
        errors: list[dict[str, str]] = []
        track = data.track
        if track is not None and track not in {t.code for t in round_.tracks}:
            errors.append(_field_error("track", "not a track of this round"))
        statement = data.statement.strip()
        if len(statement) > STATEMENT_MAX:
            errors.append(_field_error("statement", f"at most {STATEMENT_MAX} characters"))
        elif has_forbidden_characters(statement, allow="\n\r\t"):
            errors.append(_field_error("statement", "control characters are not allowed"))
        personal: PersonalInfo | None = None
        if data.personal is not None:
            p = data.personal
            try:
                personal = PersonalInfo.create(
                    p.name,
                    p.birth_date,
                    p.phone,
                    p.guardian_name,
                    p.guardian_phone,
                    p.middle_school,
                    p.address,
                    today,
                )
            except ValidationFailed as exc:
                errors += [{**error, "field": f"personal.{error['field']}"} for error in exc.errors]
        if errors:
            raise ValidationFailed("some application fields are invalid", errors=errors)
        return track, None if personal is None else self._seal(personal), statement

    @staticmethod
    def _require_complete(
        track: str | None, personal: dict[str, str] | None, consent: object
    ) -> None:
        missing = [
            _field_error(field, "required to submit")
            for field, value in (("track", track), ("personal", personal), ("consent", consent))
            if not value
        ]
        if missing:
            raise ValidationFailed("the application is not complete", errors=missing)

    def _seal(self, personal: PersonalInfo) -> dict[str, str]:
        plain = {
            "name": personal.name,
            "birth_date": personal.birth_date.isoformat(),
            "phone": personal.phone,
            "guardian_name": personal.guardian_name,
            "guardian_phone": personal.guardian_phone,
            "middle_school": personal.middle_school,
            "address": personal.address,
        }
        return {
            field: self._cipher.seal(value, field=field) if field in SEALED_FIELDS else value
            for field, value in plain.items()
        }

    def _open(self, sealed: dict[str, str]) -> PersonalInfo:
        plain = {
            field: self._cipher.open(value, field=field) if field in SEALED_FIELDS else value
            for field, value in sealed.items()
        }
        return PersonalInfo(
            name=plain["name"],
            birth_date=date.fromisoformat(plain["birth_date"]),
            phone=plain["phone"],
            guardian_name=plain["guardian_name"],
            guardian_phone=plain["guardian_phone"],
            middle_school=plain["middle_school"],
            address=plain["address"],
        )

    def _view(self, stored: StoredRound, record: ApplicationRecord) -> ApplicationView:
        return ApplicationView(
            round_code=stored.round.code,
            round_name=stored.round.name,
            status=record.status,
            track=record.track,
            personal=None if record.personal is None else self._open(record.personal),
            statement=record.statement,
            consent_at=record.consent_at,
            receipt_number=record.receipt_number,
            submitted_at=record.submitted_at,
            updated_at=record.updated_at,
            version=record.version,
        )

    @staticmethod
    def _draft(record: ApplicationRecord, **changes: Any) -> ApplicationDraft:
        values: dict[str, Any] = {
            "status": record.status,
            "track": record.track,
            "personal": record.personal,
            "statement": record.statement,
            "consent_at": record.consent_at,
            "receipt_number": record.receipt_number,
            "submitted_at": record.submitted_at,
        }
        return ApplicationDraft(**(values | changes))

    @staticmethod
    async def _history(
        uow: UnitOfWork, record: ApplicationRecord, actor: int, action: str, now: datetime
    ) -> None:
        await uow.admissions.append_history(
            record.pk,
            HistoryEntry(
                at=now,
                actor_user_pk=actor,
                action=action,
                status=record.status,
                # Sealed as stored: the history holds no more plaintext than the row.
                snapshot={
                    "track": record.track,
                    "personal": record.personal,
                    "statement": record.statement,
                    "receipt_number": record.receipt_number,
                    "version": record.version,
                },
            ),
        )

    @staticmethod
    async def _tell(
        uow: UnitOfWork,
        user_pk: int,
        stored: StoredRound,
        record: ApplicationRecord,
        kind: str,
        **extra: Any,
    ) -> None:
        await uow.outbox.add(
            OutboxMessage(
                kind=kind,
                # The version makes each change its own mail, and the same change one.
                dedupe_key=f"application:{record.pk}:v{record.version}:{kind}",
                user_pk=user_pk,
                payload={
                    "round_code": stored.round.code,
                    "round_name": stored.round.name,
                    "receipt_number": record.receipt_number,
                    "status": record.status.value,
                    **extra,
                },
            )
        )
