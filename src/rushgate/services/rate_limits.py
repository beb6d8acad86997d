"""Rate limits by name: how many requests of one kind a client address or an account may
make, and what happens when the backend cannot say.

Two keys per budget. Per address, generous: a whole school or campus can sit behind one
NAT address and press the same button in the same second, so an address budget only
stops one machine from flooding. Per account, tight: one student (or one script using
that student's token) gets a human's pace. A request is counted against both at once or
against neither (``take_all``).

The limits **fail open**: when the backend (Redis) fails, the request goes through,
counted in a metric and logged at most once a minute. A rate limit protects capacity;
refusing every login because Redis blinked would cause the outage it is meant to prevent.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from rushgate.domain.errors import RateLimited
from rushgate.services.ports.rate_limits import Limit, RateLimiter

log = logging.getLogger("rushgate.rate_limits")

# A fail-open pass is logged at most this often (seconds), whatever the budget.
FAIL_OPEN_LOG_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class Rate:
    """``burst`` requests at once, refilled at ``per_second``."""

    burst: int
    per_second: float


@dataclass(frozen=True, slots=True)
class Budget:
    """A named budget: per client address and/or per account (``None``: not limited so)."""

    name: str
    per_address: Rate | None
    per_account: Rate | None


LOGIN = "login"
SIGN_UP = "sign_up"
JOIN = "join"
ENROLL = "enroll"
QNA = "qna"

# Defaults for a real rush (see docs/security-controls.md for the reasoning). Address
# budgets let a campus NAT through at the opening second; account budgets allow a fast
# human, not a macro firing tens of requests a second.
DEFAULT_BUDGETS: Mapping[str, Budget] = {
    # Attempts, successful or not; failures have their own guard (login protection).
    LOGIN: Budget(LOGIN, per_address=Rate(300, 30.0), per_account=None),
    SIGN_UP: Budget(SIGN_UP, per_address=Rate(100, 5.0), per_account=None),
    # Joining again returns the same ticket; status (not join) is the route to poll.
    JOIN: Budget(JOIN, per_address=Rate(1000, 200.0), per_account=Rate(20, 5.0)),
    # Enroll and drop together: a student adds a timetable in a few clicks.
    ENROLL: Budget(ENROLL, per_address=Rate(1000, 300.0), per_account=Rate(20, 5.0)),
    # Posting questions: a burst while writing several, then one every 5 s.
    QNA: Budget(QNA, per_address=Rate(100, 10.0), per_account=Rate(20, 0.2)),
}


class RateLimitMetrics(Protocol):
    """Counters of refusals and fail-open passes; the observability layer exports them."""

    def limited(self, budget: str) -> None: ...

    def failed_open(self, budget: str) -> None: ...


class _NoMetrics:
    def limited(self, budget: str) -> None:
        return None

    def failed_open(self, budget: str) -> None:
        return None


@dataclass(frozen=True, slots=True)
class _Compiled:
    per_address: Limit | None
    per_account: Limit | None


def _scaled(name: str, rate: Rate | None, scale: float) -> Limit | None:
    if rate is None:
        return None
    return Limit(
        name, burst=max(1, math.ceil(rate.burst * scale)), per_second=rate.per_second * scale
    )


class RateLimits:
    """Checks requests against the named budgets.

    ``scale`` multiplies every burst and rate (2.0: twice as generous); ``enabled=False``
    lets everything through (a load test of the app alone)."""

    def __init__(
        self,
        limiter: RateLimiter,
        *,
        budgets: Mapping[str, Budget] = DEFAULT_BUDGETS,
        scale: float = 1.0,
        enabled: bool = True,
        metrics: RateLimitMetrics | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if scale <= 0:
            raise ValueError("scale must be positive")
        self._limiter = limiter
        self.enabled = enabled
        self._metrics = metrics or _NoMetrics()
        self._monotonic = monotonic
        self._last_logged: float | None = None
        self._budgets = {
            name: _Compiled(
                _scaled(f"{name}:address", budget.per_address, scale),
                _scaled(f"{name}:account", budget.per_account, scale),
            )
            for name, budget in budgets.items()
        }

    def limits_of(self, budget: str) -> tuple[Limit | None, Limit | None]:
        """The (per address, per account) limits a budget applies, after scaling."""
        compiled = self._budgets[budget]
        return compiled.per_address, compiled.per_account

    async def check(self, budget: str, *, address: str | None, account: str | None) -> None:
        """Count one request against ``budget`` for ``address`` and ``account`` (either
        may be ``None``: not limited by it). Raises ``RateLimited`` when it does not fit;
        a backend failure lets it through."""
        if not self.enabled:
            return
        compiled = self._budgets[budget]
        checks: list[tuple[Limit, str]] = []
        if address is not None and compiled.per_address is not None:
            checks.append((compiled.per_address, address))
        if account is not None and compiled.per_account is not None:
            checks.append((compiled.per_account, account))
        if not checks:
            return
        try:
            verdicts = await self._limiter.take_all(checks)
        except Exception as exc:  # fail open on any backend failure, Unavailable or not
            self._failed_open(budget, exc)
            return
        refused = [
            (verdict, limit)
            for verdict, (limit, _) in zip(verdicts, checks, strict=True)
            if not verdict.allowed
        ]
        if not refused:
            return
        verdict, limit = max(refused, key=lambda pair: pair[0].retry_after)
        self._metrics.limited(budget)
        whose = "address" if limit is compiled.per_address else "account"
        raise RateLimited(
            f"too many {budget.replace('_', '-')} requests from this {whose}; "
            f"retry in {max(1, math.ceil(verdict.retry_after))} s",
            retry_after=round(verdict.retry_after, 3),
            budget=budget,
        )

    def _failed_open(self, budget: str, exc: Exception) -> None:
        self._metrics.failed_open(budget)
        now = self._monotonic()
        if self._last_logged is not None and now - self._last_logged < FAIL_OPEN_LOG_SECONDS:
            return
        self._last_logged = now
        log.warning(
            "rate limits cannot be checked; letting requests through (fail open): %r",
            exc,
            extra={"budget": budget},
        )
