"""Documents attached to an application: their bytes (a blob store) and their records.

The bytes and the record live apart: the record in the database (the source of truth of
which documents an application has), the bytes in a :class:`DocumentStore`. The service
writes the bytes first and the record second, and deletes the record first and the bytes
second, so a record never points at missing bytes; a crash in between leaves at worst an
unreferenced blob, never a broken document. The document sweeper deletes such blobs once
they are old enough that no upload can still be about to record them.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

#: What a storage key looks like: ``/``-separated segments of ``[A-Za-z0-9_-]``. Keys are
#: made by the service, never taken from a request, and this shape is safe both as a
#: relative file path (no ``..``, no absolute path, no hidden files) and as an S3 key.
STORAGE_KEY = re.compile(r"[A-Za-z0-9_-]{1,64}(?:/[A-Za-z0-9_-]{1,64}){0,7}")


def check_storage_key(key: str) -> str:
    """``key`` itself, or ``ValueError``: a bad key is a bug, not user input."""
    if not STORAGE_KEY.fullmatch(key):
        raise ValueError(f"not a storage key: {key!r}")
    return key


class DocumentStore(Protocol):
    """Where uploaded files' bytes live.

    The embedded default and single-machine deployments use a local directory
    (``LocalDocumentStore``). An S3-compatible store implements the same three calls:
    ``put`` as a multipart upload (create, upload parts, complete; abort on any error, so
    an object appears whole or not at all), ``open`` as a streamed ``GetObject`` and
    ``delete`` as ``DeleteObject`` (which is idempotent already). Keys follow
    :data:`STORAGE_KEY`.
    """

    async def put(self, key: str, chunks: AsyncIterable[bytes]) -> None:
        """Store what ``chunks`` yields under ``key``, all or nothing: readers never see a
        partial file, and when ``chunks`` raises (a size limit, a client that went away)
        nothing is left under ``key`` and the error propagates."""
        ...

    async def open(self, key: str) -> AsyncIterator[bytes]:
        """The stored bytes, in chunks. Raises ``NotFound`` (before any chunk) when
        nothing is stored under ``key``."""
        ...

    async def delete(self, key: str) -> None:
        """Idempotent: deleting a missing key is fine."""
        ...

    async def stored_before(self, before: datetime) -> list[str]:
        """Keys of everything stored before ``before`` (S3: ``ListObjectsV2`` by
        ``LastModified``), for the sweep of files no record refers to. Also drops what a
        crashed ``put`` left half-written before then."""
        ...


@dataclass(frozen=True, slots=True)
class NewDocument:
    kind: str  # one of the round's required document names, or "other"
    filename: str  # already made safe (``safe_filename``)
    content_type: str  # from the sniffed bytes, never from the client
    size: int
    sha256: str
    storage_key: str


@dataclass(frozen=True, slots=True)
class DocumentRecord:
    pk: int
    application_pk: int
    kind: str
    filename: str
    content_type: str
    size: int
    sha256: str
    storage_key: str
    uploaded_at: datetime


class DocumentsRepository(Protocol):
    """Every method runs inside the caller's unit of work (on the primary)."""

    async def add(
        self, application_pk: int, document: NewDocument, *, now: datetime
    ) -> DocumentRecord:
        """Raises ``Conflict`` when the storage key is taken (keys are unique)."""
        ...

    async def of_application(self, application_pk: int) -> list[DocumentRecord]:
        """In upload order."""
        ...

    async def get(self, application_pk: int, document_pk: int) -> DocumentRecord:
        """Only a document of this application; raises ``NotFound`` otherwise, so one
        applicant's id never reaches another's document."""
        ...

    async def remove(self, document_pk: int) -> None: ...

    async def count(self, application_pk: int) -> int: ...

    async def referenced(self, storage_keys: Sequence[str]) -> set[str]:
        """Those of ``storage_keys`` that a document record refers to."""
        ...
