"""The composition root: the one place that chooses and builds every adapter.

A serving node (``rushgate.http.app``) and a ``rushgate worker`` process build the same
:class:`Container` from settings; nothing else constructs an adapter."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from datetime import timedelta

from rushgate.adapters.memory.coordination import MemoryCoordination
from rushgate.adapters.security import AdmissionTokens, Argon2Hasher, JwtSigner
from rushgate.adapters.sql.engine import SqlStorage
from rushgate.config import Settings
from rushgate.domain.clock import Clock, SystemClock
from rushgate.observability.metrics import RoomGauges
from rushgate.services.auth import AuthService
from rushgate.services.enrollment import EnrollmentService, FrontDoor
from rushgate.services.ports.coordination import Coordination
from rushgate.services.registry import RegistryService
from rushgate.services.waiting_room import RoomFeed, TermDirectory, WaitingRoomService
from rushgate.workers.admitter import Admitter, database_health
from rushgate.workers.seat_hints import SeatHintKeeper

# Seat hints are rebuilt from the database this often, to heal what a crashed node left.
HINT_RECONCILE_SECONDS = 30.0


def build_coordination(settings: Settings, clock: Clock) -> Coordination:
    if settings.redis_url is None:
        return MemoryCoordination(clock)
    from rushgate.adapters.redis.coordination import RedisCoordination

    return RedisCoordination.from_url(settings.redis_url, prefix=settings.redis_key_prefix)


@dataclass
class Container:
    settings: Settings
    clock: Clock
    storage: SqlStorage
    coordination: Coordination
    auth: AuthService
    enrollment: EnrollmentService
    registry: RegistryService
    waiting_room: WaitingRoomService
    admitter: Admitter
    hint_keeper: SeatHintKeeper
    feed: RoomFeed
    terms: TermDirectory
    room_gauges: RoomGauges
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    def build(cls, settings: Settings, clock: Clock | None = None) -> Container:
        clock = clock or SystemClock()
        storage = SqlStorage.from_urls(
            settings.effective_database_url,
            settings.database_replica_url,
            clock,
            pool_size=settings.database_pool_size,
        )
        secret = settings.effective_secret_key()
        hasher = Argon2Hasher(settings.password_hash_cost)
        signer = JwtSigner(secret, clock, timedelta(seconds=settings.token_ttl_seconds))
        coordination = build_coordination(settings, clock)
        terms = TermDirectory(storage.reads)
        feed = RoomFeed()
        gauges = RoomGauges()
        tick_seconds = settings.queue_tick_ms / 1000
        waiting_room = WaitingRoomService(
            coordination.store,
            AdmissionTokens(secret, clock),
            terms,
            feed,
            clock,
            tick_seconds=tick_seconds,
        )
        admitter = Admitter(
            coordination.store,
            coordination.lock,
            coordination.bus,
            feed,
            terms,
            clock,
            gauges,
            tick_seconds=tick_seconds,
            backend_healthy=database_health(storage, settings.queue_max_db_latency_ms / 1000),
        )
        return cls(
            settings=settings,
            clock=clock,
            storage=storage,
            coordination=coordination,
            auth=AuthService(storage, hasher, signer),
            enrollment=EnrollmentService(
                storage, clock, FrontDoor(terms, coordination.hints, waiting_room)
            ),
            registry=RegistryService(storage, hasher, hasher.hash_many),
            waiting_room=waiting_room,
            admitter=admitter,
            hint_keeper=SeatHintKeeper(
                coordination.hints,
                coordination.lock,
                storage,
                terms,
                clock,
                reconcile_seconds=HINT_RECONCILE_SECONDS,
            ),
            feed=feed,
            terms=terms,
            room_gauges=gauges,
        )

    def start(self) -> None:
        """Background work of a serving node: follow room snapshots, take part in the
        admitter election, keep seat hints rebuilt."""
        self._tasks = [
            asyncio.create_task(self.feed.follow(self.coordination.bus), name="room-feed"),
            asyncio.create_task(self.admitter.run(), name="admitter"),
            asyncio.create_task(self.hint_keeper.run(), name="seat-hints"),
        ]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._tasks:
            for holder in (self.admitter, self.hint_keeper):
                with contextlib.suppress(Exception):
                    await holder.release()
        self._tasks = []
        await self.coordination.close()
        await self.storage.close()
