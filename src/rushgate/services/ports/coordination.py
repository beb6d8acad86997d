"""Every coordination port of one backend: Redis, or in-process for the embedded default.

Redis is an accelerator and a coordinator: the waiting room lives there, but no fact a
student was told about (a seat, a place on a waitlist) exists only there."""

from __future__ import annotations

from typing import Protocol

from rushgate.services.ports.challenge import UsedAnswers
from rushgate.services.ports.locks import ClusterLock
from rushgate.services.ports.rate_limits import RateLimiter
from rushgate.services.ports.seat_hints import SeatHints
from rushgate.services.ports.waiting_room import RoomBus, WaitingRoomStore


class Coordination(Protocol):
    """Every coordination port of one backend (Redis, or in-process)."""

    @property
    def store(self) -> WaitingRoomStore: ...

    @property
    def lock(self) -> ClusterLock: ...

    @property
    def bus(self) -> RoomBus: ...

    @property
    def hints(self) -> SeatHints: ...

    @property
    def limits(self) -> RateLimiter: ...

    @property
    def used_answers(self) -> UsedAnswers: ...

    async def ping(self) -> None:
        """Raise when the backend cannot answer."""
        ...

    async def close(self) -> None: ...
