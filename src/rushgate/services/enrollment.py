"""Enrollment: the only place seats are taken and given back.

Concurrency routine
-------------------
Every write runs in one transaction on the primary and takes its locks in one order:

1. **the student's row** (``lock_student``). All writes of one student are serialized, so
   the course, time and credit checks read holdings that cannot change underneath them,
   and a retried or double-clicked request waits for the first to finish;
2. **the section's row**, taken by the conditional write itself
   (``UPDATE sections SET enrolled = enrolled + 1 WHERE id = :id AND enrolled < capacity``
   folded into the ``INSERT`` of the enrollment row). The seat count only moves together
   with a row that really was inserted or deleted, in the same statement or transaction;
3. **enrollment rows** of other students (promotion of a waitlist head), always after
   the section row, so drops and promotions cannot deadlock with each other.

Unique constraints (one row per student, term and course) are the last line of
defence: a violation aborts the transaction, count included, and is reported as
``already_enrolled``.

On SQLite every write transaction starts with ``BEGIN IMMEDIATE``: one writer at a time,
which is the strongest form of the same order. Reads never lock.

Before the database
--------------------
With seat hints (Redis, or in-process) an enrollment first makes one round trip to the
coordination store: a section known to be full is refused there, without a database
round trip, and the waiting room's admission is checked for revocation in the same trip.
The hint only ever short-cuts a refusal the database would give too (see ``SeatHints``);
a request whose ``Idempotency-Key`` already reached the database always goes there again,
so a retry after a lost response still gets its stored result.

Idempotency: with an ``Idempotency-Key`` the first *successful* result is stored in the
same transaction as the seat, so a retry after a lost response returns that result and
never takes a second seat. A refusal writes nothing and is not stored: refusals have no
effect to protect, and a retry may succeed once a seat is free.

Confirmation mail: every change (enrolled, waitlisted, dropped, and the promotion of a
waitlisted student) writes an outbox message in its own transaction, so a committed
change always gets its mail and a rolled-back one never does; the outbox relay
(``rushgate.workers.outbox_relay``) sends it after the commit.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rushgate.domain.clock import Clock
from rushgate.domain.errors import (
    IdempotencyKeyReused,
    NotAdmitted,
    NotFound,
    SectionFull,
    WaitlistFull,
)
from rushgate.domain.model import HoldingStatus, RegistrationWindow
from rushgate.domain.rules import ensure_can_hold, ensure_window_open
from rushgate.services.ports.enrollment import (
    EnrollmentRepository,
    Promotion,
    Receipt,
    ScheduleEntry,
    SectionForEnrollment,
    StoredResult,
)
from rushgate.services.ports.outbox import OutboxMessage
from rushgate.services.ports.seat_hints import HintVerdict, SeatHints, SeatOutcome
from rushgate.services.ports.storage import Storage
from rushgate.services.waiting_room import TermDirectory, WaitingRoomService


@dataclass(frozen=True, slots=True)
class EnrollmentResult:
    section_id: str
    status: HoldingStatus
    waitlist_position: int | None
    replayed: bool = False

    def to_record(self) -> dict[str, object]:
        return {
            "section_id": self.section_id,
            "status": self.status.value,
            "waitlist_position": self.waitlist_position,
        }

    @classmethod
    def from_record(cls, body: dict[str, object], *, replayed: bool) -> EnrollmentResult:
        position = body.get("waitlist_position")
        return cls(
            section_id=str(body["section_id"]),
            status=HoldingStatus(str(body["status"])),
            waitlist_position=int(position) if isinstance(position, int) else None,
            replayed=replayed,
        )


def _request_hash(term_code: str, section_id: str) -> str:
    canonical = json.dumps({"term": term_code, "section_id": section_id}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _open_for_everyone(window: RegistrationWindow, now: datetime) -> bool:
    """Whether no class year could get ``window_closed`` now: then, and only then, a full
    section's refusal is the answer the database would give too."""
    opens = max([window.opens_at, *window.class_year_opens_at.values()])
    return opens <= now < window.closes_at


def _notice(
    kind: str, user_pk: int, term_code: str, section: SectionForEnrollment, **extra: Any
) -> OutboxMessage:
    """The outbox message of one change. Its row commits with the change or not at all,
    and a retried request writes nothing (the stored result, or ``already_enrolled`` /
    ``not_found``), so each change has exactly one row and the key need only be unique.
    It is not the enrollment row's id: SQLite hands a deleted row's id to the next insert,
    so an enroll, drop and enroll again would lose the second mail as a duplicate."""
    return OutboxMessage(
        kind=kind,
        dedupe_key=f"{kind}.{uuid.uuid4().hex}",
        user_pk=user_pk,
        payload={
            "term": term_code,
            "section_id": section.ref.section_id,
            "title": section.title,
            **extra,
        },
    )


@dataclass(frozen=True, slots=True)
class FrontDoor:
    """What an enrollment checks before the database: term settings, the waiting room's
    admission, and seat hints. Without it (tests of the core) enrollments go straight in."""

    terms: TermDirectory
    hints: SeatHints
    waiting_room: WaitingRoomService


@dataclass(frozen=True, slots=True)
class _Placed:
    result: EnrollmentResult
    # Set when this request took the section's last place: the hints learn it from here.
    filled: SeatOutcome | None = None


class EnrollmentService:
    def __init__(self, storage: Storage, clock: Clock, front: FrontDoor | None = None) -> None:
        self._storage = storage
        self._clock = clock
        self._front = front

    async def enroll(
        self,
        *,
        student_pk: int,
        term_code: str,
        section_id: str,
        idempotency_key: str | None = None,
        admission_token: str | None = None,
    ) -> EnrollmentResult:
        front = self._front
        if front is None:
            placed = await self._enroll(student_pk, term_code, section_id, idempotency_key)
            return placed.result
        term = await front.terms.get(term_code)
        ticket = None
        if term.waiting_room_enabled:
            ticket = front.waiting_room.admitted(
                admission_token, student_pk=student_pk, term_code=term_code
            )
        check = await front.hints.precheck(
            term_code,
            section_id,
            student_pk=student_pk,
            idempotency_key=idempotency_key,
            admission_ticket=ticket,
        )
        if check.revoked:
            raise NotAdmitted("this admission was given up or revoked", term=term_code)
        if check.verdict is not HintVerdict.PROCEED and _open_for_everyone(
            term.window, self._clock.now()
        ):
            if check.verdict is HintVerdict.SECTION_FULL:
                raise SectionFull("this section has no seats left", section_id=section_id)
            raise WaitlistFull("this section and its waitlist are full", section_id=section_id)
        try:
            placed = await self._enroll(student_pk, term_code, section_id, idempotency_key)
        except SectionFull:
            await front.hints.record(
                term_code, section_id, SeatOutcome.SECTION_FULL, check.generation
            )
            raise
        except WaitlistFull:
            await front.hints.record(
                term_code, section_id, SeatOutcome.WAITLIST_FULL, check.generation
            )
            raise
        # Most enrollments leave room behind and tell the hints nothing: no second trip.
        if placed.filled is not None:
            await front.hints.record(term_code, section_id, placed.filled, check.generation)
        return placed.result

    async def _enroll(
        self, student_pk: int, term_code: str, section_id: str, idempotency_key: str | None
    ) -> _Placed:
        request_hash = _request_hash(term_code, section_id)
        async with self._storage.unit_of_work() as uow:
            repo = uow.enrollments
            student = await repo.lock_student(student_pk)
            context = await repo.enrollment_context(
                student_pk, term_code, section_id, idempotency_key
            )
            if context.stored is not None:
                if context.stored.request_hash != request_hash:
                    raise IdempotencyKeyReused(
                        "this Idempotency-Key was used for a different request"
                    )
                return _Placed(EnrollmentResult.from_record(context.stored.body, replayed=True))
            section = context.section
            if section is None:
                raise NotFound(
                    "no such section in this term", term=term_code, section_id=section_id
                )
            ensure_window_open(section.window, student, self._clock.now())
            ensure_can_hold(student, section.ref, context.holdings)

            enrolled = EnrollmentResult(section_id, HoldingStatus.ENROLLED, None)
            receipt = (
                None
                if idempotency_key is None
                else Receipt(idempotency_key, StoredResult(request_hash, enrolled.to_record()))
            )
            placed = await self._seat_or_waitlist(repo, section, student_pk, receipt)
            result = placed.result
            if receipt is not None and result.status is HoldingStatus.WAITLISTED:
                # A seat stores its receipt in the same statement; a waitlist place here.
                await repo.remember_result(
                    student_pk, receipt.key, StoredResult(request_hash, result.to_record())
                )
            if result.status is HoldingStatus.ENROLLED:
                notice = _notice("enrollment.enrolled", student.user_pk, term_code, section)
            else:
                notice = _notice(
                    "enrollment.waitlisted",
                    student.user_pk,
                    term_code,
                    section,
                    waitlist_position=result.waitlist_position,
                )
            await uow.outbox.add(notice)
            await uow.commit()
            return placed

    @staticmethod
    async def _seat_or_waitlist(
        repo: EnrollmentRepository,
        section: SectionForEnrollment,
        student_pk: int,
        receipt: Receipt | None,
    ) -> _Placed:
        section_id = section.ref.section_id
        has_waitlist = section.waitlist_capacity > 0
        # A seat can free up between the failed seat write and the waitlist write; the
        # waitlist only accepts entries for a full section, so then the seat is tried again.
        for _ in range(3):
            seats_left = await repo.take_seat(section, student_pk, receipt)
            if seats_left is not None:
                last = seats_left == 0 and not has_waitlist
                return _Placed(
                    EnrollmentResult(section_id, HoldingStatus.ENROLLED, None),
                    SeatOutcome.SECTION_FULL if last else None,
                )
            if not has_waitlist:
                raise SectionFull("this section has no seats left", section_id=section_id)
            position = await repo.join_waitlist(section, student_pk)
            if position is not None:
                last = position >= section.waitlist_capacity
                return _Placed(
                    EnrollmentResult(section_id, HoldingStatus.WAITLISTED, position),
                    SeatOutcome.WAITLIST_FULL if last else None,
                )
            if not await repo.seats_free(section.pk):
                break
        raise WaitlistFull("this section and its waitlist are full", section_id=section_id)

    async def drop(self, *, student_pk: int, term_code: str, section_id: str) -> int | None:
        """Give up a seat or a waitlist place. Returns the pk of a promoted student, if any."""
        if self._front is None:
            return await self._drop(student_pk, term_code, section_id)
        # The hint forgets the section before the seat can be freed, so no "full" learned
        # before this drop commits can outlive it (see SeatHints).
        await self._front.hints.releasing(term_code, section_id)
        try:
            return await self._drop(student_pk, term_code, section_id)
        finally:
            await self._front.hints.released(term_code, section_id)

    async def _drop(self, student_pk: int, term_code: str, section_id: str) -> int | None:
        async with self._storage.unit_of_work() as uow:
            repo = uow.enrollments
            student = await repo.lock_student(student_pk)
            section = await repo.find_section(term_code, section_id)
            ensure_window_open(section.window, student, self._clock.now())
            await repo.lock_section(section.pk)
            was = await repo.remove_holding(student_pk, section.pk)
            if was is None:
                raise NotFound("you hold no place in this section", section_id=section_id)
            await uow.outbox.add(
                _notice("enrollment.dropped", student.user_pk, term_code, section, was=was.value)
            )
            promoted: Promotion | None = None
            if was is HoldingStatus.ENROLLED:
                # The freed seat goes to the head of the waitlist, in the same transaction,
                # so there is never a moment when a newcomer could take it first.
                promoted = await repo.promote_waitlist_head(section.pk)
                if promoted is None:
                    await repo.release_seat(section.pk)
                else:
                    await uow.outbox.add(
                        _notice("enrollment.promoted", promoted.user_pk, term_code, section)
                    )
            await uow.commit()
            return None if promoted is None else promoted.student_pk

    async def schedule(self, *, student_pk: int, term_code: str) -> list[ScheduleEntry]:
        # Read-your-writes: a student looks at their schedule right after changing it.
        return await self._storage.reads(fresh=True).schedule(student_pk, term_code)
