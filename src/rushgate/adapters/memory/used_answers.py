"""In-process single-use memory of challenge answers, for the embedded default."""

from __future__ import annotations

import time

# Answers kept before expired ones are swept, so a flood of answers cannot grow the dict
# past what is still valid.
_SWEEP_AT = 100_000


class MemoryUsedAnswers:
    def __init__(self) -> None:
        # key -> when it may be forgotten (monotonic seconds: TTLs measure real time,
        # like Redis's PX, whatever clock the rules run on)
        self._until: dict[str, float] = {}

    async def first_use(self, key: str, ttl_seconds: float) -> bool:
        now = time.monotonic()
        until = self._until.get(key)
        if until is not None and until > now:
            return False
        if len(self._until) >= _SWEEP_AT:
            self._until = {k: t for k, t in self._until.items() if t > now}
        self._until[key] = now + max(ttl_seconds, 0.001)
        return True
