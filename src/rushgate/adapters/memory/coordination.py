"""In-process coordination for the embedded default: one process, no Redis.

The same ports and the same contract tests as the Redis adapters. Everything here runs
on one event loop without awaiting in the middle of a change, so each method is atomic
the way a Lua script is in Redis. It is per process: ``rushgate serve`` refuses several
workers without ``RUSHGATE_REDIS_URL``.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from rushgate.adapters.memory.rate_limits import MemoryRateLimiter
from rushgate.adapters.memory.used_answers import MemoryUsedAnswers
from rushgate.domain.clock import Clock, SystemClock
from rushgate.domain.waiting_room import RoomSnapshot
from rushgate.services.ports.enrollment import SectionView
from rushgate.services.ports.locks import Lease
from rushgate.services.ports.seat_hints import (
    MARKER_TTL_MS,
    HintVerdict,
    Precheck,
    RebuildStamp,
    SeatOutcome,
)
from rushgate.services.ports.waiting_room import Admission, Advance, QueueCounters


def _ms(clock: Clock) -> int:
    return int(clock.now().timestamp() * 1000)


@dataclass
class _Batch:
    first: int  # admission positions first..last were admitted together
    last: int
    granted_at_ms: int
    remaining: int  # of them still counted as active


@dataclass
class _Room:
    tickets: dict[int, int] = field(default_factory=dict)
    issued: int = 0
    serving: int = 0
    prequeue_size: int | None = None
    seed: bytes | None = None
    active: int = 0
    carry: float = 0.0
    admission_rate: float = 0.0
    last_tick_ms: int | None = None
    batches: list[_Batch] = field(default_factory=list)
    revoked: dict[int, int] = field(default_factory=dict)  # ticket -> until (ms)

    def counters(self) -> QueueCounters:
        return QueueCounters(
            issued=self.issued,
            serving=self.serving,
            prequeue_size=self.prequeue_size,
            seed=self.seed,
            active=self.active,
            carry=self.carry,
            admission_rate=self.admission_rate,
            last_tick_ms=self.last_tick_ms,
        )

    def freeze(self, seed: bytes) -> None:
        if self.prequeue_size is None:
            self.prequeue_size = self.issued
            if self.seed is None:
                self.seed = seed

    def batch_of(self, position: int) -> _Batch | None:
        for batch in self.batches:
            if batch.first <= position <= batch.last:
                return batch
        return None


@dataclass
class _Hint:
    seats: int | None = None
    waitlist: int | None = None
    has_waitlist: bool | None = None
    generation: int = 0

    @property
    def full(self) -> bool:
        """Known to have neither a seat nor a waitlist place left."""
        return (
            self.seats is not None
            and self.waitlist is not None
            and self.seats <= 0
            and self.waitlist <= 0
        )


class MemoryCoordination:
    """The shared state of every in-process port."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.rooms: dict[str, _Room] = {}
        self.locks: dict[str, tuple[str, int]] = {}  # name -> (token, until ms)
        self.hint_table: dict[tuple[str, str], _Hint] = {}
        self.hint_terms: dict[str, int] = {}  # term -> rebuild generation
        self.markers: dict[tuple[int, str], int] = {}  # (student, key) -> until ms
        self.subscribers: set[asyncio.Queue[RoomSnapshot]] = set()
        self.epoch = uuid.uuid4().hex

        self.store = MemoryWaitingRoomStore(self)
        self.lock = MemoryClusterLock(self)
        self.bus = MemoryRoomBus(self)
        self.hints = MemorySeatHints(self)
        # Budgets measure real request rates: wall time, like Redis's TIME, even when the
        # rules run on a frozen or simulated clock (tests, demos).
        self.limits = MemoryRateLimiter(SystemClock())
        self.used_answers = MemoryUsedAnswers()

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def room(self, term: str) -> _Room:
        return self.rooms.setdefault(term, _Room())

    def hint(self, term: str, section_id: str) -> _Hint:
        return self.hint_table.setdefault((term, section_id), _Hint())


class MemoryWaitingRoomStore:
    def __init__(self, state: MemoryCoordination) -> None:
        self._state = state

    async def join(self, term: str, student_pk: int, *, freeze_seed: bytes | None) -> int:
        room = self._state.room(term)
        if freeze_seed is not None:
            room.freeze(freeze_seed)
        if student_pk not in room.tickets:
            room.issued += 1
            room.tickets[student_pk] = room.issued
        return room.tickets[student_pk]

    async def ticket(self, term: str, student_pk: int) -> int | None:
        return self._state.room(term).tickets.get(student_pk)

    async def counters(self, term: str) -> QueueCounters:
        return self._state.room(term).counters()

    async def advance(self, term: str, lease: Lease, step: Advance) -> QueueCounters | None:
        held = self._state.locks.get(lease.name)
        if held is None or held[0] != lease.token or held[1] <= _ms(self._state.clock):
            return None
        room = self._state.room(term)
        if room.last_tick_ms != step.previous_tick_ms:
            return room.counters()  # planned on counters that are no longer the latest
        if step.freeze_seed is not None:
            room.freeze(step.freeze_seed)
        while room.batches and room.batches[0].granted_at_ms < step.expire_before_ms:
            room.active -= room.batches.pop(0).remaining
        grant = max(min(step.grant, room.issued - room.serving), 0)
        if grant:
            room.batches.append(_Batch(room.serving + 1, room.serving + grant, step.now_ms, grant))
            room.serving += grant
            room.active += grant
        room.carry = step.carry
        room.admission_rate = step.admission_rate
        room.last_tick_ms = step.now_ms
        return room.counters()

    async def admission(self, term: str, position: int) -> Admission | None:
        batch = self._state.room(term).batch_of(position)
        return None if batch is None else Admission(batch.granted_at_ms)

    async def leave(
        self, term: str, student_pk: int, *, ticket: int, position: int | None, revoke_ms: int
    ) -> None:
        room = self._state.room(term)
        room.revoked[ticket] = _ms(self._state.clock) + revoke_ms
        if room.tickets.get(student_pk) != ticket:
            return  # left already (or rejoined): the slot was freed once
        del room.tickets[student_pk]
        batch = None if position is None else room.batch_of(position)
        if batch is not None and batch.remaining > 0:
            batch.remaining -= 1
            room.active -= 1

    async def replace_ticket(self, term: str, student_pk: int, *, old: int) -> int:
        room = self._state.room(term)
        if room.tickets.get(student_pk, old) == old:
            room.issued += 1
            room.tickets[student_pk] = room.issued
        return room.tickets[student_pk]


class MemoryClusterLock:
    def __init__(self, state: MemoryCoordination) -> None:
        self._state = state

    async def acquire(self, lease: Lease, ttl_ms: int) -> bool:
        now = _ms(self._state.clock)
        held = self._state.locks.get(lease.name)
        if held is not None and held[0] != lease.token and held[1] > now:
            return False
        self._state.locks[lease.name] = (lease.token, now + ttl_ms)
        return True

    async def release(self, lease: Lease) -> None:
        held = self._state.locks.get(lease.name)
        if held is not None and held[0] == lease.token:
            del self._state.locks[lease.name]


class MemoryRoomBus:
    def __init__(self, state: MemoryCoordination) -> None:
        self._state = state

    async def publish(self, snapshot: RoomSnapshot) -> None:
        for queue in list(self._state.subscribers):
            queue.put_nowait(snapshot)

    async def listen(self) -> AsyncIterator[RoomSnapshot]:
        queue: asyncio.Queue[RoomSnapshot] = asyncio.Queue()
        self._state.subscribers.add(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            self._state.subscribers.discard(queue)


def _generation(state: MemoryCoordination, term: str, hint: _Hint) -> str:
    return f"{state.hint_terms.get(term, 0)}:{hint.generation}"


class MemorySeatHints:
    def __init__(self, state: MemoryCoordination) -> None:
        self._state = state

    async def precheck(
        self,
        term: str,
        section_id: str,
        *,
        student_pk: int,
        idempotency_key: str | None,
        admission_ticket: int | None,
    ) -> Precheck:
        state = self._state
        now = _ms(state.clock)
        hint = state.hint(term, section_id)
        revoked = False
        if admission_ticket is not None:
            until = state.room(term).revoked.get(admission_ticket)
            revoked = until is not None and until > now
        verdict = HintVerdict.PROCEED
        marker = None if idempotency_key is None else (student_pk, idempotency_key)
        tried = marker is not None and state.markers.get(marker, 0) > now
        if not tried and hint.full:
            verdict = HintVerdict.WAITLIST_FULL if hint.has_waitlist else HintVerdict.SECTION_FULL
        if verdict is HintVerdict.PROCEED and marker is not None and not revoked:
            state.markers[marker] = now + MARKER_TTL_MS
        return Precheck(verdict, _generation(state, term, hint), revoked)

    async def record(
        self, term: str, section_id: str, outcome: SeatOutcome, generation: str
    ) -> None:
        hint = self._state.hint(term, section_id)
        if _generation(self._state, term, hint) != generation:
            return
        hint.seats, hint.waitlist = 0, 0
        hint.has_waitlist = outcome is SeatOutcome.WAITLIST_FULL

    async def releasing(self, term: str, section_id: str) -> None:
        hint = self._state.hint(term, section_id)
        hint.seats = hint.waitlist = None
        hint.generation += 1

    async def released(self, term: str, section_id: str) -> None:
        self._state.hint(term, section_id).generation += 1

    async def begin_rebuild(self, term: str) -> RebuildStamp:
        state = self._state
        state.hint_terms[term] = state.hint_terms.get(term, 0) + 1
        return RebuildStamp(
            state.hint_terms[term],
            {s: h.generation for (t, s), h in state.hint_table.items() if t == term},
        )

    async def rebuild(
        self, term: str, sections: Sequence[SectionView], stamp: RebuildStamp
    ) -> None:
        if self._state.hint_terms.get(term, 0) != stamp.term_generation:
            return  # a later rebuild is under way; it reads fresher counts
        for section in sections:
            hint = self._state.hint(term, section.section_id)
            if hint.generation != stamp.sections.get(section.section_id, 0):
                continue  # dropped into since the read: leave it unknown
            hint.seats = section.capacity - section.enrolled
            hint.waitlist = section.waitlist_capacity - section.waitlisted
            hint.has_waitlist = section.waitlist_capacity > 0

    async def epoch(self) -> str:
        return self._state.epoch
