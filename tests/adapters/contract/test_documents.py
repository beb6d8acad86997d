"""Document records on SQLite and PostgreSQL, and the document store (every
implementation: the local directory today)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from rushgate.adapters.files.local import LocalDocumentStore
from rushgate.adapters.sql.engine import SqlStorage
from rushgate.domain.errors import Conflict, NotFound
from rushgate.services.ports.documents import DocumentStore, NewDocument
from tests.admissions_seed import add_applicant, add_application, add_round
from tests.support import T0

# --- records -------------------------------------------------------------------------------


def doc(key: str, kind: str = "transcript") -> NewDocument:
    return NewDocument(
        kind=kind,
        filename="성적증명서.pdf",
        content_type="application/pdf",
        size=1234,
        sha256="ab" * 32,
        storage_key=key,
    )


async def two_applications(storage: SqlStorage) -> tuple[int, int]:
    await add_round(storage)
    kim = await add_applicant(storage, "kim@example.test", password_hash="x")
    lee = await add_applicant(storage, "lee@example.test", password_hash="x")
    return (await add_application(storage, kim.pk)).pk, (await add_application(storage, lee.pk)).pk


async def test_records_roundtrip_in_upload_order(storage: SqlStorage) -> None:
    mine, _ = await two_applications(storage)
    async with storage.unit_of_work() as uow:
        first = await uow.documents.add(mine, doc("k/1"), now=T0)
        second = await uow.documents.add(mine, doc("k/2", "other"), now=T0)
        await uow.commit()
    assert first.uploaded_at == T0
    async with storage.unit_of_work() as uow:
        listed = await uow.documents.of_application(mine)
        assert await uow.documents.count(mine) == 2
        assert await uow.documents.get(mine, second.pk) == second
    assert listed == [first, second]
    assert (first.filename, first.size, first.sha256) == ("성적증명서.pdf", 1234, "ab" * 32)


async def test_get_only_within_the_application(storage: SqlStorage) -> None:
    mine, theirs = await two_applications(storage)
    async with storage.unit_of_work() as uow:
        record = await uow.documents.add(theirs, doc("k/1"), now=T0)
        await uow.commit()
    async with storage.unit_of_work() as uow:
        with pytest.raises(NotFound):
            await uow.documents.get(mine, record.pk)
        assert await uow.documents.of_application(mine) == []


async def test_storage_keys_are_unique(storage: SqlStorage) -> None:
    mine, theirs = await two_applications(storage)
    async with storage.unit_of_work() as uow:
        await uow.documents.add(mine, doc("k/1"), now=T0)
        with pytest.raises(Conflict):
            await uow.documents.add(theirs, doc("k/1"), now=T0)
        await uow.commit()
    async with storage.unit_of_work() as uow:
        assert await uow.documents.count(theirs) == 0


async def test_remove(storage: SqlStorage) -> None:
    mine, _ = await two_applications(storage)
    async with storage.unit_of_work() as uow:
        record = await uow.documents.add(mine, doc("k/1"), now=T0)
        await uow.documents.remove(record.pk)
        await uow.commit()
    async with storage.unit_of_work() as uow:
        assert await uow.documents.count(mine) == 0


# --- the store -----------------------------------------------------------------------------

STORES: dict[str, Callable[[Path], DocumentStore]] = {"local": LocalDocumentStore}


@pytest.fixture(params=sorted(STORES))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> DocumentStore:
    return STORES[str(request.param)](tmp_path / "documents")


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def read(store: DocumentStore, key: str) -> bytes:
    return b"".join([chunk async for chunk in await store.open(key)])


def files_under(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file())


async def test_put_open_delete(store: DocumentStore) -> None:
    big = bytes(range(256)) * 1000  # more than one read chunk
    await store.put("r1/a2/abc", chunks(b"%PDF-", big))
    assert await read(store, "r1/a2/abc") == b"%PDF-" + big
    await store.put("r1/a2/abc", chunks(b"replaced"))
    assert await read(store, "r1/a2/abc") == b"replaced"
    await store.delete("r1/a2/abc")
    with pytest.raises(NotFound):
        await store.open("r1/a2/abc")
    await store.delete("r1/a2/abc")  # idempotent


async def test_failed_put_leaves_nothing(store: DocumentStore, tmp_path: Path) -> None:
    async def failing() -> AsyncIterator[bytes]:
        yield b"%PDF-1.7 first part"
        raise RuntimeError("the client went away")

    with pytest.raises(RuntimeError, match="went away"):
        await store.put("r1/a2/k", failing())
    with pytest.raises(NotFound):
        await store.open("r1/a2/k")
    assert files_under(tmp_path) == []


async def test_cancelled_put_leaves_nothing(store: DocumentStore, tmp_path: Path) -> None:
    stalled = asyncio.Event()

    async def stalling() -> AsyncIterator[bytes]:
        yield b"%PDF-1.7 first part"
        stalled.set()
        await asyncio.Event().wait()  # never comes
        yield b"never"

    task = asyncio.create_task(store.put("r1/a2/k", stalling()))
    await stalled.wait()
    # Mid-upload, readers see nothing under the key: the write is not in place yet.
    with pytest.raises(NotFound):
        await store.open("r1/a2/k")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert files_under(tmp_path) == []


@pytest.mark.parametrize(
    "key", ["../escape", "/etc/passwd", "a/../../b", "a//b", ".hidden", "a/b.pdf", "", "a\\b"]
)
async def test_keys_that_could_escape_are_refused(store: DocumentStore, key: str) -> None:
    with pytest.raises(ValueError, match="storage key"):
        await store.put(key, chunks(b"x"))
    with pytest.raises(ValueError, match="storage key"):
        await store.open(key)
    with pytest.raises(ValueError, match="storage key"):
        await store.delete(key)


async def test_referenced_names_the_keys_records_refer_to(storage: SqlStorage) -> None:
    mine, theirs = await two_applications(storage)
    async with storage.unit_of_work() as uow:
        await uow.documents.add(mine, doc("k/1"), now=T0)
        await uow.documents.add(theirs, doc("k/2"), now=T0)
        await uow.commit()
    async with storage.unit_of_work() as uow:
        assert await uow.documents.referenced(["k/1", "k/2", "k/3"]) == {"k/1", "k/2"}
        assert await uow.documents.referenced([]) == set()


async def test_stored_before_lists_what_was_stored_earlier(store: DocumentStore) -> None:
    await store.put("r1/a1/one", chunks(b"1"))
    await store.put("r1/a2/two", chunks(b"2"))
    now = datetime.now(UTC)
    assert sorted(await store.stored_before(now + timedelta(seconds=5))) == [
        "r1/a1/one",
        "r1/a2/two",
    ]
    assert await store.stored_before(now - timedelta(hours=1)) == []


async def test_the_local_store_drops_half_written_files_it_lists_past(tmp_path: Path) -> None:
    store = LocalDocumentStore(tmp_path)
    await store.put("r1/a1/kept", chunks(b"1"))
    crashed = tmp_path / "r1" / "a1" / ".part-abc123"
    crashed.write_bytes(b"half")
    hour_ago = time.time() - 3600
    os.utime(crashed, (hour_ago, hour_ago))
    assert await store.stored_before(datetime.now(UTC) - timedelta(minutes=30)) == []
    assert not crashed.exists()
    assert files_under(tmp_path) == ["r1/a1/kept"]
