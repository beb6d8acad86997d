"""The virtual waiting room: join, status, leave, and the admission tick.

How it fits together
--------------------
* ``join`` hands out one ticket per student and term (an atomic counter in the store).
* One node at a time (a cluster-wide lock with expiry, fencing every write) runs the
  **admitter**: every tick it moves each open room's serving counter by the admission
  budget (``admit_per_second``, capped by ``max_active`` and paused while the database is
  slow), then publishes one **room snapshot** on the bus.
* Every node keeps the latest snapshot per term (:class:`RoomFeed`) and answers status
  requests and SSE streams from it with pure arithmetic (``place_of``): the per-request
  cost is one ticket lookup, not a ranking.
* An admitted student gets a signed token bound to (student, term, ticket) that lasts
  until their admission expires; enrolling checks it (see ``EnrollmentService``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from rushgate.domain.clock import Clock
from rushgate.domain.errors import NotAdmitted, NotFound, NotInQueue
from rushgate.domain.model import RegistrationWindow
from rushgate.domain.waiting_room import (
    Place,
    QueueState,
    RoomPhase,
    RoomSnapshot,
    place_of,
)
from rushgate.services.ports.registry import Term
from rushgate.services.ports.storage import ReadModel
from rushgate.services.ports.waiting_room import (
    AdmissionClaims,
    AdmissionSigner,
    QueueCounters,
    RoomBus,
    WaitingRoomStore,
)

log = logging.getLogger("rushgate.waiting_room")

SEED_BYTES = 16
STREAM_MIN_INTERVAL_SECONDS = 1.0


def room_opens_at(window: RegistrationWindow) -> datetime:
    """The room opens with the earliest class year: everyone before it is pre-queue."""
    return min([window.opens_at, *window.class_year_opens_at.values()])


def phase_at(window: RegistrationWindow, now: datetime) -> RoomPhase:
    if now >= window.closes_at:
        return RoomPhase.CLOSED
    if now < room_opens_at(window):
        return RoomPhase.PREQUEUE
    return RoomPhase.OPEN


def milliseconds(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def snapshot_of(
    term: Term, counters: QueueCounters, now: datetime, *, paused: bool = False
) -> RoomSnapshot:
    return RoomSnapshot(
        term=term.code,
        phase=phase_at(term.window, now),
        issued=counters.issued,
        serving=counters.serving,
        prequeue_size=counters.prequeue_size,
        seed=counters.seed,
        active=counters.active,
        admission_rate=counters.admission_rate,
        admit_per_second=term.admit_per_second,
        paused=paused,
        opens_at=room_opens_at(term.window),
        taken_at=now,
    )


class TermDirectory:
    """Term settings by code, cached for a few seconds: every enroll and queue request
    reads them, and terms change rarely (creating one is the only write)."""

    def __init__(self, reads: Callable[[], ReadModel], *, ttl_seconds: float = 5.0) -> None:
        self._reads = reads
        self._ttl = ttl_seconds
        self._terms: dict[str, tuple[float, Term]] = {}
        self._all: tuple[float, list[Term]] | None = None

    async def get(self, code: str) -> Term:
        """Raises ``NotFound``."""
        cached = self._terms.get(code)
        if cached is not None and time.monotonic() - cached[0] < self._ttl:
            return cached[1]
        term = await self._reads().term(code)
        self._terms[code] = (time.monotonic(), term)
        return term

    def forget(self) -> None:
        """Read afresh on next use (a term was just created on this node)."""
        self._terms.clear()
        self._all = None

    async def all(self) -> list[Term]:
        if self._all is None or time.monotonic() - self._all[0] >= self._ttl:
            self._all = (time.monotonic(), await self._reads().terms())
        return self._all[1]


class RoomFeed:
    """The latest snapshot of each room on this node, and a wake-up for SSE streams."""

    def __init__(self) -> None:
        self._latest: dict[str, tuple[float, RoomSnapshot]] = {}
        self._changed: dict[str, asyncio.Event] = {}

    def put(self, snapshot: RoomSnapshot) -> None:
        current = self._latest.get(snapshot.term)
        if current is not None and current[1].taken_at > snapshot.taken_at:
            return  # an older tick arriving late
        self._latest[snapshot.term] = (time.monotonic(), snapshot)
        event = self._changed.pop(snapshot.term, None)
        if event is not None:
            event.set()

    def fresh(self, term: str, max_age_seconds: float) -> RoomSnapshot | None:
        current = self._latest.get(term)
        if current is None or time.monotonic() - current[0] > max_age_seconds:
            return None
        return current[1]

    async def wait(self, term: str, seconds: float) -> None:
        """Until the next snapshot of ``term`` arrives, or ``seconds`` have passed."""
        event = self._changed.setdefault(term, asyncio.Event())
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await event.wait()

    async def follow(self, bus: RoomBus) -> None:
        """Feed from the bus until cancelled (a background task on every node)."""
        async for snapshot in bus.listen():
            self.put(snapshot)


@dataclass(frozen=True, slots=True)
class Standing:
    """A student's place, with their admission token once admitted."""

    term: str
    place: Place
    admission_token: str | None = None
    admission_expires_at: datetime | None = None


class WaitingRoomService:
    def __init__(
        self,
        store: WaitingRoomStore,
        signer: AdmissionSigner,
        terms: TermDirectory,
        feed: RoomFeed,
        clock: Clock,
        *,
        tick_seconds: float,
    ) -> None:
        self._store = store
        self._signer = signer
        self._terms = terms
        self._feed = feed
        self._clock = clock
        # A snapshot older than a few ticks means no admitter is publishing (yet): read
        # the counters instead, so status stays right, only costlier.
        self._max_age = max(3 * tick_seconds, 1.0)

    async def _room_term(self, term_code: str) -> Term:
        term = await self._terms.get(term_code)
        if not term.waiting_room_enabled:
            raise NotFound("this term has no waiting room", term=term_code)
        return term

    async def room(self, term: Term) -> RoomSnapshot:
        now = self._clock.now()
        snapshot = self._feed.fresh(term.code, self._max_age)
        undrawn = snapshot is not None and snapshot.prequeue_size is None
        if snapshot is None or (undrawn and phase_at(term.window, now) is RoomPhase.OPEN):
            # No recent tick, or the room just opened and the lottery may be drawn since.
            snapshot = snapshot_of(term, await self._store.counters(term.code), now)
            self._feed.put(snapshot)
        return snapshot

    async def join(self, *, student_pk: int, term_code: str) -> Standing:
        term = await self._room_term(term_code)
        now = self._clock.now()
        phase = phase_at(term.window, now)
        if phase is RoomPhase.CLOSED:
            return Standing(term.code, _closed(0, "window_closed"))
        # Joining after opening closes the pre-queue first (if no tick has yet), so this
        # ticket is ordered after every pre-queue ticket.
        freeze = secrets.token_bytes(SEED_BYTES) if phase is RoomPhase.OPEN else None
        ticket = await self._store.join(term.code, student_pk, freeze_seed=freeze)
        return await self._standing(term, student_pk, ticket, rejoin=True)

    async def status(self, *, student_pk: int, term_code: str) -> Standing:
        term = await self._room_term(term_code)
        ticket = await self._store.ticket(term.code, student_pk)
        if ticket is None:
            if phase_at(term.window, self._clock.now()) is RoomPhase.CLOSED:
                # What join answered after closing: the room is closed, not "join first".
                return Standing(term.code, _closed(0, "window_closed"))
            raise NotInQueue("join the waiting room first", term=term_code)
        return await self._standing(term, student_pk, ticket, rejoin=False)

    async def _standing(
        self, term: Term, student_pk: int, ticket: int, *, rejoin: bool
    ) -> Standing:
        now = self._clock.now()
        if now >= term.window.closes_at:  # the snapshot may be from just before closing
            return Standing(term.code, _closed(ticket, "window_closed"))
        room = await self.room(term)
        place = place_of(ticket, room, now)
        if place.state is not QueueState.ADMITTED:
            return Standing(term.code, place)
        position = room.position_of(ticket)
        assert position is not None
        admission = await self._store.admission(term.code, position)
        expires = (
            None
            if admission is None
            else datetime.fromtimestamp(admission.granted_at_ms / 1000, UTC)
            + timedelta(seconds=term.admission_ttl_seconds)
        )
        if expires is None or expires <= now:
            if not rejoin:
                return Standing(term.code, _closed(ticket, "admission_expired"))
            # An expired admission joins again at the back of the line.
            ticket = await self._store.replace_ticket(term.code, student_pk, old=ticket)
            return await self._standing(term, student_pk, ticket, rejoin=False)
        token = self._signer.issue(AdmissionClaims(student_pk, term.code, ticket, expires))
        return Standing(term.code, place, token, expires)

    async def leave(self, *, student_pk: int, term_code: str) -> None:
        """Give up a place or an admission: the ticket and its token stop counting."""
        term = await self._room_term(term_code)
        ticket = await self._store.ticket(term.code, student_pk)
        if ticket is None:
            raise NotInQueue("you are not in this waiting room", term=term_code)
        room = await self.room(term)
        position = room.position_of(ticket)
        admitted = position is not None and position <= room.serving
        await self._store.leave(
            term.code,
            student_pk,
            ticket=ticket,
            position=position if admitted else None,
            revoke_ms=term.admission_ttl_seconds * 1000,
        )

    async def stream(
        self,
        *,
        student_pk: int,
        term_code: str,
        heartbeat_seconds: float,
        stop: Callable[[], bool] = lambda: False,
    ) -> AsyncIterator[Standing | None]:
        """The student's standing now and after every tick that changes it; ``None`` as a
        heartbeat when nothing changed for ``heartbeat_seconds``. Ends once admitted or
        closed (the client has what it waited for), or soon after ``stop()`` turns true
        (the node is shutting down: the client reconnects elsewhere)."""
        term = await self._room_term(term_code)
        ticket = await self._store.ticket(term.code, student_pk)
        if ticket is None:
            raise NotInQueue("join the waiting room first", term=term_code)
        last: Place | None = None
        sent_at = -math.inf
        while True:
            standing = await self._standing(term, student_pk, ticket, rejoin=False)
            place = standing.place
            if place.state is QueueState.ADMITTED and (
                await self._store.ticket(term.code, student_pk) != ticket
            ):
                # Left (or joined anew) from another tab: this ticket's token is revoked.
                yield Standing(term.code, _closed(ticket, "left"))
                return
            final = place.state in (QueueState.ADMITTED, QueueState.CLOSED)
            changed = last is None or place.state != last.state or place.ahead != last.ahead
            since = time.monotonic() - sent_at
            # At most one event a second unless the state changes: thousands of streams
            # share a node, and a place moving by a few is not news worth a wake-up.
            if (changed and since >= STREAM_MIN_INTERVAL_SECONDS) or final or last is None:
                if place != last or final:
                    last, sent_at = place, time.monotonic()
                    yield standing
                if final:
                    return
            elif since >= heartbeat_seconds:
                sent_at = time.monotonic()
                yield None
            await self._feed.wait(term.code, self._max_age / 2)
            if stop():
                return

    def admitted(self, token: str | None, *, student_pk: int, term_code: str) -> int:
        """The ticket of a valid admission of this student to this term; raises
        ``NotAdmitted`` (revocation is checked with the seat hints, in the same trip)."""
        if not token:
            raise NotAdmitted(
                "this term has a waiting room: enroll with the X-Admission-Token it issued",
                term=term_code,
            )
        claims = self._signer.verify(token)
        if claims.student_pk != student_pk or claims.term != term_code:
            raise NotAdmitted("this admission token was issued to someone else", term=term_code)
        return claims.ticket


def _closed(ticket: int, reason: str) -> Place:
    return Place(QueueState.CLOSED, ticket, None, None, None, 30, reason)
