"""The seat-hint keeper: rebuilds the seat hints from the database."""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid

from rushgate.domain.clock import Clock
from rushgate.services.ports.locks import ClusterLock, Lease
from rushgate.services.ports.seat_hints import SeatHints, SectionMetrics
from rushgate.services.ports.storage import Storage
from rushgate.services.waiting_room import TermDirectory

log = logging.getLogger("rushgate.seat_hints")


class SeatHintKeeper:
    """Keeps the seat hints rebuilt from the database: when it starts keeping them,
    whenever the coordination store comes back empty (a new epoch), and every so often to
    heal a hint left stale by a node that died between its commit and its hint update.

    Every process runs one, but only the holder of a cluster-wide lock does the work, so
    the database is read once per reconcile, not once per process. Two keepers that both
    believe they hold it (a lease that ran out mid-rebuild) are harmless: rebuilds are
    fenced by generations (see ``SeatHints``)."""

    LOCK = "seat-hints"
    # A dead holder's lock frees within this; a live one extends it every check.
    LEASE_TTL_MS = 10_000

    def __init__(
        self,
        hints: SeatHints,
        lock: ClusterLock,
        storage: Storage,
        terms: TermDirectory,
        clock: Clock,
        *,
        reconcile_seconds: float,
        metrics: SectionMetrics | None = None,
    ) -> None:
        self._hints = hints
        self._lock = lock
        self._lease = Lease(self.LOCK, uuid.uuid4().hex)
        self._storage = storage
        self._terms = terms
        self._clock = clock
        self._reconcile = reconcile_seconds
        self._metrics = metrics
        self._epoch: str | None = None
        self._rebuilt_at = -math.inf
        self._holding = False

    async def rebuild(self, term_code: str) -> None:
        stamp = await self._hints.begin_rebuild(term_code)
        sections = await self._storage.reads(fresh=True).catalog(term_code)
        await self._hints.rebuild(term_code, sections, stamp)
        if self._metrics is not None:
            self._metrics.observe_sections(term_code, sections)

    async def rebuild_open_terms(self) -> None:
        now = self._clock.now()
        for term in await self._terms.all():
            if now < term.window.closes_at:
                await self.rebuild(term.code)
        self._rebuilt_at = time.monotonic()

    async def check(self) -> None:
        """As the lock holder: rebuild when the epoch changed, when this keeper just took
        the lock over, or when the reconcile is due. Otherwise do nothing."""
        if not await self._lock.acquire(self._lease, self.LEASE_TTL_MS):
            self._holding = False
            return
        if not self._holding:  # taken over: when the hints were last rebuilt is unknown
            self._holding, self._epoch = True, None
        epoch = await self._hints.epoch()
        if epoch != self._epoch:
            if self._epoch is not None:
                log.warning("the coordination store lost its data; rebuilding seat hints")
            await self.rebuild_open_terms()
            self._epoch = epoch
        elif time.monotonic() - self._rebuilt_at >= self._reconcile:
            await self.rebuild_open_terms()

    async def run(self, interval_seconds: float = 1.0) -> None:
        while True:
            try:
                await self.check()
            except asyncio.CancelledError:
                raise
            except Exception:  # the coordination store may be down; retry next time
                log.warning("seat hint check failed", exc_info=True)
            await asyncio.sleep(interval_seconds)

    async def release(self) -> None:
        """Hand the lock over at shutdown instead of letting it expire."""
        await self._lock.release(self._lease)
