"""The document sweeper: deletes stored files that no document record refers to."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

from rushgate.services.documents import DocumentService
from rushgate.services.ports.locks import ClusterLock, Lease

log = logging.getLogger("rushgate.documents")


class DocumentSweeper:
    """Every process runs one; only the holder of a cluster-wide lock sweeps, every
    ``every_seconds``, so a shared document directory is walked once, not once per
    process. Two sweepers at once (a lease that ran out mid-sweep) are harmless: both
    delete only unreferenced old files, and deleting one twice is fine."""

    LOCK = "document-sweep"
    # Long enough to cover a sweep of a large directory; a live holder renews it.
    LEASE_TTL_MS = 15 * 60 * 1000

    def __init__(
        self, documents: DocumentService, lock: ClusterLock, *, every_seconds: float
    ) -> None:
        self._documents = documents
        self._lock = lock
        self._lease = Lease(self.LOCK, uuid.uuid4().hex)
        self._every = every_seconds
        self._swept_at = -float("inf")

    async def check(self) -> int | None:
        """Sweep when this process holds the lock and a sweep is due; how many files were
        deleted, or None when it did not sweep."""
        if not await self._lock.acquire(self._lease, self.LEASE_TTL_MS):
            return None
        if time.monotonic() - self._swept_at < self._every:
            return None
        self._swept_at = time.monotonic()
        return await self._documents.sweep()

    async def run(self, interval_seconds: float = 60.0) -> None:
        while True:
            try:
                await self.check()
            except asyncio.CancelledError:
                raise
            except Exception:  # storage or the lock may be down; try again next time
                log.warning("document sweep failed", exc_info=True)
            await asyncio.sleep(interval_seconds)

    async def release(self) -> None:
        await self._lock.release(self._lease)
