"""Redis coordination: the ports every node shares (waiting room, cluster lock, room bus,
seat hints), with the semantics of the in-process reference implementation.

Every change of more than one key or field is one Lua script (``lua/``), so it is atomic
the way a method of the in-process version is. One term's keys share a hash tag
(``{prefix}{term}:...``). A Redis failure in a waiting-room call is ``Unavailable`` (the
client retries; ``503 coordination_unavailable``); the seat hints swallow failures, as
they are only an accelerator and must never fail an enrollment.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from functools import wraps
from importlib import resources
from typing import Any, ParamSpec, TypeVar, cast

from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from rushgate.adapters.redis.codec import (
    COUNTER_FIELDS,
    counters_from_values,
    encode_float,
    snapshot_from_json,
    snapshot_to_json,
)
from rushgate.adapters.redis.rate_limits import RedisRateLimiter
from rushgate.adapters.redis.used_answers import RedisUsedAnswers
from rushgate.domain.errors import Unavailable
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

log = logging.getLogger("rushgate.redis")

# Sections per rebuild script call: long enough to be few calls, short enough not to
# block Redis for long.
REBUILD_CHUNK = 500
# Connections per process; a request beyond them is refused as unavailable (503).
MAX_CONNECTIONS = 1024
# How long a listener blocks per read: its health-check PING is sent between reads.
LISTEN_READ_SECONDS = 5.0
RECONNECT_FIRST_SECONDS = 0.2
RECONNECT_MAX_SECONDS = 5.0

_VERDICTS = (HintVerdict.PROCEED, HintVerdict.SECTION_FULL, HintVerdict.WAITLIST_FULL)
_PROCEED_BLIND = Precheck(HintVerdict.PROCEED, "", False)


def _lua(name: str) -> str:
    return resources.files(__package__).joinpath("lua", f"{name}.lua").read_text("utf-8")


class _Keys:
    """Every key name. A term's keys carry the term as hash tag, so they share a slot."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.channel = f"{prefix}rooms"
        self.epoch = f"{prefix}epoch"

    def _term(self, term: str, name: str) -> str:
        return f"{self.prefix}{{{term}}}:{name}"

    def room(self, term: str) -> str:
        return self._term(term, "room")

    def tickets(self, term: str) -> str:
        return self._term(term, "tickets")

    def batches(self, term: str) -> str:
        return self._term(term, "batches")

    def batch(self, term: str) -> str:
        return self._term(term, "batch")

    def revoked(self, term: str, ticket: int) -> str:
        return self._term(term, f"revoked:{ticket}")

    def hints(self, term: str) -> str:
        return self._term(term, "hints")

    def lock(self, name: str) -> str:
        return f"{self.prefix}lock:{name}"

    def marker(self, student_pk: int, idempotency_key: str) -> str:
        return f"{self.prefix}idem:{student_pk}:{idempotency_key}"


class _Scripts:
    """The Lua scripts, run by EVALSHA (loaded again if Redis forgot them)."""

    def __init__(self, client: Redis) -> None:
        def script(name: str) -> AsyncScript:
            return client.register_script(_lua(name))

        self.join = script("join")
        self.advance = script("advance")
        self.admission = script("admission")
        self.leave = script("leave")
        self.replace_ticket = script("replace_ticket")
        self.lock_acquire = script("lock_acquire")
        self.lock_release = script("lock_release")
        self.precheck = script("precheck")
        self.record = script("record")
        self.releasing = script("releasing")
        self.begin_rebuild = script("begin_rebuild")
        self.rebuild = script("rebuild")


class RedisCoordination:
    """Every coordination port, over one Redis client."""

    def __init__(self, client: Redis, *, prefix: str = "rg:") -> None:
        self._client = client
        self._keys = _Keys(prefix)
        scripts = _Scripts(client)
        self.store = RedisWaitingRoomStore(client, self._keys, scripts)
        self.lock = RedisClusterLock(self._keys, scripts)
        self.bus = RedisRoomBus(client, self._keys)
        self.hints = RedisSeatHints(client, self._keys, scripts)
        self.limits = RedisRateLimiter(client, prefix=prefix)
        self.used_answers = RedisUsedAnswers(client, prefix=prefix)

    @classmethod
    def from_url(cls, url: str, *, prefix: str = "rg:") -> RedisCoordination:
        # A plain pool, large enough for every request a process has in flight: the
        # blocking pool's wait costs ~25 µs of CPU per command, on every command.
        pool = ConnectionPool.from_url(
            url,
            max_connections=MAX_CONNECTIONS,
            socket_timeout=5,
            socket_connect_timeout=5,
            socket_keepalive=True,
            health_check_interval=15,
            # After a Redis restart every pooled connection is dead and fails once; resend
            # once on a fresh one. Only on ConnectionError (nothing reached Redis), never
            # on a timeout, after which the command may have run.
            retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
        )
        return cls(Redis.from_pool(pool), prefix=prefix)

    async def ping(self) -> None:
        await self._client.ping()

    async def close(self) -> None:
        await self._client.aclose()

    async def delete_all_keys(self) -> None:
        """Delete every key under the prefix (tests, and tearing a deployment down)."""
        pattern = re.sub(r"([\\*?\[\]])", r"\\\1", self._keys.prefix) + "*"
        doomed: list[bytes] = []
        async for key in self._client.scan_iter(match=pattern, count=1000):
            doomed.append(key)
            if len(doomed) >= 500:
                await self._client.unlink(*doomed)
                doomed.clear()
        if doomed:
            await self._client.unlink(*doomed)


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _unavailable(
    call: Callable[_P, Coroutine[Any, Any, _R]],
) -> Callable[_P, Coroutine[Any, Any, _R]]:
    @wraps(call)
    async def guarded(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return await call(*args, **kwargs)
        except (RedisError, OSError) as exc:
            raise Unavailable("the waiting room cannot be reached right now; retry") from exc

    return guarded


class RedisWaitingRoomStore:
    def __init__(self, client: Redis, keys: _Keys, scripts: _Scripts) -> None:
        self._client = client
        self._keys = keys
        self._scripts = scripts

    @_unavailable
    async def join(self, term: str, student_pk: int, *, freeze_seed: bytes | None) -> int:
        args: list[str | bytes] = [str(student_pk)]
        if freeze_seed is not None:
            args.append(freeze_seed)
        keys = self._keys
        return int(await self._scripts.join(keys=[keys.room(term), keys.tickets(term)], args=args))

    @_unavailable
    async def ticket(self, term: str, student_pk: int) -> int | None:
        raw = await self._client.hget(self._keys.tickets(term), str(student_pk))
        return None if raw is None else int(raw)

    @_unavailable
    async def counters(self, term: str) -> QueueCounters:
        values = await self._client.hmget(self._keys.room(term), list(COUNTER_FIELDS))
        return counters_from_values(cast("list[bytes | None]", values))  # not decoded

    @_unavailable
    async def advance(self, term: str, lease: Lease, step: Advance) -> QueueCounters | None:
        keys = self._keys
        args: list[str | bytes] = [
            lease.token,
            str(step.now_ms),
            str(step.grant),
            encode_float(step.carry),
            encode_float(step.admission_rate),
            str(step.expire_before_ms),
            "" if step.previous_tick_ms is None else str(step.previous_tick_ms),
        ]
        if step.freeze_seed is not None:
            args.append(step.freeze_seed)
        values = await self._scripts.advance(
            keys=[keys.lock(lease.name), keys.room(term), keys.batches(term), keys.batch(term)],
            args=args,
        )
        return None if values is None else counters_from_values(values)

    @_unavailable
    async def admission(self, term: str, position: int) -> Admission | None:
        keys = self._keys
        granted_at = await self._scripts.admission(
            keys=[keys.batches(term), keys.batch(term)], args=[str(position)]
        )
        return None if granted_at is None else Admission(int(granted_at))

    @_unavailable
    async def leave(
        self, term: str, student_pk: int, *, ticket: int, position: int | None, revoke_ms: int
    ) -> None:
        keys = self._keys
        args = [str(student_pk), str(ticket), str(revoke_ms)]
        if position is not None:
            args.append(str(position))
        await self._scripts.leave(
            keys=[
                keys.tickets(term),
                keys.room(term),
                keys.batches(term),
                keys.batch(term),
                keys.revoked(term, ticket),
            ],
            args=args,
        )

    @_unavailable
    async def replace_ticket(self, term: str, student_pk: int, *, old: int) -> int:
        keys = self._keys
        return int(
            await self._scripts.replace_ticket(
                keys=[keys.tickets(term), keys.room(term)], args=[str(student_pk), str(old)]
            )
        )


class RedisClusterLock:
    def __init__(self, keys: _Keys, scripts: _Scripts) -> None:
        self._keys = keys
        self._scripts = scripts

    async def acquire(self, lease: Lease, ttl_ms: int) -> bool:
        won = await self._scripts.lock_acquire(
            keys=[self._keys.lock(lease.name)], args=[lease.token, str(ttl_ms)]
        )
        return bool(won)

    async def release(self, lease: Lease) -> None:
        await self._scripts.lock_release(keys=[self._keys.lock(lease.name)], args=[lease.token])


class RedisRoomBus:
    def __init__(self, client: Redis, keys: _Keys) -> None:
        self._client = client
        self._channel = keys.channel

    async def publish(self, snapshot: RoomSnapshot) -> None:
        await self._client.publish(self._channel, snapshot_to_json(snapshot))

    async def listen(self) -> AsyncIterator[RoomSnapshot]:
        """Snapshots until cancelled. A lost connection is retried with a growing backoff
        rather than raised: nodes keep following the room across a Redis restart (missing
        what was published meanwhile; the next tick publishes again)."""
        backoff = RECONNECT_FIRST_SECONDS
        while True:
            try:
                async with self._client.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(self._channel)
                    backoff = RECONNECT_FIRST_SECONDS
                    while True:
                        message = await pubsub.get_message(
                            ignore_subscribe_messages=True, timeout=LISTEN_READ_SECONDS
                        )
                        if message is None or message["type"] != "message":
                            continue
                        snapshot = _decode(message["data"])
                        if snapshot is not None:
                            yield snapshot
            except (RedisError, OSError) as exc:
                log.warning("room bus: %r; subscribing again in %.1fs", exc, backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, RECONNECT_MAX_SECONDS)


def _decode(payload: Any) -> RoomSnapshot | None:
    """A snapshot, or None (logged) for a malformed message: one bad publisher must not
    stop every node from following the room."""
    try:
        return snapshot_from_json(payload)
    except (ValueError, KeyError, TypeError) as exc:
        log.warning("room bus: skipping a malformed snapshot: %r", exc)
        return None


class RedisSeatHints:
    """Hints per term in one hash: ``s:<id>`` seats, ``w:<id>`` waitlist places,
    ``h:<id>`` has a waitlist, ``g:<id>`` the section's generation, ``rebuild`` the
    term's. A Redis failure degrades to "ask the database", never to an error."""

    def __init__(self, client: Redis, keys: _Keys, scripts: _Scripts) -> None:
        self._client = client
        self._keys = keys
        self._scripts = scripts

    async def precheck(
        self,
        term: str,
        section_id: str,
        *,
        student_pk: int,
        idempotency_key: str | None,
        admission_ticket: int | None,
    ) -> Precheck:
        keys = [self._keys.hints(term)]
        if admission_ticket is not None:
            keys.append(self._keys.revoked(term, admission_ticket))
        if idempotency_key is not None:
            keys.append(self._keys.marker(student_pk, idempotency_key))
        args = [
            section_id,
            "0" if admission_ticket is None else "1",
            "0" if idempotency_key is None else "1",
            str(MARKER_TTL_MS),
        ]
        try:
            verdict, term_gen, section_gen, revoked = await self._scripts.precheck(
                keys=keys, args=args
            )
        except (RedisError, OSError) as exc:
            log.warning("seat hints: precheck failed, asking the database: %r", exc)
            return _PROCEED_BLIND
        return Precheck(
            _VERDICTS[int(verdict)],
            f"{int(term_gen)}:{int(section_gen)}",
            bool(revoked),
        )

    async def record(
        self, term: str, section_id: str, outcome: SeatOutcome, generation: str
    ) -> None:
        term_gen, sep, section_gen = generation.partition(":")
        if not sep:
            return  # the precheck could not read the hint: nothing to fence against
        try:
            await self._scripts.record(
                keys=[self._keys.hints(term)],
                args=[section_id, outcome.value, term_gen, section_gen],
            )
        except (RedisError, OSError) as exc:
            log.warning("seat hints: record failed: %r", exc)

    async def releasing(self, term: str, section_id: str) -> None:
        try:
            await self._scripts.releasing(keys=[self._keys.hints(term)], args=[section_id])
        except (RedisError, OSError) as exc:
            log.warning("seat hints: releasing failed: %r", exc)

    async def released(self, term: str, section_id: str) -> None:
        try:
            await self._client.hincrby(self._keys.hints(term), f"g:{section_id}", 1)
        except (RedisError, OSError) as exc:
            log.warning("seat hints: released failed: %r", exc)

    async def begin_rebuild(self, term: str) -> RebuildStamp:
        term_gen, *pairs = await self._scripts.begin_rebuild(keys=[self._keys.hints(term)])
        return RebuildStamp(
            int(term_gen),
            {
                section.decode(): int(gen)
                for section, gen in zip(pairs[::2], pairs[1::2], strict=True)
            },
        )

    async def rebuild(
        self, term: str, sections: Sequence[SectionView], stamp: RebuildStamp
    ) -> None:
        for start in range(0, len(sections), REBUILD_CHUNK):
            args = [str(stamp.term_generation)]
            for section in sections[start : start + REBUILD_CHUNK]:
                args += [
                    section.section_id,
                    str(stamp.sections.get(section.section_id, 0)),
                    str(section.capacity - section.enrolled),
                    str(section.waitlist_capacity - section.waitlisted),
                    "1" if section.waitlist_capacity > 0 else "0",
                ]
            applied = await self._scripts.rebuild(keys=[self._keys.hints(term)], args=args)
            if not applied:
                return  # a later rebuild is under way; it reads fresher counts

    async def epoch(self) -> str:
        fresh = uuid.uuid4().hex
        # SET NX GET: the stored epoch, or None when ours was stored (Redis >= 7.0)
        stored = await self._client.set(self._keys.epoch, fresh, nx=True, get=True)
        return fresh if stored is None else cast(bytes, stored).decode()
