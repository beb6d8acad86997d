"""The document sweeper, on SQLite and PostgreSQL with the local store: files that no
record refers to go once they are old enough; everything else stays; one process sweeps."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rushgate.adapters.files.local import LocalDocumentStore
from rushgate.adapters.memory.coordination import MemoryCoordination
from rushgate.adapters.sql.engine import SqlStorage
from rushgate.domain.clock import FixedClock
from rushgate.services.documents import DocumentService
from rushgate.services.ports.documents import NewDocument
from rushgate.workers.document_sweeper import DocumentSweeper
from tests.admissions_seed import add_applicant, add_application, add_round
from tests.support import T0


async def one_chunk(data: bytes) -> AsyncIterator[bytes]:
    yield data


def age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


async def referenced_by_a_record(storage: SqlStorage, key: str) -> None:
    await add_round(storage)
    applicant = await add_applicant(storage, "kim@example.test", password_hash="x")
    application = await add_application(storage, applicant.pk)
    async with storage.unit_of_work() as uow:
        await uow.documents.add(
            application.pk,
            NewDocument("transcript", "a.pdf", "application/pdf", 1, "ab" * 32, key),
            now=T0,
        )
        await uow.commit()


async def test_only_old_unreferenced_files_are_swept(
    storage: SqlStorage, clock: FixedClock, tmp_path: Path
) -> None:
    store = LocalDocumentStore(tmp_path)
    service = DocumentService(storage, store, clock, max_bytes=1024)
    for key in ("r1/a1/recorded", "r1/a1/orphan", "r1/a1/young-orphan"):
        await store.put(key, one_chunk(b"%PDF-"))
    await referenced_by_a_record(storage, "r1/a1/recorded")
    age(tmp_path / "r1/a1/recorded", 7200)
    age(tmp_path / "r1/a1/orphan", 7200)
    age(tmp_path / "r1/a1/young-orphan", 600)
    clock.set(datetime.now(UTC))

    assert await service.sweep() == 1
    assert sorted(p.name for p in (tmp_path / "r1/a1").iterdir()) == [
        "recorded",
        "young-orphan",
    ]
    assert await service.sweep() == 0
    clock.set(datetime.now(UTC) + timedelta(hours=1))
    assert await service.sweep() == 1  # the young one has aged
    assert [p.name for p in (tmp_path / "r1/a1").iterdir()] == ["recorded"]


async def test_one_sweeper_at_a_time_and_only_when_due(
    storage: SqlStorage, clock: FixedClock, tmp_path: Path
) -> None:
    store = LocalDocumentStore(tmp_path)
    service = DocumentService(storage, store, clock, max_bytes=1024)
    coordination = MemoryCoordination(clock)
    first = DocumentSweeper(service, coordination.lock, every_seconds=3600)
    second = DocumentSweeper(service, coordination.lock, every_seconds=3600)
    await store.put("r1/a1/orphan", one_chunk(b"%PDF-"))
    age(tmp_path / "r1/a1/orphan", 7200)
    clock.set(datetime.now(UTC))

    assert await first.check() == 1
    assert await second.check() is None  # the first holds the lock
    assert await first.check() is None  # not due again for an hour
    await store.put("r1/a1/another", one_chunk(b"%PDF-"))
    age(tmp_path / "r1/a1/another", 7200)
    await first.release()
    assert await second.check() == 1  # took over at once, and sweeps
    assert list((tmp_path / "r1/a1").iterdir()) == []
