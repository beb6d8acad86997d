"""The rate-limit service: budgets by name, scaling, and failing open on a real outage."""

from __future__ import annotations

import logging

import pytest

from rushgate.adapters.memory.coordination import MemoryCoordination
from rushgate.adapters.redis.coordination import RedisCoordination
from rushgate.domain.clock import SystemClock
from rushgate.domain.errors import RateLimited
from rushgate.services.rate_limits import (
    DEFAULT_BUDGETS,
    ENROLL,
    FAIL_OPEN_LOG_SECONDS,
    JOIN,
    LOGIN,
    RateLimits,
)
from tests.support import closed_port


class Recorder:
    """The metrics port, recording what it is told."""

    def __init__(self) -> None:
        self.limited_budgets: list[str] = []
        self.failed_open_budgets: list[str] = []

    def limited(self, budget: str) -> None:
        self.limited_budgets.append(budget)

    def failed_open(self, budget: str) -> None:
        self.failed_open_budgets.append(budget)


def test_address_budgets_are_generous_and_account_budgets_tight() -> None:
    for budget in DEFAULT_BUDGETS.values():
        if budget.per_address is not None:
            assert budget.per_address.burst >= 100  # a campus behind one NAT address
        if budget.per_account is not None:
            assert budget.per_account.burst <= 20
            assert budget.per_account.per_second <= 5


def test_scale_multiplies_every_burst_and_rate() -> None:
    limits = RateLimits(MemoryCoordination(SystemClock()).limits, scale=0.5)
    address, account = limits.limits_of(JOIN)
    assert address is not None
    assert account is not None
    assert (address.burst, address.per_second) == (500, 100.0)
    assert (account.burst, account.per_second) == (10, 2.5)
    assert limits.limits_of(LOGIN)[1] is None  # login attempts: per address only
    with pytest.raises(ValueError, match="scale"):
        RateLimits(MemoryCoordination(SystemClock()).limits, scale=0)


async def test_a_refusal_is_rate_limited_with_retry_after_and_counted() -> None:
    recorder = Recorder()
    limits = RateLimits(MemoryCoordination(SystemClock()).limits, scale=0.05, metrics=recorder)
    await limits.check(ENROLL, address="198.51.100.1", account="student:1")  # burst 1
    with pytest.raises(RateLimited) as refused:
        await limits.check(ENROLL, address="198.51.100.1", account="student:1")
    assert 3.9 < refused.value.retry_after <= 4.0  # 5/s x 0.05 = one per 4 s
    assert refused.value.context["budget"] == ENROLL
    assert recorder.limited_budgets == [ENROLL]
    # Neither key given: nothing to limit.
    await limits.check(ENROLL, address=None, account=None)


async def test_disabled_lets_everything_through() -> None:
    limits = RateLimits(MemoryCoordination(SystemClock()).limits, scale=0.01, enabled=False)
    for _ in range(10):
        await limits.check(LOGIN, address="198.51.100.1", account=None)


async def test_a_redis_outage_fails_open_and_logs_once_a_minute(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [1000.0]
    recorder = Recorder()
    coord = RedisCoordination.from_url(f"redis://127.0.0.1:{closed_port()}/0")
    limits = RateLimits(coord.limits, scale=0.01, metrics=recorder, monotonic=lambda: now[0])
    try:
        with caplog.at_level(logging.WARNING, logger="rushgate.rate_limits"):
            for _ in range(5):
                await limits.check(LOGIN, address="198.51.100.1", account=None)
            now[0] += FAIL_OPEN_LOG_SECONDS + 1
            await limits.check(JOIN, address="198.51.100.1", account="student:1")
    finally:
        await coord.close()
    assert recorder.failed_open_budgets == [LOGIN] * 5 + [JOIN]
    assert len([r for r in caplog.records if "fail open" in r.getMessage()]) == 2
