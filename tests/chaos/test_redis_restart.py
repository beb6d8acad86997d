"""Redis restarts while a waiting room is busy, against real ``rushgate serve`` nodes and a
throwaway ``redis-server`` of the test's own (never the shared one).

What docs/operations.md promises, checked from the outside:

* with the append-only file, every student keeps their ticket and place, the admitted stay
  admitted (the same admission, not a second one), and the admitter carries on;
* without persistence the room starts empty (students join again and get new tickets),
  and the seat hints are rebuilt from the database as soon as Redis answers;
* either way a node answers ``503 coordination_unavailable`` while Redis is down, never
  another 5xx, enrolling keeps working against the database, and it reconnects by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import subprocess
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.concurrency.waiting_room_support import (
    Cluster,
    claims,
    cluster,
    problem_code,
    section,
    serving_seen,
)
from tests.serverproc import free_port
from tests.support import PostgresTemplates, check_invariants, require_service

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

OUTAGE_SECONDS = 2.5
RECONNECT_SECONDS = 20.0


class RedisServer:
    """A ``redis-server`` on a free loopback port, its files in ``directory``."""

    def __init__(self, directory: Path, *, appendonly: bool) -> None:
        self.directory = directory
        self.appendonly = appendonly
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        persistence = (
            ["--appendonly", "yes", "--appendfsync", "always"]
            if self.appendonly
            else ["--appendonly", "no"]
        )
        return [
            binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.directory),
            "--save",
            "",
            *persistence,
            "--logfile",
            str(self.directory / "redis.log"),
        ]

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._proc = subprocess.Popen(
            self.command(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            assert self._proc.poll() is None, self.log_tail()
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                done = subprocess.run(
                    ["redis-cli", "-p", str(self.port), "ping"],
                    capture_output=True,
                    timeout=2,
                    check=False,
                )
                if done.stdout.strip() == b"PONG":
                    return
            time.sleep(0.05)
        raise AssertionError("redis-server did not answer\n" + self.log_tail())

    def stop(self) -> None:
        """SIGTERM: a clean shutdown, which flushes the append-only file first."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        self._proc = None

    def log_tail(self) -> str:
        try:
            return "\n".join((self.directory / "redis.log").read_text().splitlines()[-20:])
        except OSError:
            return "(no redis log)"

    async def astart(self) -> None:
        await asyncio.to_thread(self.start)

    async def astop(self) -> None:
        await asyncio.to_thread(self.stop)


@pytest.fixture
def redis_binary() -> None:
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        require_service("redis-server", "the redis-server and redis-cli binaries are not installed")


@contextlib.contextmanager
def throwaway_redis(directory: Path, *, appendonly: bool) -> Iterator[RedisServer]:
    server = RedisServer(directory, appendonly=appendonly)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextlib.asynccontextmanager
async def database(pg_templates: PostgresTemplates) -> AsyncIterator[str]:
    url = await pg_templates.new_database()
    try:
        yield url
    finally:
        await pg_templates.drop(url)


async def outage(
    nodes: Cluster, redis: RedisServer, busy: Any
) -> list[tuple[str, int, str | None]]:
    """Stop Redis, keep ``busy()`` calling for OUTAGE_SECONDS, start it again on the same
    port and directory; every answer seen meanwhile."""
    seen_before = len(nodes.responses)
    await redis.astop()
    loop = asyncio.get_running_loop()
    until = loop.time() + OUTAGE_SECONDS
    while loop.time() < until:
        await busy()
        await asyncio.sleep(0.1)
    await redis.astart()
    return nodes.responses[seen_before:]


async def until_answering(nodes: Cluster, term: str, student: str) -> float:
    """Seconds until every node answers a status call with 200 again (503s meanwhile)."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    for node in range(len(nodes.servers)):
        while True:
            r = await nodes.status(term, student, node=node)
            if r.status_code == 200:
                break
            assert (r.status_code, problem_code(r)) == (503, "coordination_unavailable"), r.text
            assert r.headers["retry-after"] == "2"
            assert loop.time() - started < RECONNECT_SECONDS, f"node{node} did not reconnect"
            await asyncio.sleep(0.1)
    return loop.time() - started


async def crowd(nodes: Cluster, term: str, students: list[str]) -> None:
    """Everyone asks for their status at once on every node: each node's Redis pool
    grows to dozens of connections."""
    await asyncio.gather(
        *(nodes.status(term, s, node=n) for s in students for n in range(len(nodes.servers)))
    )


def only_unavailable(answers: list[tuple[str, int, str | None]]) -> list[str]:
    """Every server error that is not a 503 coordination_unavailable."""
    return [
        f"{what}: {status} {code}"
        for what, status, code in answers
        if status >= 500 and (status, code) != (503, "coordination_unavailable")
    ]


def unavailable_once_back(nodes: Cluster, since: int) -> list[str]:
    return [
        f"{what}: {status} {code}"
        for what, status, code in nodes.responses[since:]
        if status == 503
    ]


async def left_nothing_behind(nodes: Cluster, url: str, late: list[str]) -> None:
    """After the outage: the data is consistent, every server error was a 503
    coordination_unavailable, no node logged an unhandled error, and none answered 503
    once every node was answering again (``late``)."""
    await check_invariants(url)
    assert not only_unavailable(nodes.responses), only_unavailable(nodes.responses)
    for server in nodes.servers:
        assert "unhandled error" not in server.log_text(), server.log_tail(80)
    assert not late, STALE.format(n=len(late), sample=late[:5])


STALE = (
    "{n} calls answered 503 coordination_unavailable after every node had answered again "
    "(Redis was up): {sample}"
)


# --- with the append-only file ---------------------------------------------------------

LINE = 40
RATE = 4


async def test_with_aof_every_ticket_and_admission_survives_a_restart(
    redis_binary: None, pg_templates: PostgresTemplates, tmp_path: Path
) -> None:
    """40 students in line on two nodes, about a third admitted; Redis restarts with its
    append-only file. Everyone keeps their ticket, the admitted keep the very same
    admission (same expiry: nobody is admitted twice), serving does not go back, the ticket
    counter goes on from 40, and the admitter lets the rest in."""
    with throwaway_redis(tmp_path / "redis", appendonly=True) as redis:
        async with (
            database(pg_templates) as url,
            cluster(
                tmp_path,
                url,
                nodes=2,
                workers=1,
                tick_ms=100,
                redis_url=redis.url,
                check_logs=False,
            ) as nodes,
        ):
            students = [f"aof{i:03d}" for i in range(LINE + 2)]
            line, newcomer, outsider = students[:LINE], students[LINE], students[LINE + 1]
            await nodes.create_students(students)
            await nodes.login(students)
            term = await nodes.create_term("aof", admit_per_second=RATE)
            await nodes.add_sections(term, [section("AOF-01", capacity=100)])

            for i, student in enumerate(line):
                r = await nodes.join(term, student, node=i % 2)
                assert r.json()["ticket"] == i + 1, r.text
            # Let a part of the line in (4/s), then take a picture of everyone.
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 20
            while (serving_seen((await nodes.status(term, line[-1])).json()) or 0) < 10:
                assert loop.time() < deadline, "the admitter did not start"
                await asyncio.sleep(0.1)
            await crowd(nodes, term, line)
            before = {s: (await nodes.status(term, s, node=1)).json() for s in line}
            admitted_before = {s for s, b in before.items() if b["state"] == "admitted"}
            assert 10 <= len(admitted_before) < LINE - 5, len(admitted_before)
            serving_before = max(
                [serving_seen(b) or 0 for b in before.values()] + [len(admitted_before)]
            )
            enrolling = sorted(admitted_before)[0]
            token = before[enrolling]["admission_token"]

            enrolled_during: list[int] = []

            async def busy() -> None:
                for node in range(2):
                    await nodes.status(term, line[-1], node=node)
                    await nodes.join(term, newcomer, node=node)
                    await nodes.call(node, "GET", "/readyz", what="readyz")
                if enrolled_during[-1:] != [201]:
                    r = await nodes.enroll(term, enrolling, "AOF-01", token, node=1)
                    enrolled_during.append(r.status_code)

            during = await outage(nodes, redis, busy)
            reconnected = await until_answering(nodes, term, line[0])
            back = len(nodes.responses)
            # From here on a 503 is retried (and counted, checked at the end).
            nodes.retry_unavailable_seconds = 10.0

            assert not only_unavailable(during), only_unavailable(during)
            statuses = Counter((what, status) for what, status, _ in during)
            assert statuses["status", 503] > 0, f"Redis was never missed: {statuses}"
            assert statuses["join", 503] > 0, f"Redis was never missed: {statuses}"
            # docs/operations.md: enrolling keeps working against the database.
            assert enrolled_during[-1:] == [201], enrolled_during

            await crowd(nodes, term, line)
            after = {}
            for student in line:
                r = await nodes.status(term, student, node=0)
                assert r.status_code == 200, (student, r.text)
                after[student] = r.json()
                assert after[student]["ticket"] == before[student]["ticket"], student
            for student in admitted_before:
                got, had = after[student], before[student]
                assert got["state"] == "admitted", (student, got)
                # the same admission: same ticket in the token, same expiry (granted once)
                assert claims(got["admission_token"])["tkt"] == had["ticket"], student
                assert got["admission_expires_at"] == had["admission_expires_at"], (got, had)
            serving_after = max(
                [serving_seen(b) or 0 for b in after.values()]
                + [sum(b["state"] == "admitted" for b in after.values())]
            )
            assert serving_after >= serving_before, (serving_before, serving_after)
            # The ticket counter survived: the next newcomer comes after the whole line.
            r = await nodes.join(term, newcomer, node=1)
            assert r.json()["ticket"] == LINE + 1, r.text
            r = await nodes.join(term, outsider, node=0)
            assert r.json()["ticket"] == LINE + 2, r.text
            assert (await nodes.join(term, line[5], node=1)).json()["ticket"] == 6

            # The admitter resumes: everyone gets in, each with their own ticket, once.
            final = {
                s: await nodes.wait_admitted(term, s, timeout=30, node=i % 2)
                for i, s in enumerate([*line, newcomer, outsider])
            }
            token_tickets = [claims(b["admission_token"])["tkt"] for b in final.values()]
            assert sorted(token_tickets) == list(range(1, LINE + 3))
            for student in admitted_before:
                assert (
                    final[student]["admission_expires_at"]
                    == before[student]["admission_expires_at"]
                ), student
            roster = await nodes.roster(term, "AOF-01")
            assert [e["student_id"] for e in roster["enrolled"]] == [enrolling]
            late = unavailable_once_back(nodes, back)
            print(
                f"\nAOF restart: {len(admitted_before)} admitted before, serving "
                f"{serving_before} -> {serving_after}; nodes answered again "
                f"{reconnected:.2f}s after Redis was back; outage answers {dict(statuses)}; "
                f"503s after that: {len(late)}"
            )
            await left_nothing_behind(nodes, url, late)


# --- without persistence ---------------------------------------------------------------


async def test_without_persistence_the_room_starts_empty_and_hints_are_rebuilt(
    redis_binary: None, pg_templates: PostgresTemplates, tmp_path: Path
) -> None:
    """A section fills up and its seat hint says so; Redis restarts empty. The hint is
    rebuilt from the database within seconds of Redis answering (seen from outside: a
    student who holds a seat there gets ``section_full`` from the hint, where the database
    would say ``already_enrolled``). The queue starts empty: everyone joins again, with new
    tickets from 1, and the new line is admitted."""
    with throwaway_redis(tmp_path / "redis", appendonly=False) as redis:
        async with (
            database(pg_templates) as url,
            cluster(
                tmp_path,
                url,
                nodes=1,
                workers=2,
                tick_ms=100,
                redis_url=redis.url,
                check_logs=False,
            ) as nodes,
        ):
            students = ["np-x", "np-y", "np-z", "np-w"]
            x, y, z, w = students
            await nodes.create_students(students)
            await nodes.login(students)
            term = await nodes.create_term("volatile", admit_per_second=20)
            await nodes.add_sections(
                term, [section("FULL-01", capacity=2), section("OPEN-01", capacity=50, day="TUE")]
            )
            tokens = {}
            for i, student in enumerate([x, y, z]):
                assert (await nodes.join(term, student)).json()["ticket"] == i + 1
            for student in (x, y, z):
                admitted = await nodes.wait_admitted(term, student, timeout=15)
                tokens[student] = admitted["admission_token"]
            assert (await nodes.enroll(term, x, "FULL-01", tokens[x])).status_code == 201
            assert (await nodes.enroll(term, y, "FULL-01", tokens[y])).status_code == 201

            # The probe: x holds a FULL-01 seat, so the database answers x with
            # already_enrolled; section_full can only come from a seat hint saying "full".
            async def probe() -> tuple[int, str | None]:
                r = await nodes.enroll(term, x, "FULL-01", tokens[x])
                return r.status_code, problem_code(r)

            for _ in range(10):
                r = await nodes.enroll(term, z, "FULL-01", tokens[z])  # teaches the hint
                assert (r.status_code, problem_code(r)) == (409, "section_full"), r.text
                if await probe() == (409, "section_full"):
                    break
            else:
                raise AssertionError("the seat hint never said FULL-01 was full")
            await crowd(nodes, term, [x, y, z] * 10)

            async def busy() -> None:
                await nodes.status(term, x)
                await nodes.join(term, w)
                await nodes.call(0, "GET", "/readyz", what="readyz")

            during = await outage(nodes, redis, busy)
            assert not only_unavailable(during), only_unavailable(during)

            # Redis is back, empty. Before anyone enrolls (which could teach the hint
            # again), the probe must find FULL-01 full: the node rebuilt the hints.
            loop = asyncio.get_running_loop()
            started = loop.time()
            answers = []
            while True:
                got = await probe()
                answers.append(got)
                if got == (409, "section_full"):
                    break
                assert got == (409, "already_enrolled"), got
                assert loop.time() - started < 10, f"hints not rebuilt: {Counter(answers)}"
                await asyncio.sleep(0.1)
            rebuilt_after = loop.time() - started

            # The queue starts empty: joining again starts the tickets over.
            r = await until_joined(nodes, term, w)
            assert r.json()["ticket"] == 1, r.json()
            back = len(nodes.responses)
            nodes.retry_unavailable_seconds = 10.0
            await crowd(nodes, term, [w] * 30)
            for student in (x, y, z):
                r = await nodes.status(term, student)
                assert (r.status_code, problem_code(r)) == (404, "not_in_queue"), r.text
            assert (await nodes.join(term, z)).json()["ticket"] == 2  # was 3
            assert (await nodes.join(term, x)).json()["ticket"] == 3  # was 1
            # The new line is admitted afresh and enrolls.
            fresh = await nodes.wait_admitted(term, w, timeout=15)
            assert claims(fresh["admission_token"])["tkt"] == 1
            r = await nodes.enroll(term, w, "OPEN-01", fresh["admission_token"])
            assert r.status_code == 201, r.text
            r = await nodes.enroll(term, w, "FULL-01", fresh["admission_token"])
            assert (r.status_code, problem_code(r)) == (409, "section_full"), r.text
            for student in (z, x):
                assert (await nodes.wait_admitted(term, student, timeout=15))["ticket"] in {2, 3}

            roster = await nodes.roster(term, "FULL-01")
            assert sorted(e["student_id"] for e in roster["enrolled"]) == [x, y]
            late = unavailable_once_back(nodes, back)
            print(
                f"\nrestart without persistence: hints rebuilt {rebuilt_after:.2f}s after "
                f"Redis was back; probe answers {dict(Counter(answers))}; "
                f"503s after the node answered again: {len(late)}"
            )
            await left_nothing_behind(nodes, url, late)


async def until_joined(nodes: Cluster, term: str, student: str) -> httpx.Response:
    """A join, retried while the node answers 503 (it reconnects by itself)."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    while True:
        r = await nodes.join(term, student)
        if r.status_code == 200:
            return r
        assert (r.status_code, problem_code(r)) == (503, "coordination_unavailable"), r.text
        assert loop.time() - started < RECONNECT_SECONDS, "the node did not reconnect"
        await asyncio.sleep(0.1)
