"""Cluster-wide locks whose token fences the writes made under them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Lease:
    """A held cluster-wide lock; ``token`` fences writes made under it."""

    name: str
    token: str


class ClusterLock(Protocol):
    async def acquire(self, lease: Lease, ttl_ms: int) -> bool:
        """Take the lock, or extend it when ``lease`` holds it already."""
        ...

    async def release(self, lease: Lease) -> None: ...
