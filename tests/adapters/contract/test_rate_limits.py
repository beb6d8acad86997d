"""Contract of the rate limiter (GCRA): the in-process and the Redis implementations must
behave alike; the Redis one also under many concurrent takers. Both run on wall time
(Redis's own TIME), so refills are tested with short real intervals."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from rushgate.adapters.memory.coordination import MemoryCoordination
from rushgate.adapters.memory.rate_limits import MemoryRateLimiter
from rushgate.domain.clock import FixedClock, SystemClock
from rushgate.domain.errors import Unavailable
from rushgate.services.ports.rate_limits import Limit, RateLimiter
from tests.support import REDIS_URL, closed_port, redis_reachable, require_service

SLOW = Limit("login", burst=3, per_second=1.0)  # refills one request per second


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def limiter(request: pytest.FixtureRequest) -> AsyncIterator[RateLimiter]:
    if request.param == "memory":
        yield MemoryCoordination(SystemClock()).limits
        return
    reason = await redis_reachable()
    if reason is not None:
        require_service("Redis", reason)
    from rushgate.adapters.redis.coordination import RedisCoordination

    coord = RedisCoordination.from_url(REDIS_URL, prefix=f"rgtest:{uuid.uuid4().hex[:12]}:")
    try:
        yield coord.limits
    finally:
        await coord.delete_all_keys()
        await coord.close()


async def test_a_burst_is_allowed_at_once_then_refused(limiter: RateLimiter) -> None:
    verdicts = [await limiter.take(SLOW, "1.2.3.4") for _ in range(4)]
    assert [v.allowed for v in verdicts] == [True, True, True, False]
    assert [v.remaining for v in verdicts] == [2, 1, 0, 0]
    assert verdicts[0].retry_after == 0.0


async def test_retry_after_is_the_time_until_one_more_fits(limiter: RateLimiter) -> None:
    for _ in range(3):
        await limiter.take(SLOW, "k")
    refused = await limiter.take(SLOW, "k")
    assert not refused.allowed
    # One interval (1 s) minus the few milliseconds the calls took.
    assert 0.9 < refused.retry_after <= 1.0


async def test_refused_requests_are_not_counted(limiter: RateLimiter) -> None:
    fast = Limit("fast", burst=2, per_second=10.0)
    assert (await limiter.take(fast, "k")).allowed
    assert (await limiter.take(fast, "k")).allowed
    for _ in range(20):  # hammering while refused must not push the refill further away
        assert not (await limiter.take(fast, "k")).allowed
    await asyncio.sleep(0.12)
    assert (await limiter.take(fast, "k")).allowed


async def test_the_budget_refills_at_its_rate(limiter: RateLimiter) -> None:
    fast = Limit("fast", burst=2, per_second=20.0)  # one request every 50 ms
    assert (await limiter.take(fast, "k")).allowed
    assert (await limiter.take(fast, "k")).allowed
    assert not (await limiter.take(fast, "k")).allowed
    await asyncio.sleep(0.06)
    assert (await limiter.take(fast, "k")).allowed  # one refilled ...
    assert not (await limiter.take(fast, "k")).allowed  # ... and only one
    await asyncio.sleep(0.25)
    full = await limiter.peek(fast, "k")
    assert full.allowed
    assert full.remaining == 1


async def test_keys_and_budgets_are_separate(limiter: RateLimiter) -> None:
    other_budget = Limit("enroll", burst=3, per_second=1.0)
    for _ in range(3):
        await limiter.take(SLOW, "a")
    assert not (await limiter.take(SLOW, "a")).allowed
    assert (await limiter.take(SLOW, "b")).allowed
    assert (await limiter.take(other_budget, "a")).allowed


async def test_reset_forgets_a_key(limiter: RateLimiter) -> None:
    for _ in range(3):
        await limiter.take(SLOW, "a")
    await limiter.take(SLOW, "b")
    await limiter.reset(SLOW, "a")
    assert (await limiter.take(SLOW, "a")).remaining == 2
    assert (await limiter.take(SLOW, "b")).remaining == 1  # untouched


async def test_peek_counts_nothing(limiter: RateLimiter) -> None:
    fresh = await limiter.peek(SLOW, "k")
    assert fresh.allowed
    assert fresh.remaining == 2
    for _ in range(5):
        await limiter.peek(SLOW, "k")
    assert (await limiter.take(SLOW, "k")).remaining == 2
    await limiter.take(SLOW, "k")
    await limiter.take(SLOW, "k")
    spent = await limiter.peek(SLOW, "k")
    assert not spent.allowed
    assert 0.9 < spent.retry_after <= 1.0


async def test_a_cost_counts_as_that_many_requests(limiter: RateLimiter) -> None:
    wide = Limit("wide", burst=10, per_second=1.0)
    first = await limiter.take(wide, "k", cost=4)
    assert first.allowed
    assert first.remaining == 6
    assert not (await limiter.take(wide, "k", cost=7)).allowed  # refused whole, not in part
    assert (await limiter.take(wide, "k", cost=6)).remaining == 0
    too_big = await limiter.take(Limit("wide", burst=10, per_second=1.0), "other", cost=11)
    assert not too_big.allowed


async def test_take_all_counts_every_budget_or_none(limiter: RateLimiter) -> None:
    per_ip = Limit("join-ip", burst=5, per_second=1.0)
    per_account = Limit("join-account", burst=2, per_second=1.0)
    checks = [(per_ip, "10.0.0.1"), (per_account, "student-7")]
    assert [v.allowed for v in await limiter.take_all(checks)] == [True, True]
    assert [v.allowed for v in await limiter.take_all(checks)] == [True, True]
    refused = await limiter.take_all(checks)
    assert [v.allowed for v in refused] == [True, False]
    assert 0.9 < refused[1].retry_after <= 1.0
    # The refused call did not count against the address: 3 of 5 left, not 2.
    assert (await limiter.peek(per_ip, "10.0.0.1")).remaining == 2
    assert await limiter.take_all([]) == ()


async def test_an_idle_key_expires_when_its_budget_is_full_again(limiter: RateLimiter) -> None:
    fast = Limit("fast", burst=3, per_second=20.0)
    for _ in range(3):
        await limiter.take(fast, "k")
    await asyncio.sleep(0.2)  # 3 intervals of 50 ms: full again
    assert (await limiter.take(fast, "k")).remaining == 2


@pytest.mark.redis
async def test_redis_keys_live_until_the_budget_is_full() -> None:
    reason = await redis_reachable()
    if reason is not None:
        require_service("Redis", reason)
    from redis.asyncio import Redis

    from rushgate.adapters.redis.coordination import RedisCoordination

    prefix = f"rgtest:{uuid.uuid4().hex[:12]}:"
    coord = RedisCoordination.from_url(REDIS_URL, prefix=prefix)
    raw = Redis.from_url(REDIS_URL)
    try:
        limit = Limit("ttl", burst=10, per_second=2.0)
        await coord.limits.take(limit, "k", cost=4)  # 4 requests: full again in 2 s
        ttl_ms = await raw.pttl(f"{prefix}rl:ttl:k")
        assert 1900 < ttl_ms <= 2000
        await coord.limits.take(Limit("ttl", burst=10, per_second=20.0), "short")
        await asyncio.sleep(0.12)
        assert not await raw.exists(f"{prefix}rl:ttl:short")
        await coord.limits.peek(limit, "never-taken")
        assert not await raw.exists(f"{prefix}rl:ttl:never-taken")  # peeking stores nothing
    finally:
        await raw.aclose()
        await coord.delete_all_keys()
        await coord.close()


@pytest.mark.redis
async def test_concurrent_takers_on_redis_never_exceed_the_budget() -> None:
    reason = await redis_reachable()
    if reason is not None:
        require_service("Redis", reason)
    from rushgate.adapters.redis.coordination import RedisCoordination

    prefix = f"rgtest:{uuid.uuid4().hex[:12]}:"
    # Several clients (several nodes' pools), all taking at once.
    nodes = [RedisCoordination.from_url(REDIS_URL, prefix=prefix) for _ in range(4)]
    try:
        limit = Limit("rush", burst=50, per_second=0.01)  # no refill within the test
        results = await asyncio.gather(
            *(nodes[n % 4].limits.take(limit, "campus-nat") for n in range(200))
        )
        assert sum(v.allowed for v in results) == 50
        both = [(limit, "pair-ip"), (Limit("rush-acct", burst=30, per_second=0.01), "acct")]
        pairs = await asyncio.gather(*(nodes[n % 4].limits.take_all(both) for n in range(200)))
        assert sum(all(v.allowed for v in pair) for pair in pairs) == 30
        # Only the 30 that fitted both were counted against the address.
        assert (await nodes[0].limits.peek(limit, "pair-ip")).remaining == 50 - 30 - 1
    finally:
        await nodes[0].delete_all_keys()
        for node in nodes:
            await node.close()


async def test_redis_unreachable_is_unavailable() -> None:
    from rushgate.adapters.redis.coordination import RedisCoordination

    coord = RedisCoordination.from_url(f"redis://127.0.0.1:{closed_port()}/0")
    try:
        with pytest.raises(Unavailable):
            await coord.limits.take(SLOW, "k")
        with pytest.raises(Unavailable):
            await coord.limits.take_all([(SLOW, "k")])
    finally:
        await coord.close()


async def test_memory_retry_after_is_exact_on_a_set_clock() -> None:
    at = datetime(2026, 2, 10, 10, 0, tzinfo=UTC)
    clock = FixedClock(at)
    limits = MemoryRateLimiter(clock)
    limit = Limit("login", burst=2, per_second=4.0)  # 250 ms per request
    await limits.take(limit, "k")
    await limits.take(limit, "k")
    assert (await limits.take(limit, "k")).retry_after == pytest.approx(0.25)
    clock.set(at + timedelta(milliseconds=100))
    assert (await limits.take(limit, "k")).retry_after == pytest.approx(0.15)
    clock.set(at + timedelta(milliseconds=250))
    allowed = await limits.take(limit, "k")
    assert allowed.allowed
    assert allowed.remaining == 0


def test_memory_limits_run_on_wall_time_whatever_the_rules_clock() -> None:
    frozen = MemoryCoordination(FixedClock(datetime(2020, 1, 1, tzinfo=UTC)))
    assert isinstance(frozen.limits, MemoryRateLimiter)
    started = time.time()
    assert abs(frozen.limits._now() - started) < 5
