"""Redis rate limits (GCRA): the semantics of the in-process limiter, shared by every node.

One string key per (budget, key) holds the theoretical arrival time; the script
(``lua/gcra.lua``) reads Redis's own clock, so nodes with skewed clocks agree, and lets a
key expire when its budget is full again, so idle clients cost no memory. Several
budgets are checked in one call, all-or-nothing. A Redis failure is ``Unavailable``: the
caller decides whether to fail open.

The keys of one ``take_all`` call are not hash-tagged together (one is per address, one
per account), so it needs a single Redis (or Sentinel), not Redis Cluster.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources

from redis.asyncio import Redis
from redis.exceptions import RedisError

from rushgate.domain.errors import Unavailable
from rushgate.services.ports.rate_limits import Limit, Verdict


def _script() -> str:
    return resources.files(__package__).joinpath("lua", "gcra.lua").read_text("utf-8")


class RedisRateLimiter:
    def __init__(self, client: Redis, *, prefix: str = "rg:") -> None:
        self._client = client
        self._prefix = f"{prefix}rl:"
        self._gcra = client.register_script(_script())

    def _key(self, limit: Limit, key: str) -> str:
        return f"{self._prefix}{limit.name}:{key}"

    async def _run(
        self, checks: Sequence[tuple[Limit, str, int]], *, commit: bool
    ) -> tuple[Verdict, ...]:
        args = ["1" if commit else "0"]
        for limit, _, cost in checks:
            args += [str(limit.burst), repr(limit.interval), str(cost)]
        try:
            raw = await self._gcra(
                keys=[self._key(limit, key) for limit, key, _ in checks], args=args
            )
        except (RedisError, OSError) as exc:
            raise Unavailable("the rate limits cannot be checked right now") from exc
        return tuple(
            Verdict(bool(int(allowed)), float(retry_after), int(remaining))
            for allowed, retry_after, remaining in raw
        )

    async def take(self, limit: Limit, key: str, cost: int = 1) -> Verdict:
        return (await self._run([(limit, key, cost)], commit=True))[0]

    async def take_all(self, checks: Sequence[tuple[Limit, str]]) -> tuple[Verdict, ...]:
        if not checks:
            return ()
        return await self._run([(limit, key, 1) for limit, key in checks], commit=True)

    async def peek(self, limit: Limit, key: str) -> Verdict:
        return (await self._run([(limit, key, 1)], commit=False))[0]

    async def reset(self, limit: Limit, key: str) -> None:
        try:
            await self._client.delete(self._key(limit, key))
        except (RedisError, OSError) as exc:
            raise Unavailable("the rate limits cannot be reset right now") from exc
