"""Rate limits: budgets of requests per client address or account.

A budget is a generic cell rate (GCRA): ``burst`` requests at once, refilled at
``per_second``. Implementations keep one timestamp per key (the theoretical arrival
time), so a key costs the same memory whatever its rate, and every node sharing a
backend shares the budget."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Limit:
    """A budget. ``name`` separates budgets that share keys (login vs enroll)."""

    name: str
    burst: int
    per_second: float

    @property
    def interval(self) -> float:
        """Seconds one request's share of the budget takes to refill."""
        return 1.0 / self.per_second


@dataclass(frozen=True, slots=True)
class Verdict:
    """``allowed``: the request fits the budget (and was counted, for ``take``).
    ``retry_after``: seconds until one more would fit (0 when one fits now).
    ``remaining``: requests that would still fit at once after this one."""

    allowed: bool
    retry_after: float
    remaining: int


class RateLimiter(Protocol):
    async def take(self, limit: Limit, key: str, cost: int = 1) -> Verdict:
        """Count ``cost`` requests against ``key``'s budget if they fit; refused ones are
        not counted. Raises ``Unavailable`` when the backend cannot answer."""
        ...

    async def peek(self, limit: Limit, key: str) -> Verdict:
        """Whether one request would fit now, counting nothing."""
        ...

    async def take_all(self, checks: Sequence[tuple[Limit, str]]) -> tuple[Verdict, ...]:
        """One request against several budgets at once (per address and per account), in
        one round trip and all-or-nothing: counted against every budget only when it fits
        every one; when one refuses, none is counted. One verdict per check, in order (an
        allowed one then only says it would have fitted). Raises ``Unavailable`` too."""
        ...

    async def reset(self, limit: Limit, key: str) -> None:
        """Forget ``key``'s use of the budget (a successful login clears its failures)."""
        ...
