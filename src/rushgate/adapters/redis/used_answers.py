"""Redis single-use memory of challenge answers: one ``SET NX PX`` per answer, so two
nodes offered the same answer at once accept it only once."""

from __future__ import annotations

import math

from redis.asyncio import Redis
from redis.exceptions import RedisError

from rushgate.domain.errors import Unavailable


class RedisUsedAnswers:
    def __init__(self, client: Redis, *, prefix: str = "rg:") -> None:
        self._client = client
        self._prefix = f"{prefix}used:"

    async def first_use(self, key: str, ttl_seconds: float) -> bool:
        try:
            created = await self._client.set(
                self._prefix + key, b"1", nx=True, px=max(math.ceil(ttl_seconds * 1000), 1)
            )
        except (RedisError, OSError) as exc:
            raise Unavailable("used challenge answers cannot be checked right now") from exc
        return bool(created)
