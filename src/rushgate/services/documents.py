"""Documents an applicant attaches to their application (transcripts, certificates, …).

An upload is streamed: its bytes go from the request to the :class:`DocumentStore` chunk
by chunk, counted and hashed on the way, and refused the moment they pass the size limit,
so neither a large file nor a lying client makes the node hold a whole file in memory.
The type is decided by the file's first bytes (``check_document``), before anything is
stored; the client's name and declared type only have to agree with them.

No database transaction is held open while bytes arrive (a slow upload would pin a pooled
connection for its whole duration): the application is checked in one short transaction,
the bytes are stored, and the record is written in a second one that checks again under
the application's row lock. Any refusal or failure after the bytes were stored deletes
them, so a refused upload leaves neither a row nor a file. The time the upload started is
what counts against the deadline, when it finished within :data:`UPLOAD_GRACE`: a file
that began arriving in time over a slow connection is in time, but trickling bytes cannot
stretch the deadline.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from rushgate.domain.admissions import (
    SNIFF_BYTES,
    AdmissionRound,
    ReceiptNumber,
    check_applicant_edit,
    check_document,
    safe_filename,
)
from rushgate.domain.clock import Clock
from rushgate.domain.errors import Conflict, DocumentTooLarge, NotFound, ValidationFailed
from rushgate.services.ports.admissions import ApplicationRecord, StoredRound
from rushgate.services.ports.documents import DocumentRecord, DocumentStore, NewDocument
from rushgate.services.ports.storage import Storage, UnitOfWork

log = logging.getLogger("rushgate.documents")

#: Besides the round's required documents, applicants may attach anything else as this.
OTHER_KIND = "other"
#: Stored files no record refers to are deleted once this old: far longer than an upload
#: takes between storing its bytes and recording them.
SWEEP_AFTER = timedelta(hours=1)
_SWEEP_CHUNK = 500

#: Documents one application may hold: bounds what one account can put on the disk.
MAX_DOCUMENTS = 20
#: How long an upload may take and still be judged by the time it began.
UPLOAD_GRACE = timedelta(minutes=10)


@dataclass(frozen=True, slots=True)
class Upload:
    """One file as it arrives: ``chunks`` is consumed once, as the bytes come in."""

    kind: str
    filename: str
    declared_type: str | None
    chunks: AsyncIterator[bytes]


@dataclass(frozen=True, slots=True)
class Download:
    document: DocumentRecord
    chunks: AsyncIterator[bytes]


class _Meter:
    """Counts and hashes the bytes going by; refuses them past ``max_bytes``."""

    def __init__(self, max_bytes: int, filename: str) -> None:
        self.max_bytes = max_bytes
        self.filename = filename
        self.size = 0
        self.sha256 = hashlib.sha256()

    async def measure(self, head: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        self._count(head)
        yield head
        async for chunk in rest:
            self._count(chunk)
            yield chunk

    def _count(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.max_bytes:
            raise DocumentTooLarge(
                "the file is too large",
                max_bytes=self.max_bytes,
                filename=self.filename,
            )
        self.sha256.update(chunk)


async def _read_head(chunks: AsyncIterator[bytes]) -> bytes:
    """At least :data:`SNIFF_BYTES` bytes from the start (fewer only at the end)."""
    head = b""
    while len(head) < SNIFF_BYTES:
        try:
            head += await anext(chunks)
        except StopAsyncIteration:
            break
    return head


class DocumentService:
    def __init__(
        self, storage: Storage, store: DocumentStore, clock: Clock, *, max_bytes: int
    ) -> None:
        self._storage = storage
        self._store = store
        self._clock = clock
        self.max_bytes = max_bytes

    # --- applicants ---------------------------------------------------------------------

    async def upload(self, user_pk: int, round_code: str, upload: Upload) -> DocumentRecord:
        now = self._clock.now()
        async with self._storage.unit_of_work() as uow:
            stored, application = await self._editable(uow, user_pk, round_code, now)
            kind = self._check_kind(stored.round, upload.kind)
            await self._check_room(uow, application)
        filename = safe_filename(upload.filename)
        head = await _read_head(upload.chunks)
        # The whole type check on the first bytes, before a byte is stored. The size is
        # what has arrived so far; the meter enforces the limit on the rest.
        media = check_document(
            filename=upload.filename,
            declared_type=upload.declared_type,
            head=head,
            size=len(head),
            max_bytes=self.max_bytes,
        )
        key = f"r{stored.pk}/a{application.pk}/{secrets.token_hex(16)}"
        meter = _Meter(self.max_bytes, filename)
        await self._store.put(key, meter.measure(head, upload.chunks))
        finished = self._clock.now()
        at = now if finished - now <= UPLOAD_GRACE else finished
        committing = False
        try:
            async with self._storage.unit_of_work() as uow:
                # Again under the row lock: a submit, withdrawal or parallel upload may
                # have happened while the bytes arrived.
                stored, application = await self._editable(uow, user_pk, round_code, at, lock=True)
                await self._check_room(uow, application)
                record = await uow.documents.add(
                    application.pk,
                    NewDocument(
                        kind=kind,
                        filename=filename,
                        content_type=media.content_type,
                        size=meter.size,
                        sha256=meter.sha256.hexdigest(),
                        storage_key=key,
                    ),
                    now=finished,
                )
                committing = True
                await uow.commit()
        except BaseException:
            # Before the commit nothing refers to the bytes: remove them. Once the commit
            # was sent its outcome may be unknown (a connection lost mid-COMMIT): keep
            # them, as an unreferenced file costs disk space, a record without its file
            # would be a broken document.
            if not committing:
                await asyncio.shield(self._discard(key))
            raise
        return record

    async def documents(self, user_pk: int, round_code: str) -> list[DocumentRecord]:
        async with self._storage.unit_of_work() as uow:
            _, application = await self._own(uow, user_pk, round_code)
            return await uow.documents.of_application(application.pk)

    async def download(self, user_pk: int, round_code: str, document_pk: int) -> Download:
        async with self._storage.unit_of_work() as uow:
            _, application = await self._own(uow, user_pk, round_code)
            document = await uow.documents.get(application.pk, document_pk)
        return Download(document, await self._store.open(document.storage_key))

    async def delete(self, user_pk: int, round_code: str, document_pk: int) -> None:
        """Only while the application may be edited. The row goes first, the bytes after
        the commit: a failure in between leaves an unreferenced file, never a record
        without its file."""
        now = self._clock.now()
        async with self._storage.unit_of_work() as uow:
            _, application = await self._editable(uow, user_pk, round_code, now, lock=True)
            document = await uow.documents.get(application.pk, document_pk)
            await uow.documents.remove(document.pk)
            await uow.commit()
        await self._discard(document.storage_key)

    # --- staff --------------------------------------------------------------------------

    async def staff_documents(self, round_code: str, receipt: str) -> list[DocumentRecord]:
        async with self._storage.unit_of_work() as uow:
            application = await self._by_receipt(uow, round_code, receipt)
            return await uow.documents.of_application(application.pk)

    async def staff_download(self, round_code: str, receipt: str, document_pk: int) -> Download:
        async with self._storage.unit_of_work() as uow:
            application = await self._by_receipt(uow, round_code, receipt)
            document = await uow.documents.get(application.pk, document_pk)
        return Download(document, await self._store.open(document.storage_key))

    # --- housekeeping -------------------------------------------------------------------

    async def sweep(self, *, older_than: timedelta = SWEEP_AFTER) -> int:
        """Delete stored files that no record refers to and that were stored more than
        ``older_than`` ago (what a crash between storing and recording, or between
        deleting a record and its bytes, left behind); how many were deleted. Younger files
        are left alone: their upload may be about to record them."""
        keys = await self._store.stored_before(self._clock.now() - older_than)
        deleted = 0
        for start in range(0, len(keys), _SWEEP_CHUNK):
            chunk = keys[start : start + _SWEEP_CHUNK]
            async with self._storage.unit_of_work() as uow:
                referenced = await uow.documents.referenced(chunk)
            for key in chunk:
                if key not in referenced:
                    await self._store.delete(key)
                    deleted += 1
        if deleted:
            log.warning("deleted %d stored documents no record referred to", deleted)
        return deleted

    # --- helpers ------------------------------------------------------------------------

    async def _discard(self, key: str) -> None:
        """Delete stored bytes nothing refers to; a failure only leaves an unreferenced
        file behind, so it is logged rather than raised over the request's own outcome."""
        try:
            await self._store.delete(key)
        except Exception:
            log.exception("could not delete the stored document %s; it is left behind", key)

    @staticmethod
    async def _own(
        uow: UnitOfWork, user_pk: int, round_code: str, *, lock: bool = False
    ) -> tuple[StoredRound, ApplicationRecord]:
        stored = await uow.admissions.round(round_code)
        applicant = await uow.admissions.applicant_of(user_pk)
        application = await uow.admissions.application(stored.pk, applicant.pk, lock=lock)
        if application is None:
            raise NotFound("you have no application in this round yet", round=round_code)
        return stored, application

    async def _editable(
        self,
        uow: UnitOfWork,
        user_pk: int,
        round_code: str,
        now: datetime,
        *,
        lock: bool = False,
    ) -> tuple[StoredRound, ApplicationRecord]:
        stored, application = await self._own(uow, user_pk, round_code, lock=lock)
        check_applicant_edit(application.status, stored.round.window, now)
        return stored, application

    @staticmethod
    async def _by_receipt(uow: UnitOfWork, round_code: str, receipt: str) -> ApplicationRecord:
        stored = await uow.admissions.round(round_code)
        return await uow.admissions.application_by_receipt(
            stored.pk, str(ReceiptNumber.parse(receipt))
        )

    @staticmethod
    def _check_kind(round_: AdmissionRound, kind: str) -> str:
        allowed = (*round_.required_documents, OTHER_KIND)
        if kind not in allowed:
            raise ValidationFailed(
                "this round asks for no such document",
                errors=[{"field": "kind", "message": "one of: " + ", ".join(allowed)}],
            )
        return kind

    @staticmethod
    async def _check_room(uow: UnitOfWork, application: ApplicationRecord) -> None:
        if await uow.documents.count(application.pk) >= MAX_DOCUMENTS:
            raise Conflict(
                f"an application holds at most {MAX_DOCUMENTS} documents; delete one first",
                limit=MAX_DOCUMENTS,
            )
