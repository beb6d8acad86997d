"""``DocumentStore`` on a local directory.

A write goes to a temporary file next to its destination, is flushed to disk, and is then
renamed into place: ``rename`` is atomic on one file system, so a reader finds the whole
file or none, and a crash mid-upload leaves only a ``.part-*`` file (never a truncated
document). Blocking file calls run in worker threads, so a large upload does not stall
the event loop. Several nodes need a shared directory for this store (or an S3-compatible
one): a document uploaded through one node must be downloadable through another.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import AsyncIterable, AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from rushgate.domain.errors import NotFound
from rushgate.services.ports.documents import STORAGE_KEY, check_storage_key

#: Bytes per chunk when reading a stored file back.
READ_CHUNK = 64 * 1024
_PART_PREFIX = ".part-"


def _fsync_directory(path: Path) -> None:
    """Make a rename in ``path`` durable (the file's own fsync does not cover it)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _create_part(directory: Path) -> tuple[BinaryIO, Path]:
    """A new temporary file in ``directory`` (mode 0600: documents are personal data)."""
    directory.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=directory, prefix=_PART_PREFIX)
    return os.fdopen(fd, "wb"), Path(name)


def _finish(part: BinaryIO, part_path: Path, final: Path) -> None:
    part.flush()
    os.fsync(part.fileno())
    part.close()
    os.replace(part_path, final)
    _fsync_directory(final.parent)


def _discard(part: BinaryIO, part_path: Path) -> None:
    part.close()
    part_path.unlink(missing_ok=True)


class LocalDocumentStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        # The key's shape (no "..", no absolute path) keeps every path inside the root.
        return self.root / check_storage_key(key)

    async def put(self, key: str, chunks: AsyncIterable[bytes]) -> None:
        final = self._path(key)
        part, part_path = await asyncio.to_thread(_create_part, final.parent)
        try:
            async for chunk in chunks:
                await asyncio.to_thread(part.write, chunk)
            await asyncio.to_thread(_finish, part, part_path, final)
        except BaseException:
            # Also on cancellation (the client went away): shielded, so that the partial
            # file is removed even while this task is being cancelled.
            await asyncio.shield(asyncio.to_thread(_discard, part, part_path))
            raise

    async def open(self, key: str) -> AsyncIterator[bytes]:
        path = self._path(key)
        try:
            file = await asyncio.to_thread(path.open, "rb")
        except FileNotFoundError:
            raise NotFound("no stored document under this key") from None
        return _chunks(file)

    async def delete(self, key: str) -> None:
        path = self._path(key)
        with contextlib.suppress(FileNotFoundError):
            await asyncio.to_thread(path.unlink)

    async def stored_before(self, before: datetime) -> list[str]:
        return await asyncio.to_thread(self._stored_before, before.timestamp())

    def _stored_before(self, before: float) -> list[str]:
        keys: list[str] = []
        for directory, _, names in os.walk(self.root):
            for name in names:
                path = Path(directory) / name
                with contextlib.suppress(FileNotFoundError):  # deleted meanwhile
                    if path.stat().st_mtime >= before:
                        continue
                    if name.startswith(_PART_PREFIX):  # a put that never finished
                        path.unlink()
                        continue
                    key = path.relative_to(self.root).as_posix()
                    if STORAGE_KEY.fullmatch(key):
                        keys.append(key)
        return keys


async def _chunks(file: BinaryIO) -> AsyncIterator[bytes]:
    try:
        while chunk := await asyncio.to_thread(file.read, READ_CHUNK):
            yield chunk
    finally:
        file.close()
