"""Live values for operators. Every metric is defined here, once, and exported at
``GET /metrics`` in the Prometheus text format.

Jobs report through ports and never import Prometheus: the waiting room through
:class:`RoomGauges` (the ``RoomMetrics`` port), the seat-hint keeper through
:class:`SectionGauges` (the ``SectionMetrics`` port). What only the node knows (outbox,
replica lag, connection pool) is read by :class:`NodeGauges` when scraped, at most every
:data:`NODE_REFRESH_SECONDS` for what costs a query.

Several server worker processes share one port, so a scrape reaches one of them. When
``PROMETHEUS_MULTIPROC_DIR`` is set (``rushgate serve`` sets it, see the README) every
process writes its values to files there and :func:`render` adds them up: counters and
histograms are summed (those of exited workers included, so nothing counted is lost),
per-process gauges are summed over live processes (``livesum``), and values that are the
same for the whole node (queue, sections, outbox, replica) take the live process's most
recently written value (``livemostrecent``: a value that fell must fall, which ``max``
would hide behind another worker's older one).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.engine import Engine as SyncEngine

from rushgate.domain.clock import Clock
from rushgate.domain.waiting_room import RoomPhase, RoomSnapshot
from rushgate.services.ports.enrollment import SectionView
from rushgate.services.ports.outbox import OutboxStats

log = logging.getLogger("rushgate.metrics")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST
# Queries behind node gauges (outbox, replica lag) run at most this often per process.
NODE_REFRESH_SECONDS = 10.0
# Every process writes its connection pool's gauges this often (memory only, no query).
POOL_SAMPLE_SECONDS = 2.0
# The route label of a request no route matched (404): never the raw path.
UNMATCHED = "unmatched"

# --- HTTP -------------------------------------------------------------------------------

HTTP_REQUESTS = Counter(
    "rushgate_http_requests",
    "HTTP requests answered, by route template, method and status.",
    ["route", "method", "status"],
)
HTTP_DURATION = Histogram(
    "rushgate_http_request_duration_seconds",
    "Time from a request's arrival to the end of its response, by route template.",
    ["route", "method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
ENROLL_OUTCOMES = Counter(
    "rushgate_enroll_outcomes",
    "Enroll requests by outcome: enrolled, waitlisted, replayed (an Idempotency-Key "
    "retry), or the refusal's code.",
    ["outcome"],
)

RATE_LIMITED = Counter(
    "rushgate_rate_limited",
    "Requests refused by a rate limit (429), by budget.",
    ["budget"],
)
RATE_LIMIT_FAIL_OPEN = Counter(
    "rushgate_rate_limit_fail_open",
    "Requests let through unchecked because the rate-limit backend failed, by budget.",
    ["budget"],
)

# --- waiting room (from the admitter, on the node that holds its lock) -------------------

QUEUE_WAITING = Gauge(
    "rushgate_queue_waiting",
    "Tickets waiting in the term's room.",
    ["term"],
    multiprocess_mode="livemostrecent",
)
QUEUE_ACTIVE = Gauge(
    "rushgate_queue_active",
    "Admitted students whose admission is still active.",
    ["term"],
    multiprocess_mode="livemostrecent",
)
QUEUE_ETA = Gauge(
    "rushgate_queue_eta_seconds",
    "Expected wait of the last ticket in line.",
    ["term"],
    multiprocess_mode="livemostrecent",
)
QUEUE_PAUSED = Gauge(
    "rushgate_queue_paused",
    "1 while admission to the term's room is paused.",
    ["term"],
    multiprocess_mode="livemostrecent",
)
QUEUE_OPEN = Gauge(
    "rushgate_queue_open",
    "1 while the term's room admits (opened, not closed); 0 in the pre-queue and after.",
    ["term"],
    multiprocess_mode="livemostrecent",
)
QUEUE_ADMITTED = Counter(
    "rushgate_queue_admitted",
    "Tickets admitted, counted by the admitter tick that granted them.",
    ["term"],
)

# --- sections (from the seat-hint keeper's rebuilds, on the node that holds its lock) ----

SECTION_ENROLLED = Gauge(
    "rushgate_section_enrolled",
    "Enrolled students, as of the latest seat-hint rebuild.",
    ["term", "section"],
    multiprocess_mode="livemostrecent",
)
SECTION_CAPACITY = Gauge(
    "rushgate_section_capacity",
    "Seats of the section.",
    ["term", "section"],
    multiprocess_mode="livemostrecent",
)
SECTION_SEATS_LEFT = Gauge(
    "rushgate_section_seats_left",
    "Seats left, as of the latest seat-hint rebuild.",
    ["term", "section"],
    multiprocess_mode="livemostrecent",
)

# --- node ---------------------------------------------------------------------------------

OUTBOX_PENDING = Gauge(
    "rushgate_outbox_pending",
    "Outbox messages not delivered yet.",
    multiprocess_mode="livemostrecent",
)
OUTBOX_DEAD = Gauge(
    "rushgate_outbox_dead",
    "Outbox messages given up on (dead-lettered).",
    multiprocess_mode="livemostrecent",
)
OUTBOX_OLDEST_AGE = Gauge(
    "rushgate_outbox_oldest_pending_age_seconds",
    "Age of the oldest pending outbox message (0 when none is pending).",
    multiprocess_mode="livemostrecent",
)
REPLICA_LAG = Gauge(
    "rushgate_replica_lag_seconds",
    "How far the read replica's replay is behind (absent without a replica).",
    multiprocess_mode="livemostrecent",
)
DB_POOL_IN_USE = Gauge(
    "rushgate_db_pool_in_use",
    "Primary database connections checked out, summed over the node's processes.",
    multiprocess_mode="livesum",
)
DB_POOL_SIZE = Gauge(
    "rushgate_db_pool_size",
    "Primary database pool size, summed over the node's processes.",
    multiprocess_mode="livesum",
)
DB_QUERY_DURATION = Histogram(
    "rushgate_db_query_duration_seconds",
    "Time from sending a statement to the database until its result is back, by engine.",
    ["engine"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
DB_PING = Gauge(
    "rushgate_db_ping_seconds",
    "Round trip of a SELECT 1 to the primary, when scraped (at most every 10 s).",
    multiprocess_mode="livemostrecent",
)
REDIS_PING = Gauge(
    "rushgate_redis_ping_seconds",
    "Round trip of a PING to Redis, when scraped (absent with in-process coordination).",
    multiprocess_mode="livemostrecent",
)
BUILD_INFO = Gauge(
    "rushgate_build_info",
    "Always 1; the version is the label.",
    ["version"],
    multiprocess_mode="max",
)


# --- exposition -----------------------------------------------------------------------------


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


def registry() -> CollectorRegistry:
    """What ``/metrics`` exposes: this process's registry, or with several workers a
    registry that reads every process's files."""
    path = multiprocess_dir()
    if path is None:
        return REGISTRY
    shared = CollectorRegistry()
    multiprocess.MultiProcessCollector(shared, path=path)  # type: ignore[no-untyped-call]
    return shared


def render(source: CollectorRegistry) -> bytes:
    return generate_latest(source)


def process_started(version: str) -> None:
    """At the start of a serving process: the build info, and in multiprocess mode the
    live gauges of workers that died without cleaning up (SIGKILL, OOM) dropped, so
    their values stop counting."""
    BUILD_INFO.labels(version=version).set(1)
    path = multiprocess_dir()
    if path is None:
        return
    for pid in _dead_pids(Path(path)):
        with contextlib.suppress(OSError):
            multiprocess.mark_process_dead(pid, path)  # type: ignore[no-untyped-call]


def process_exiting() -> None:
    """At a serving process's exit (multiprocess mode): its live gauges stop counting.
    Its counters and histograms stay, so the node's totals never go back."""
    path = multiprocess_dir()
    if path is not None:
        with contextlib.suppress(OSError):
            multiprocess.mark_process_dead(os.getpid(), path)  # type: ignore[no-untyped-call]


def _dead_pids(path: Path) -> set[int]:
    pids: set[int] = set()
    for file in path.glob("gauge_live*_*.db"):
        with contextlib.suppress(ValueError):
            pids.add(int(file.stem.rpartition("_")[2]))
    return {pid for pid in pids if not _alive(pid)}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --- the ports' implementations ----------------------------------------------------------------


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
    """Queue length, admitted per second, active and ETA, per term (``RoomMetrics``)."""

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
        term = snapshot.term
        QUEUE_WAITING.labels(term=term).set(snapshot.waiting)
        QUEUE_ACTIVE.labels(term=term).set(snapshot.active)
        QUEUE_ETA.labels(term=term).set(eta_tail_seconds)
        QUEUE_PAUSED.labels(term=term).set(1 if snapshot.paused else 0)
        QUEUE_OPEN.labels(term=term).set(1 if snapshot.phase is RoomPhase.OPEN else 0)
        if granted > 0:
            QUEUE_ADMITTED.labels(term=term).inc(granted)

    def rooms(self) -> dict[str, RoomGauge]:
        return dict(self._rooms)


class SectionGauges:
    """Seats per section from each seat-hint rebuild (``SectionMetrics``)."""

    def observe_sections(self, term_code: str, sections: Sequence[SectionView]) -> None:
        for section in sections:
            labels = {"term": term_code, "section": section.section_id}
            SECTION_ENROLLED.labels(**labels).set(section.enrolled)
            SECTION_CAPACITY.labels(**labels).set(section.capacity)
            SECTION_SEATS_LEFT.labels(**labels).set(section.seats_left)


class NodeGauges:
    """Outbox, replica lag and connection pool of this process.

    The outbox and the replica cost a query each: they are read when scraped, at most
    every :data:`NODE_REFRESH_SECONDS` (a failure is logged and retried at the next
    refresh; the gauges keep their last value). The pool is read from memory, when
    scraped and every :data:`POOL_SAMPLE_SECONDS` by :meth:`run`."""

    def __init__(
        self,
        *,
        outbox_stats: Callable[[], Awaitable[OutboxStats]],
        replica_lag: Callable[[], Awaitable[float | None]],
        pool: Callable[[], tuple[int, int]],
        clock: Clock,
        db_ping: Callable[[], Awaitable[None]] | None = None,
        redis_ping: Callable[[], Awaitable[None]] | None = None,
        refresh_seconds: float = NODE_REFRESH_SECONDS,
    ) -> None:
        self._outbox_stats = outbox_stats
        self._replica_lag = replica_lag
        self._pool = pool
        self._clock = clock
        self._pings = [
            (g, ping) for g, ping in ((DB_PING, db_ping), (REDIS_PING, redis_ping)) if ping
        ]
        self._every = refresh_seconds
        self._refreshed_at = -math.inf

    def sample_pool(self) -> None:
        in_use, size = self._pool()
        DB_POOL_IN_USE.set(in_use)
        DB_POOL_SIZE.set(size)

    async def run(self, interval_seconds: float = POOL_SAMPLE_SECONDS) -> None:
        """Keep the pool gauges of this process current. A scrape reaches one worker
        process; the others' pool values come from their files, written here."""
        while True:
            try:
                self.sample_pool()
            except Exception:
                log.warning("cannot sample the connection pool for metrics", exc_info=True)
            await asyncio.sleep(interval_seconds)

    async def refresh(self) -> None:
        self.sample_pool()
        if time.monotonic() - self._refreshed_at < self._every:
            return
        self._refreshed_at = time.monotonic()
        try:
            stats = await self._outbox_stats()
        except Exception:  # a scrape must answer even while the database is down
            log.warning("cannot read the outbox stats for metrics", exc_info=True)
        else:
            OUTBOX_PENDING.set(stats.pending)
            OUTBOX_DEAD.set(stats.dead)
            age = 0.0
            if stats.oldest_pending_at is not None:
                age = max((self._clock.now() - stats.oldest_pending_at).total_seconds(), 0.0)
            OUTBOX_OLDEST_AGE.set(age)
        try:
            lag = await self._replica_lag()
        except Exception:
            log.warning("cannot read the replica lag for metrics", exc_info=True)
        else:
            if lag is not None:
                REPLICA_LAG.set(lag)
        for gauge, ping in self._pings:
            started = time.perf_counter()
            try:
                await ping()
            except Exception:
                log.warning("cannot ping for metrics", exc_info=True)
                gauge.set(math.nan)  # no answer: the panel shows a gap, not a stale value
            else:
                gauge.set(time.perf_counter() - started)


def time_queries(engine: SyncEngine, label: str) -> None:
    """Time every statement ``engine`` runs into ``rushgate_db_query_duration_seconds``
    (``engine`` label: ``primary``, ``replica``): the driver's round trip, without the
    pool wait.

    Statements through SQLAlchemy are timed by its cursor events (two clock reads and one
    observation each). The PostgreSQL hot path talks to asyncpg directly (the enroll
    transaction), which SQLAlchemy never sees: asyncpg's own query logger times those, on
    every connection the pool opens. (SQLAlchemy runs its statements as asyncpg prepared
    statements, which that logger does not report, so nothing is counted twice.)"""
    child = DB_QUERY_DURATION.labels(engine=label)
    clock = time.perf_counter

    @event.listens_for(engine, "before_cursor_execute")
    def _started(conn: Connection, *_: object) -> None:
        conn.info["rushgate_query_started"] = clock()

    @event.listens_for(engine, "after_cursor_execute")
    def _finished(conn: Connection, *_: object) -> None:
        started = conn.info.pop("rushgate_query_started", None)
        if started is not None:
            child.observe(clock() - started)

    if engine.dialect.driver != "asyncpg":
        return

    def _observe(record: Any) -> None:
        child.observe(record.elapsed)

    @event.listens_for(engine, "connect")
    def _connected(dbapi_connection: Any, _: object) -> None:
        driver = getattr(dbapi_connection, "driver_connection", None)
        if driver is not None:
            driver.add_query_logger(_observe)


# --- recording on the hot path --------------------------------------------------------------

# Methods counted under their name; anything else a client sends counts as "other".
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class RequestMetrics:
    """Counts requests and observes their duration. The labelled children are looked up
    once per (route, method, status) and kept: routes are templates, statuses few."""

    def __init__(self) -> None:
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        children = self._children.get(key)
        if children is None:
            label = method if method in _METHODS else "other"
            children = (
                HTTP_REQUESTS.labels(route=route, method=label, status=str(status)),
                HTTP_DURATION.labels(route=route, method=label),
            )
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)


class RateLimitCounters:
    """Refusals and fail-open passes of the rate limits (``RateLimitMetrics``)."""

    def __init__(self) -> None:
        self._limited: dict[str, Counter] = {}
        self._failed_open: dict[str, Counter] = {}

    def limited(self, budget: str) -> None:
        child = self._limited.get(budget)
        if child is None:
            child = self._limited[budget] = RATE_LIMITED.labels(budget=budget)
        child.inc()

    def failed_open(self, budget: str) -> None:
        child = self._failed_open.get(budget)
        if child is None:
            child = self._failed_open[budget] = RATE_LIMIT_FAIL_OPEN.labels(budget=budget)
        child.inc()


_OUTCOMES: dict[str, Counter] = {}


def count_enroll_outcome(outcome: str) -> None:
    child = _OUTCOMES.get(outcome)
    if child is None:
        child = _OUTCOMES[outcome] = ENROLL_OUTCOMES.labels(outcome=outcome)
    child.inc()
