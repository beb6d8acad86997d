"""Waiting-room arithmetic: tickets, the pre-queue lottery, admission budgets and ETAs.

A student's **ticket** is a number from one counter. Students who joined before the
term opened (the *pre-queue*, tickets ``1..P``) are put in a random order when it opens;
later tickets keep their number. Either way a ticket maps to an **admission position**
``e``, and the room admits by moving one **serving** counter: every position ``e <=
serving`` is admitted. So a student's place is ``e - serving``, computed in O(1), and the
order is decided once, not re-ranked per request.

The lottery is a keyed permutation of ``0..P-1`` (a Feistel network with cycle walking):
one stored seed decides the whole order, nothing is shuffled or stored per student, and
the same seed always gives the same order.
"""

from __future__ import annotations

import enum
import hashlib
import math
from dataclasses import dataclass
from datetime import datetime

_ROUNDS = 4


class QueueState(enum.StrEnum):
    PREQUEUE = "prequeue"
    WAITING = "waiting"
    ADMITTED = "admitted"
    CLOSED = "closed"


class RoomPhase(enum.StrEnum):
    """Where the room as a whole is: before opening, admitting, or past the window."""

    PREQUEUE = "prequeue"
    OPEN = "open"
    CLOSED = "closed"


def keyed_permutation(seed: bytes, size: int, index: int) -> int:
    """Where ``index`` lands in a permutation of ``range(size)`` chosen by ``seed``.

    A balanced Feistel network over the smallest even power of two covering ``size``;
    values that land outside ``range(size)`` are fed through again (cycle walking), which
    keeps it a bijection of ``range(size)``. Expected passes are below four.
    """
    if not 0 <= index < size:
        raise ValueError("index out of range")
    if size == 1:
        return 0
    half_bits = max(1, math.ceil(math.log2(size) / 2))
    mask = (1 << half_bits) - 1
    value = index
    while True:
        left, right = value >> half_bits, value & mask
        for round_ in range(_ROUNDS):
            digest = hashlib.blake2b(
                round_.to_bytes(1, "big") + right.to_bytes(8, "big"), key=seed, digest_size=8
            ).digest()
            left, right = right, left ^ (int.from_bytes(digest, "big") & mask)
        value = (left << half_bits) | right
        if value < size:
            return value


@dataclass(frozen=True, slots=True)
class RoomSnapshot:
    """The state of one term's room after a tick: one document shared by every node.

    ``prequeue_size`` is ``None`` until the pre-queue is closed (at opening); ``seed``
    orders it. ``admission_rate`` is the measured rate while students were waiting.
    The seed never leaves the servers.
    """

    term: str
    phase: RoomPhase
    issued: int
    serving: int
    prequeue_size: int | None
    seed: bytes | None
    active: int
    admission_rate: float
    admit_per_second: int
    paused: bool
    opens_at: datetime
    taken_at: datetime

    @property
    def waiting(self) -> int:
        """Tickets issued and not yet served (in the pre-queue: everyone who joined)."""
        return max(self.issued - self.serving, 0)

    def position_of(self, ticket: int) -> int | None:
        """The admission position of ``ticket``; ``None`` while the lottery is undrawn."""
        if self.prequeue_size is None:
            return None
        if ticket <= self.prequeue_size:
            assert self.seed is not None
            return keyed_permutation(self.seed, self.prequeue_size, ticket - 1) + 1
        return ticket

    def effective_rate(self) -> float:
        """Admissions per second to forecast with: the measured rate, else the setting."""
        return self.admission_rate if self.admission_rate > 0.01 else float(self.admit_per_second)


@dataclass(frozen=True, slots=True)
class Place:
    """One student's view of the room."""

    state: QueueState
    ticket: int
    position: int | None
    ahead: int | None
    eta_seconds: int | None
    poll_after_seconds: int
    reason: str | None = None


MIN_POLL_SECONDS = 1
MAX_POLL_SECONDS = 30


def poll_hint(eta_seconds: int | None) -> int:
    """How long a client should wait before asking again: rarely when far back."""
    if eta_seconds is None:
        return 5
    return max(MIN_POLL_SECONDS, min(MAX_POLL_SECONDS, eta_seconds // 4))


def place_of(ticket: int, room: RoomSnapshot, now: datetime) -> Place:
    """Where ``ticket`` stands in ``room``: the same arithmetic on every node."""
    if room.phase is RoomPhase.CLOSED:
        return Place(QueueState.CLOSED, ticket, None, None, None, MAX_POLL_SECONDS, "window_closed")
    position = room.position_of(ticket)
    if position is None:
        until_open = max(math.ceil((room.opens_at - now).total_seconds()), 0)
        return Place(QueueState.PREQUEUE, ticket, None, None, until_open, poll_hint(until_open))
    if position <= room.serving:
        return Place(QueueState.ADMITTED, ticket, 0, 0, 0, 0)
    places = position - room.serving
    eta = math.ceil(places / room.effective_rate())
    return Place(QueueState.WAITING, ticket, places, places - 1, eta, poll_hint(eta))


@dataclass(frozen=True, slots=True)
class AdmissionPlan:
    grant: int
    carry: float
    admission_rate: float


# The admission rate is averaged over about this many seconds.
RATE_WINDOW_SECONDS = 5.0
# At most this many seconds of unused budget may be spent at once (after a pause or gap).
MAX_BURST_SECONDS = 1.0


def plan_admission(
    *,
    waiting: int,
    active: int,
    max_active: int,
    admit_per_second: float,
    elapsed_seconds: float,
    carry: float,
    admission_rate: float,
    healthy: bool,
) -> AdmissionPlan:
    """How many to admit in this tick: a token bucket at ``admit_per_second``, capped by
    the free active slots and by who is waiting, and nothing while the backend is unwell.

    The measured rate is updated only while students were left waiting, so it describes
    how fast a queue drains (what an ETA needs), not how fast students arrive.
    """
    elapsed = min(max(elapsed_seconds, 0.0), MAX_BURST_SECONDS)
    budget = min(carry + admit_per_second * elapsed, admit_per_second * MAX_BURST_SECONDS)
    budget = max(budget, 0.0)
    if not healthy:
        budget = 0.0
    grant = max(min(math.floor(budget), max_active - active, waiting), 0)
    rate = admission_rate
    if waiting > grant and elapsed > 0:
        weight = 1.0 - math.exp(-elapsed / RATE_WINDOW_SECONDS)
        rate += weight * (grant / elapsed - rate)
    return AdmissionPlan(grant=grant, carry=budget - grant, admission_rate=rate)
