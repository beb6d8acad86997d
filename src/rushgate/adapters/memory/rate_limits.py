"""In-process rate limits (GCRA) for the embedded default: one process, no Redis."""

from __future__ import annotations

import math
from collections.abc import Sequence

from rushgate.domain.clock import Clock
from rushgate.services.ports.rate_limits import Limit, Verdict

# Keys kept before expired ones are swept (an attacker rotating keys cannot grow it
# without bound: a sweep drops every key whose budget is full again).
_SWEEP_AT = 100_000
# Times closer than this (seconds; Redis's TIME resolution) count as equal. Epoch seconds
# as floats carry ~0.2 µs of error, which would otherwise refuse a request at the exact
# moment it fits or round ``remaining`` one down. The Lua script uses the same.
_TOLERANCE = 1e-6


class MemoryRateLimiter:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        # (budget name, key) -> theoretical arrival time (seconds, clock's epoch)
        self._tat: dict[tuple[str, str], float] = {}

    def _now(self) -> float:
        return self._clock.now().timestamp()

    def _judge(
        self, limit: Limit, key: str, cost: int, *, commit: bool, now: float | None = None
    ) -> Verdict:
        if now is None:
            now = self._now()
        slot = (limit.name, key)
        tat = max(self._tat.get(slot, now), now)
        interval = limit.interval
        new_tat = tat + cost * interval
        # A request fits when, after it, the budget is used by at most ``burst`` requests.
        allow_at = new_tat - limit.burst * interval
        if allow_at - now > _TOLERANCE:
            return Verdict(False, allow_at - now, 0)
        if commit:
            if len(self._tat) >= _SWEEP_AT:
                self._sweep(now)
            self._tat[slot] = new_tat
        remaining = max(math.floor((now - allow_at + _TOLERANCE) / interval), 0)
        return Verdict(True, 0.0, remaining)

    def _sweep(self, now: float) -> None:
        for slot in [slot for slot, tat in self._tat.items() if tat <= now]:
            del self._tat[slot]

    async def take(self, limit: Limit, key: str, cost: int = 1) -> Verdict:
        return self._judge(limit, key, cost, commit=True)

    async def take_all(self, checks: Sequence[tuple[Limit, str]]) -> tuple[Verdict, ...]:
        if not checks:
            return ()
        # One instant for every check, and no await between judging and committing:
        # atomic like the Lua script.
        now = self._now()
        verdicts = tuple(self._judge(limit, key, 1, commit=False, now=now) for limit, key in checks)
        if all(verdict.allowed for verdict in verdicts):
            for limit, key in checks:
                self._judge(limit, key, 1, commit=True, now=now)
        return verdicts

    async def peek(self, limit: Limit, key: str) -> Verdict:
        return self._judge(limit, key, 1, commit=False)

    async def reset(self, limit: Limit, key: str) -> None:
        self._tat.pop((limit.name, key), None)
