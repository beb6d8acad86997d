"""The admitter: advances every open waiting room once per tick, on one node at a time.

See ``rushgate.services.waiting_room`` for how the room fits together; this job moves the
serving counters and publishes the snapshots that every node answers from."""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from rushgate.domain.clock import Clock
from rushgate.domain.waiting_room import RoomPhase, plan_admission
from rushgate.services.ports.locks import ClusterLock, Lease
from rushgate.services.ports.registry import Term
from rushgate.services.ports.storage import Storage
from rushgate.services.ports.waiting_room import Advance, RoomBus, RoomMetrics, WaitingRoomStore
from rushgate.services.waiting_room import (
    SEED_BYTES,
    RoomFeed,
    TermDirectory,
    milliseconds,
    phase_at,
    snapshot_of,
)

log = logging.getLogger("rushgate.admitter")


@dataclass
class _Health:
    healthy: bool = True
    checked_at: float = -math.inf


class Admitter:
    """Advances every open room once per tick, on one node of the cluster at a time."""

    LOCK = "admitter"

    def __init__(
        self,
        store: WaitingRoomStore,
        lock: ClusterLock,
        bus: RoomBus,
        feed: RoomFeed,
        terms: TermDirectory,
        clock: Clock,
        metrics: RoomMetrics,
        *,
        tick_seconds: float,
        backend_healthy: Callable[[], Awaitable[bool]],
    ) -> None:
        self._store = store
        self._lock = lock
        self._bus = bus
        self._feed = feed
        self._terms = terms
        self._clock = clock
        self._metrics = metrics
        self._tick = tick_seconds
        self._backend_healthy = backend_healthy
        self._lease = Lease(self.LOCK, uuid.uuid4().hex)
        self._health = _Health()

    @property
    def lease_ttl_ms(self) -> int:
        # Long enough to survive a slow tick, short enough that a dead node's lock frees
        # within a few seconds.
        return max(int(self._tick * 1000 * 6), 2000)

    async def tick_once(self) -> bool:
        """One tick on this node if it holds (or wins) the lock; whether it did."""
        if not await self._lock.acquire(self._lease, self.lease_ttl_ms):
            return False
        healthy = await self._healthy()
        for term in await self._terms.all():
            if term.waiting_room_enabled and not await self.advance(term, healthy=healthy):
                return False
        return True

    async def _healthy(self) -> bool:
        # At most once a second: a slow database is the signal, not a reason to add load.
        if time.monotonic() - self._health.checked_at >= 1.0:
            self._health = _Health(await self._backend_healthy(), time.monotonic())
        return self._health.healthy

    async def advance(self, term: Term, *, healthy: bool) -> bool:
        """Advance one room; False when the lease was lost (another node ticks now)."""
        now = self._clock.now()
        now_ms = milliseconds(now)
        phase = phase_at(term.window, now)
        counters = await self._store.counters(term.code)
        said_closed = (counters.last_tick_ms or 0) >= milliseconds(term.window.closes_at)
        if phase is RoomPhase.CLOSED and said_closed:
            return True  # closed, and said so once
        grant, carry, rate = 0, counters.carry, counters.admission_rate
        if phase is RoomPhase.OPEN:
            elapsed = (
                self._tick
                if counters.last_tick_ms is None
                else (now_ms - counters.last_tick_ms) / 1000
            )
            plan = plan_admission(
                waiting=counters.issued - counters.serving,
                active=counters.active,
                max_active=term.max_active,
                admit_per_second=term.admit_per_second,
                elapsed_seconds=elapsed,
                carry=counters.carry,
                admission_rate=counters.admission_rate,
                healthy=healthy and not term.admission_paused,
            )
            grant, carry, rate = plan.grant, plan.carry, plan.admission_rate
        step = Advance(
            now_ms=now_ms,
            grant=grant,
            carry=carry,
            admission_rate=rate,
            expire_before_ms=now_ms - term.admission_ttl_seconds * 1000,
            previous_tick_ms=counters.last_tick_ms,
            freeze_seed=secrets.token_bytes(SEED_BYTES) if phase is RoomPhase.OPEN else None,
        )
        after = await self._store.advance(term.code, self._lease, step)
        if after is None:
            return False
        paused = phase is RoomPhase.OPEN and (term.admission_paused or not healthy)
        snapshot = snapshot_of(term, after, now, paused=paused)
        self._feed.put(snapshot)  # this node knows at once; the others by the bus
        await self._bus.publish(snapshot)
        tail = math.ceil(snapshot.waiting / snapshot.effective_rate())
        self._metrics.observe_room(
            snapshot, granted=after.serving - counters.serving, eta_tail_seconds=tail
        )
        return True

    async def run(self) -> None:
        """Tick forever (a background task on every node; only the lock holder ticks)."""
        failing: str | None = None
        while True:
            started = time.monotonic()
            try:
                await self.tick_once()
                if failing is not None:
                    log.warning("admission ticks work again")
                failing = None
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a failed tick must not stop the next one
                if failing != type(exc).__name__:  # once per outage, not four times a second
                    log.exception("admission tick failed")
                failing = type(exc).__name__
            await asyncio.sleep(max(self._tick - (time.monotonic() - started), 0.0))

    async def release(self) -> None:
        """Hand the lock over at shutdown instead of letting it expire."""
        await self._lock.release(self._lease)


def database_health(storage: Storage, max_latency_seconds: float) -> Callable[[], Awaitable[bool]]:
    """Healthy while a ping of the primary answers within ``max_latency_seconds``."""

    async def healthy() -> bool:
        started = time.monotonic()
        try:
            async with asyncio.timeout(max_latency_seconds * 2):
                await storage.ping()
        except Exception:  # unreachable or too slow: either way, admit nobody now
            return False
        return time.monotonic() - started <= max_latency_seconds

    return healthy
