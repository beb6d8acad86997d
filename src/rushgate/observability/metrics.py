"""Live values for operators. Every metric is defined here, once.

The waiting room reports through :class:`RoomGauges` (the ``RoomMetrics`` port); an
exporter (Prometheus) reads :meth:`RoomGauges.rooms` — nothing else needs to change.
"""

from __future__ import annotations

from dataclasses import dataclass

from rushgate.domain.waiting_room import RoomSnapshot


@dataclass(frozen=True, slots=True)
class RoomGauge:
    """One room after its latest tick on this node."""

    waiting: int
    active: int
    admitted_total: int
    admitted_last_tick: int
    admission_rate: float
    eta_tail_seconds: int
    paused: bool


class RoomGauges:
    """Queue length, admitted per second, active and ETA, per term."""

    def __init__(self) -> None:
        self._rooms: dict[str, RoomGauge] = {}

    def observe_room(self, snapshot: RoomSnapshot, *, granted: int, eta_tail_seconds: int) -> None:
        self._rooms[snapshot.term] = RoomGauge(
            waiting=snapshot.waiting,
            active=snapshot.active,
            admitted_total=snapshot.serving,
            admitted_last_tick=granted,
            admission_rate=snapshot.admission_rate,
            eta_tail_seconds=eta_tail_seconds,
            paused=snapshot.paused,
        )

    def rooms(self) -> dict[str, RoomGauge]:
        return dict(self._rooms)
