"""Seeding admission rounds, applicants and applications straight through the storage port
(for the Q&A and document tests; sign-up and saving go through the lead's routes)."""

from __future__ import annotations

from datetime import timedelta

from rushgate.domain.admissions import (
    AdmissionRound,
    ApplicationStatus,
    FilingWindow,
    Track,
    format_receipt,
)
from rushgate.services.ports.admissions import Applicant, ApplicationDraft, ApplicationRecord
from rushgate.services.ports.storage import Storage
from tests.support import T0

ROUND = "2027-hs"
OPENS = T0
CLOSES = T0 + timedelta(hours=6)
REQUIRED = ("transcript", "recommendation")
APPLICANT_PASSWORD = "applicant-pass-1"


def new_round(code: str = ROUND, *, required: tuple[str, ...] = REQUIRED) -> AdmissionRound:
    return AdmissionRound(
        code=code,
        name=f"Round {code}",
        window=FilingWindow(OPENS, CLOSES),
        tracks=(Track("general", "일반전형", 100),),
        required_documents=required,
        receipt_prefix="2027-A",
    )


async def add_round(storage: Storage, round_: AdmissionRound | None = None) -> int:
    round_ = round_ or new_round()
    async with storage.unit_of_work() as uow:
        await uow.admissions.add_round(round_, now=T0 - timedelta(days=1))
        await uow.commit()
    async with storage.unit_of_work() as uow:
        return (await uow.admissions.round(round_.code)).pk


async def add_applicant(
    storage: Storage, email: str, *, password_hash: str, name: str | None = None
) -> Applicant:
    async with storage.unit_of_work() as uow:
        applicant = await uow.admissions.add_applicant(
            email=email,
            name=name or f"Applicant {email.partition('@')[0]}",
            password_hash=password_hash,
            locale=None,
            now=T0 - timedelta(days=1),
        )
        await uow.commit()
    return applicant


async def add_application(
    storage: Storage,
    applicant_pk: int,
    *,
    round_code: str = ROUND,
    status: ApplicationStatus = ApplicationStatus.DRAFT,
) -> ApplicationRecord:
    """An application in ``status``; past a draft it carries a receipt number."""
    async with storage.unit_of_work() as uow:
        stored = await uow.admissions.round(round_code)
        receipt = None
        if status not in (ApplicationStatus.DRAFT, ApplicationStatus.WITHDRAWN):
            receipt = format_receipt(
                stored.round.receipt_prefix, await uow.admissions.next_receipt_sequence(stored.pk)
            )
        record = await uow.admissions.insert_application(
            stored.pk,
            applicant_pk,
            ApplicationDraft(
                status=status,
                track="general",
                personal=None,
                statement="",
                consent_at=None,
                receipt_number=receipt,
                submitted_at=None if receipt is None else T0,
            ),
            now=T0,
        )
        await uow.commit()
    return record


async def set_status(
    storage: Storage, record: ApplicationRecord, status: ApplicationStatus
) -> ApplicationRecord:
    """Move an application to ``status`` (staff's doing, here without the rules)."""
    async with storage.unit_of_work() as uow:
        current = await uow.admissions.application(record.round_pk, record.applicant_pk, lock=True)
        assert current is not None
        receipt = current.receipt_number
        if receipt is None and status is not ApplicationStatus.DRAFT:
            stored_pk = current.round_pk
            receipt = format_receipt(
                "2027-A", await uow.admissions.next_receipt_sequence(stored_pk)
            )
        saved = await uow.admissions.update_application(
            current,
            ApplicationDraft(
                status=status,
                track=current.track,
                personal=current.personal,
                statement=current.statement,
                consent_at=current.consent_at,
                receipt_number=receipt,
                submitted_at=current.submitted_at or T0,
            ),
            now=T0,
        )
        await uow.commit()
    return saved
