"""How close do the waiting room's routes come to the HTTP stack's own ceiling?

Run: ``.venv/bin/python bench/waiting_room.py [--duration 10] [--connections 64]``
(or ``.venv/bin/python -m bench.waiting_room``).

Steps: a fresh PostgreSQL database (``RUSHGATE_BENCH_POSTGRES_URL``, default
``postgresql://postgres@127.0.0.1:5432/postgres``, is the server to create it on), migrated.
First, with no rushgate process running, **redis-benchmark** (``-c 50 -P 1``, ``-r`` over
student ids) runs the Redis commands the routes below send, under a key prefix of its own:
``PING`` (Redis's ceiling), ``EVALSHA`` of ``join.lua`` (SCRIPT LOAD from
``src/rushgate/adapters/redis/lua/``, KEYS and ARGV as ``RedisWaitingRoomStore.join`` passes
them, with a 16-byte seed: the room is open), ``HGET`` of a ticket (what status reads) and
``EVALSHA`` of ``precheck.lua`` on a full section, without and with an admission ticket
(the revoked key).

Then ``rushgate serve --workers 2`` on that database and Redis (a unique
``RUSHGATE_REDIS_KEY_PREFIX``), and via the admin API three open terms:

* ``bench-room``: waiting room on, ``admit_per_second=1``, ``max_active=1``: everyone but
  the first ticket waits, so status is the common "waiting" answer;
* ``bench-full``: no waiting room, one section of capacity 1, filled by student 0; student
  1's enroll is then refused by the database, which primes the seat hint;
* ``bench-full-room``: the same with a waiting room that admits everyone at once: the first
  ``--students`` join, are admitted, and enroll with their ``X-Admission-Token``.

``--join-students`` students are created (admin API) and get bearer tokens minted with the
server's own ``JwtSigner`` and secret (the token ``POST /api/v1/auth/token`` returns; tens of
thousands of argon2 logins would take longer than the benchmark). Then, each with ``wrk``
(``--threads`` threads, ``--connections`` connections, ``--duration`` seconds; request ``i``
of thread ``t`` is student ``(i * threads + t) % population``):

1. **healthz**: ``GET /healthz``, the HTTP stack's ceiling (run first and again last;
   ratios are against the mean of the two);
2. **join_new**: ``POST /api/v1/queue/bench-room/join``, every request a student who has no
   ticket yet (the population is ``--join-students``; requests beyond it wrap around and
   are counted as repeats in the notes);
3. **join_repeat**: the same route for the first ``--students`` students, who all hold a
   ticket already (the answer to a reload or a second tab);
4. **status**: ``GET /api/v1/queue/bench-room/status`` for those students;
5. **full_refusal**: ``POST /api/v1/terms/bench-full/enrollments`` into the full section,
   rotating over ``--students`` students: every answer must be ``409 section_full``, given
   by the seat-hint precheck without a database transaction;
6. **full_refusal_room**: the same on ``bench-full-room`` with valid admission tokens
   (admission token check + the precheck's revocation lookup).

wrk's Lua ``response`` hook counts the statuses; any answer other than the expected one
(200, or 409 with ``section_full``) fails the run (exit status 1, after the table). The table
has requests/s, p50/p99 latency, and CPU milliseconds per request of the server processes,
of the PostgreSQL backends of the bench database (≈ 0: these routes never reach it) and of
``redis-server`` (``INFO cpu``); then the ratios to healthz and, last, the headline line.

The load generator, Redis, PostgreSQL and the server share this machine's cores: on a small
machine the rates are a floor, and the ratios and CPU-per-request figures are what to
compare between runs. Everything is stopped, the database dropped and the Redis keys
deleted at the end, also on Ctrl-C, SIGTERM or failure (``--keep`` keeps the server, the
database and the work dir up until Ctrl-C, to look at them or profile the server).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import asyncpg
import httpx
import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # `bench.enroll` and `tests.serverproc` when run as a script

from bench.enroll import (  # noqa: E402
    ADMIN,
    PASSWORD,
    WRK_STATUS_REPORT,
    BackendCpu,
    Result,
    asyncpg_dsn,
    cell,
    create_database,
    create_students,
    db_url,
    drop_database,
    interrupt,
    log,
    run_wrk,
    wrk_result,
)
from tests.serverproc import HttpPool, ServerConfig, ServerProcess  # noqa: E402

from rushgate.adapters.redis.coordination import _Keys  # noqa: E402
from rushgate.adapters.security import JwtSigner  # noqa: E402
from rushgate.adapters.sql.migrate import upgrade  # noqa: E402
from rushgate.domain.clock import SystemClock  # noqa: E402
from rushgate.services.ports.auth import Principal  # noqa: E402
from rushgate.services.ports.seat_hints import MARKER_TTL_MS  # noqa: E402

LUA_DIR = ROOT / "src" / "rushgate" / "adapters" / "redis" / "lua"
SECRET = "rushgate-bench-secret-key-that-is-long-enough-0123456789"
ROOM_TERM, FULL_TERM, FULL_ROOM_TERM = "bench-room", "bench-full", "bench-full-room"
FULL_SECTION = "FULL1"
SEED = "0123456789abcdef"  # the join's pre-queue freeze seed: 16 bytes, like the service's
TARGETS = {
    "join_new": 0.7,
    "join_repeat": 0.7,
    "status": 0.7,
    "full_refusal": 0.8,
    "full_refusal_room": 0.8,
}
OTHERS_WARN = 0.2  # cores of other load that make a run suspect

# One script for every token-rotating case. Token file: one student per line, the bearer
# token and optionally (after a tab) an admission token. Args: token file, population,
# threads, method, path, body, expected status, expected body substring ("" = any).
WRK_ROTATE = """\
local tokens, admissions = {}, {}
local population, nthreads, method, path, body, expect, needle
local counter = 0
statuses = {}
wrapped = 0
local threads = {}
local next_id = 0

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

function init(args)
  for line in io.lines(args[1]) do
    local bearer, admission = line:match("^([^\\t]+)\\t?(.*)$")
    tokens[#tokens + 1] = bearer
    admissions[#admissions + 1] = admission
  end
  population = math.min(tonumber(args[2]), #tokens)
  nthreads = tonumber(args[3])
  method, path, body = args[4], args[5], args[6]
  expect, needle = tonumber(args[7]), args[8]
  if body == "" then body = nil end
end

function request()
  local i = counter * nthreads + id
  counter = counter + 1
  if i >= population then wrapped = wrapped + 1 end
  local k = i % population + 1
  local headers = {["Authorization"] = "Bearer " .. tokens[k]}
  if admissions[k] ~= "" then headers["X-Admission-Token"] = admissions[k] end
  if body then headers["Content-Type"] = "application/json" end
  return wrk.format(method, path, headers, body)
end

function response(status, headers, rbody)
  local key = tostring(status)
  if status == expect and needle ~= "" and not string.find(rbody, needle, 1, true) then
    key = key .. " (body without " .. needle .. ")"
  end
  statuses[key] = (statuses[key] or 0) + 1
end

function done(summary, latency, requests)
  local merged, repeats = {}, 0
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("statuses")) do
      merged[status] = (merged[status] or 0) + n
    end
    repeats = repeats + thread:get("wrapped")
  end
  local parts = {}
  for status, n in pairs(merged) do parts[#parts + 1] = '"' .. status .. '":' .. n end
  io.write(string.format(
    'WRKRESULT {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,' ..
    '"errors":%d,"wrapped":%d,"statuses":{%s}}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    summary.errors.connect + summary.errors.read + summary.errors.write +
    summary.errors.timeout, repeats, table.concat(parts, ",")))
end
"""

# GET /healthz with the same bookkeeping (statuses counted), but wrk's static request.
WRK_HEALTHZ = (
    """\
statuses = {}
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

"""
    + WRK_STATUS_REPORT
)


@dataclass
class Row:
    """One line of the table: an HTTP case (``Result``) or a redis-benchmark command."""

    name: str
    per_s: float
    p50_ms: float | None
    p99_ms: float | None
    server_cpu_ms: float | None = None
    db_cpu_ms: float | None = None
    redis_cpu_ms: float | None = None
    others: float | None = None  # cores busy with processes that are not the bench's
    note: str = ""
    failed: bool = False


# --- Redis -----------------------------------------------------------------------------------


class Machine:
    """What the whole machine is busy with (``/proc/stat``), against what the bench's own
    processes use: the rest is other load (someone's tests, a build), which makes the rates
    of a run incomparable; ``others`` in the table shows it per case, in cores."""

    def __init__(self) -> None:
        self._tick = os.sysconf("SC_CLK_TCK")

    def mark(self) -> tuple[float, float, float]:
        """(wall, machine busy, own) seconds; own = this process + reaped children (wrk,
        redis-benchmark)."""
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        user, nice, system, _idle, _iowait, irq, softirq = fields[:7]
        me, children = (
            resource.getrusage(resource.RUSAGE_SELF),
            resource.getrusage(resource.RUSAGE_CHILDREN),
        )
        own = me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime
        busy = (user + nice + system + irq + softirq) / self._tick
        return time.monotonic(), busy, own

    @staticmethod
    def others(before: tuple[float, float, float], accounted: float) -> float:
        """Cores used by other processes since ``before``; ``accounted`` = CPU seconds of
        the bench's processes that are not this one or its reaped children."""
        wall, busy, own = Machine().mark()
        mine = own - before[2] + accounted
        return max(busy - before[1] - mine, 0.0) / (wall - before[0])


class RedisCpu:
    """CPU seconds redis-server has used (``INFO cpu``: the whole server, its own figure)."""

    def __init__(self, client: redis.Redis) -> None:
        self._client = client

    def seconds(self) -> float:
        info = self._client.info("cpu")
        return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def delete_prefix(client: redis.Redis, prefix: str) -> int:
    pattern = "".join("\\" + c if c in "\\*?[]" else c for c in prefix) + "*"
    doomed = list(client.scan_iter(match=pattern, count=1000))
    for start in range(0, len(doomed), 500):
        client.unlink(*doomed[start : start + 500])
    return len(doomed)


def redis_benchmark(
    args: argparse.Namespace, client: redis.Redis, workdir: Path, prefix: str
) -> list[Row]:
    """The Redis commands of join, status and the enroll precheck, with nothing else running."""
    keys = _Keys(prefix)
    join_sha = client.script_load((LUA_DIR / "join.lua").read_text())
    precheck_sha = client.script_load((LUA_DIR / "precheck.lua").read_text())
    term, full = "bench-raw", "bench-raw-full"
    # The full section's hint, as the precheck finds it once a refusal was recorded.
    client.hset(
        keys.hints(full),
        mapping={
            "rebuild": 1,
            f"g:{FULL_SECTION}": 0,
            f"s:{FULL_SECTION}": 0,
            f"w:{FULL_SECTION}": 0,
            f"h:{FULL_SECTION}": 0,
        },
    )
    ttl = str(MARKER_TTL_MS)
    commands = [
        ("redis PING", ["PING"]),
        # RedisWaitingRoomStore.join: KEYS room, tickets; ARGV student, freeze seed.
        (
            "redis join",
            ["EVALSHA", join_sha, "2", keys.room(term), keys.tickets(term), "__rand_int__", SEED],
        ),
        # RedisWaitingRoomStore.ticket: what status reads per request.
        ("redis status", ["HGET", keys.tickets(term), "__rand_int__"]),
        # RedisSeatHints.precheck without admission ticket and idempotency key.
        (
            "redis precheck",
            ["EVALSHA", precheck_sha, "1", keys.hints(full), FULL_SECTION, "0", "0", ttl],
        ),
        # ... and with an admission ticket: its revoked key is read too.
        (
            "redis precheck+room",
            [
                "EVALSHA",
                precheck_sha,
                "2",
                keys.hints(full),
                keys.revoked(full, "__rand_int__"),  # type: ignore[arg-type]
                FULL_SECTION,
                "1",
                "0",
                ttl,
            ],
        ),
    ]
    url = urlparse(args.redis_url)
    db = (url.path or "/0").lstrip("/") or "0"
    cpu = RedisCpu(client)
    rows = []
    for name, command in commands:
        full_command = [
            args.redis_benchmark,
            "-h",
            url.hostname or "127.0.0.1",
            "-p",
            str(url.port or 6379),
            "--dbnum",
            db,
            "-n",
            str(args.redis_requests),
            "-c",
            str(args.redis_clients),
            "-P",
            "1",
            "-r",
            str(args.join_students),
            "--csv",
            *command,
        ]
        log(f"redis-benchmark: {name} ({args.redis_requests} requests)")
        before, mark = cpu.seconds(), Machine().mark()
        done = subprocess.run(
            full_command, capture_output=True, text=True, timeout=600, check=False
        )
        used = cpu.seconds() - before
        others = Machine.others(mark, used)
        (workdir / f"redis-{name.split()[1].replace('+', '-')}.out").write_text(
            done.stdout + done.stderr
        )
        parsed = list(csv.DictReader(line for line in done.stdout.splitlines() if line))
        if done.returncode != 0 or not parsed or "rps" not in parsed[-1]:
            raise RuntimeError(f"redis-benchmark failed ({done.returncode}):\n{done.stdout}")
        if "ERR" in done.stderr or "NOSCRIPT" in done.stdout + done.stderr:
            raise RuntimeError(f"redis-benchmark: errors from Redis:\n{done.stderr[-2000:]}")
        line = parsed[-1]
        rows.append(
            Row(
                name,
                float(line["rps"]),
                float(line["p50_latency_ms"]),
                float(line["p99_latency_ms"]),
                redis_cpu_ms=1000 * used / args.redis_requests,
                others=others,
                note=f"{args.redis_requests} requests, -c {args.redis_clients} -P 1",
            )
        )
    return rows


# --- seeding ---------------------------------------------------------------------------------


def _term(code: str, now: datetime, room: dict[str, Any] | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "code": code,
        "name": code,
        "opens_at": (now - timedelta(hours=1)).isoformat(),
        "closes_at": (now + timedelta(hours=3)).isoformat(),
    }
    if room is not None:
        body["waiting_room"] = {"enabled": True, "admission_ttl_seconds": 3600, **room}
    return body


FULL_SECTION_BODY = [
    {
        "section_id": FULL_SECTION,
        "course_code": "FULL101",
        "title": "The full section",
        "credits": 0,
        "capacity": 1,
        "waitlist_capacity": 0,
        "meetings": [],
    }
]


def expect(response: httpx.Response, status: int, code: str | None = None) -> None:
    if response.status_code != status or (code and response.json().get("code") != code):
        raise RuntimeError(
            f"{response.request.method} {response.request.url.path}: expected {status} "
            f"{code or ''}, got {response.status_code} {response.text[:300]}"
        )


async def mint_tokens(url: str) -> list[str]:
    """Bearer tokens of the bench students in student-id order, signed like a login's."""
    conn = await asyncpg.connect(asyncpg_dsn(url), timeout=10)
    try:
        rows = await conn.fetch(
            "SELECT s.id AS student_pk, u.id AS user_pk, u.username FROM students s "
            "JOIN users u ON u.id = s.user_id WHERE s.student_id LIKE 'w%' "
            "ORDER BY s.student_id"
        )
    finally:
        await conn.close()
    signer = JwtSigner(SECRET, SystemClock(), timedelta(hours=4))
    return [
        signer.issue(Principal(r["user_pk"], r["username"], "student", r["student_pk"]))[0]
        for r in rows
    ]


async def seed(
    server: ServerProcess, args: argparse.Namespace, url: str, workdir: Path
) -> dict[str, Path]:
    """Terms, students and token files; the full sections filled and their hints primed."""
    async with HttpPool(server.base_url, size=32, timeout=120) as http:
        r = await http.post("/api/v1/auth/token", json={"username": ADMIN[0], "password": ADMIN[1]})
        r.raise_for_status()
        admin = {"Authorization": f"Bearer {r.json()['access_token']}"}
        now = datetime.now(UTC)
        terms = [
            (ROOM_TERM, {"admit_per_second": 1, "max_active": 1}),
            (FULL_TERM, None),
            (FULL_ROOM_TERM, {"admit_per_second": 100_000, "max_active": 1_000_000}),
        ]
        for code, room in terms:
            r = await http.post("/api/v1/admin/terms", json=_term(code, now, room), headers=admin)
            r.raise_for_status()
        for code in (FULL_TERM, FULL_ROOM_TERM):
            r = await http.post(
                f"/api/v1/admin/terms/{code}/sections", json=FULL_SECTION_BODY, headers=admin
            )
            r.raise_for_status()

        students = [f"w{i:06d}" for i in range(args.join_students)]
        await create_students(http, admin, students)
        tokens = await mint_tokens(url)
        if len(tokens) != len(students):
            raise RuntimeError(f"{len(tokens)} tokens for {len(students)} students")
        # A minted token is accepted like a login's: a real login gives the same claims.
        r = await http.post(
            "/api/v1/auth/token", json={"username": students[0], "password": PASSWORD}
        )
        r.raise_for_status()

        # bench-full: student 0 takes the only seat, student 1 is refused by the database,
        # which records the section as full in the seat hints.
        def bearer(i: int) -> dict[str, str]:
            return {"Authorization": f"Bearer {tokens[i]}"}

        enroll = {"section_id": FULL_SECTION}
        path = f"/api/v1/terms/{FULL_TERM}/enrollments"
        r = await http.post(path, json=enroll, headers=bearer(0))
        expect(r, 201)
        for i in (1, 2):
            r = await http.post(path, json=enroll, headers=bearer(i))
            expect(r, 409, "section_full")

        # bench-full-room: the first --students join and are admitted (everyone at once).
        population = args.students
        qpath = f"/api/v1/queue/{FULL_ROOM_TERM}"
        responses = await asyncio.gather(
            *(http.post(f"{qpath}/join", headers=bearer(i)) for i in range(population))
        )
        bad = [r.text for r in responses if r.status_code != 200]
        assert not bad, bad[:3]
        admissions: dict[int, str] = {}
        deadline = time.monotonic() + 60
        while len(admissions) < population:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {len(admissions)} of {population} admitted in 60 s")
            await asyncio.sleep(0.5)
            waiting = [i for i in range(population) if i not in admissions]
            answers = await asyncio.gather(
                *(http.get(f"{qpath}/status", headers=bearer(i)) for i in waiting)
            )
            for i, r in zip(waiting, answers, strict=True):
                r.raise_for_status()
                if r.json()["admission_token"]:
                    admissions[i] = r.json()["admission_token"]
        log(f"{population} students admitted to {FULL_ROOM_TERM}")
        path = f"/api/v1/terms/{FULL_ROOM_TERM}/enrollments"
        r = await http.post(
            path, json=enroll, headers={**bearer(0), "X-Admission-Token": admissions[0]}
        )
        expect(r, 201)
        for i in (1, 2):
            r = await http.post(
                path, json=enroll, headers={**bearer(i), "X-Admission-Token": admissions[i]}
            )
            expect(r, 409, "section_full")

    files = {"tokens": workdir / "tokens.txt", "admitted": workdir / "admitted.txt"}
    files["tokens"].write_text("\n".join(tokens) + "\n")
    files["admitted"].write_text(
        "".join(f"{tokens[i]}\t{admissions[i]}\n" for i in range(population))
    )
    return files


# --- the HTTP cases --------------------------------------------------------------------------


@dataclass
class Case:
    name: str
    method: str
    path: str
    tokens: str  # key of the token files
    population: int
    expect: int
    needle: str = ""
    body: str = ""


def run_case(
    server: ServerProcess,
    case: Case | None,
    args: argparse.Namespace,
    workdir: Path,
    files: dict[str, Path],
    dbname: str,
    redis_cpu: RedisCpu,
) -> Row:
    """One wrk run (``case=None``: GET /healthz) with the server's, the database's and
    Redis's CPU measured around it."""
    wrk_args = argparse.Namespace(
        wrk=args.wrk, wrk_threads=args.threads, clients=args.connections, duration=args.duration
    )
    name = "healthz" if case is None else case.name
    log(f"{name}: wrk -t{args.threads} -c{args.connections} -d{args.duration}s")
    server_before, redis_before = server.cpu_seconds(), redis_cpu.seconds()
    mark = Machine().mark()
    with BackendCpu(dbname) as db_cpu:
        if case is None:
            raw = run_wrk(f"{server.base_url}/healthz", wrk_args, workdir, WRK_HEALTHZ, [])
        else:
            raw = run_wrk(
                server.base_url + case.path,
                wrk_args,
                workdir,
                WRK_ROTATE,
                [
                    str(files[case.tokens]),
                    str(case.population),
                    str(args.threads),
                    case.method,
                    case.path,
                    case.body,
                    str(case.expect),
                    case.needle,
                ],
            )
        time.sleep(1)  # requests in flight at the end finish (and are counted) first
    server_cpu = server.cpu_seconds() - server_before
    redis_used = redis_cpu.seconds() - redis_before
    others = Machine.others(mark, server_cpu + redis_used + db_cpu.seconds)
    expect = "200" if case is None else str(case.expect)
    result: Result = wrk_result(name, raw, expect)
    requests = max(int(raw["requests"]), 1)
    row = Row(
        name,
        result.ok_per_s,
        result.p50_ms,
        result.p99_ms,
        server_cpu_ms=1000 * server_cpu / requests,
        db_cpu_ms=1000 * db_cpu.seconds / requests,
        redis_cpu_ms=1000 * redis_used / requests,
        note=result.note,
        failed="NOT OK" in result.note,
        others=others,
    )
    wrapped = int(raw.get("wrapped", 0))
    if case is not None and case.name == "join_new":
        row.note += f", {raw['requests'] - wrapped} first joins" + (
            f" + {wrapped} REPEATS (raise --join-students)" if wrapped else ""
        )
    return row


# --- main ------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per HTTP case (10)")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections (64)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (2)")
    parser.add_argument(
        "--students",
        type=int,
        default=2000,
        help="students rotated by join_repeat, status and the refusals (2000)",
    )
    parser.add_argument(
        "--join-students",
        type=int,
        default=40_000,
        help="students created; join_new gives each its first ticket (40000)",
    )
    parser.add_argument("--workers", type=int, default=2, help="rushgate serve --workers")
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("RUSHGATE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"),
    )
    parser.add_argument("--redis-requests", type=int, default=200_000)
    parser.add_argument("--redis-clients", type=int, default=50)
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the server, database and work dir up after the run, until Ctrl-C",
    )
    args = parser.parse_args(argv)
    args.wrk = shutil.which("wrk")
    if args.wrk is None:
        parser.error("wrk is not installed (apt-get install -y wrk)")
    args.redis_benchmark = shutil.which("redis-benchmark")
    if args.redis_benchmark is None:
        parser.error("redis-benchmark is not installed (apt-get install -y redis-tools)")
    if args.students < 3 or args.join_students < args.students:
        parser.error("need 3 <= --students <= --join-students")
    return args


def print_table(rows: list[Row], args: argparse.Namespace) -> None:
    print()
    print(
        f"connections={args.connections} threads={args.threads} duration={args.duration}s "
        f"workers={args.workers} students={args.students} join_students={args.join_students}"
    )
    print(
        f"NOTE: wrk, redis-benchmark, Redis, PostgreSQL and the server all share this "
        f"machine's {os.cpu_count()} cores."
    )
    print(
        "cpu/op = CPU milliseconds per request, from /proc and INFO cpu: 'server' the "
        "uvicorn processes, 'db' the bench database's backends, 'redis' redis-server; "
        "'others' = cores busy with processes that are not the bench's."
    )

    print(
        f"{'measurement':<19} {'ok/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'server cpu/op':>13} {'db cpu/op':>9} {'redis cpu/op':>12} {'others':>6}  notes"
    )
    for r in rows:
        print(
            f"{r.name:<19} {r.per_s:>9.1f} {cell(r.p50_ms, 8, 3)} {cell(r.p99_ms, 8, 3)} "
            f"{cell(r.server_cpu_ms, 13, 3)} {cell(r.db_cpu_ms, 9, 3)} "
            f"{cell(r.redis_cpu_ms, 12, 3)}"
            f" {r.others or 0.0:>6.2f}  {r.note}"
        )
    busiest = max(rows, key=lambda r: r.others or 0.0)
    if (busiest.others or 0.0) > OTHERS_WARN:
        print(
            f"WARNING: other processes kept {busiest.others:.2f} cores busy during "
            f"{busiest.name}: this run's rates are not comparable, run again on a quiet machine"
        )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, interrupt)
    workdir = Path(tempfile.mkdtemp(prefix="rushgate-bench-wr-"))
    run_id = uuid.uuid4().hex[:10]
    name = f"rushgate_bench_{run_id}"
    url = db_url(name)
    server_prefix, raw_prefix = f"rgbench:{run_id}:", f"rgbench-raw:{run_id}:"
    client = redis.Redis.from_url(args.redis_url)
    server: ServerProcess | None = None
    created = False
    try:
        client.ping()
        rows = redis_benchmark(args, client, workdir, raw_prefix)
        delete_prefix(client, raw_prefix)

        asyncio.run(create_database(name))
        created = True
        upgrade(url)
        log(f"database {name} created and migrated")
        server = ServerProcess(
            ServerConfig(
                log_dir=workdir,
                database_url=url,
                name="bench",
                workers=args.workers,
                secret_key=SECRET,
                admin=ADMIN,
                log_level="warning",
                redis_url=args.redis_url,
                redis_prefix=server_prefix,
            )
        )
        server.start()
        log(f"server up at {server.base_url} ({args.workers} workers), seeding")
        files = asyncio.run(seed(server, args, url, workdir))

        join, status = f"/api/v1/queue/{ROOM_TERM}/join", f"/api/v1/queue/{ROOM_TERM}/status"
        body = f'{{"section_id":"{FULL_SECTION}"}}'
        n, full = args.students, "section_full"
        cases = [
            None,
            Case("join_new", "POST", join, "tokens", args.join_students, 200, '"ticket"'),
            Case("join_repeat", "POST", join, "tokens", n, 200, '"ticket"'),
            Case("status", "GET", status, "tokens", n, 200, '"ticket"'),
            Case(
                "full_refusal",
                "POST",
                f"/api/v1/terms/{FULL_TERM}/enrollments",
                "tokens",
                n,
                409,
                full,
                body,
            ),
            Case(
                "full_refusal_room",
                "POST",
                f"/api/v1/terms/{FULL_ROOM_TERM}/enrollments",
                "admitted",
                n,
                409,
                full,
                body,
            ),
            None,
        ]
        redis_cpu = RedisCpu(client)
        http_rows: list[Row] = []
        for case in cases:
            row = run_case(server, case, args, workdir, files, name, redis_cpu)
            if case is None and http_rows:
                row.name = "healthz_end"
            http_rows.append(row)

        if "Traceback" in server.log_text():
            log("the server logged errors:\n" + server.log_tail(60))
        rows = http_rows + rows
        print_table(rows, args)
        healthz = [r.per_s for r in http_rows if r.name.startswith("healthz")]
        ceiling = sum(healthz) / len(healthz)
        ratios = {r.name: r.per_s / ceiling for r in http_rows if r.name in TARGETS}
        by_name = {r.name: r for r in rows}
        print()
        print(f"healthz ceiling (mean of first and last run) = {ceiling:.1f}/s")
        for case_name, ratio in ratios.items():
            target = TARGETS[case_name]
            verdict = "ok" if ratio >= target else "BELOW TARGET"
            print(f"ratio {case_name}/healthz = {ratio:.2f} (target >= {target}: {verdict})")
        for case_name, raw_name in (
            ("join_new", "redis join"),
            ("status", "redis status"),
            ("full_refusal", "redis precheck"),
            ("full_refusal_room", "redis precheck+room"),
        ):
            share = by_name[case_name].per_s / by_name[raw_name].per_s
            print(
                f"{case_name} uses {share:.0%} of what Redis alone does for its command "
                f"({raw_name} {by_name[raw_name].per_s:.0f}/s)"
            )
        failed = [r.name for r in http_rows if r.failed]
        if failed:
            print(f"FAILED: unexpected answers in {', '.join(failed)} (see notes)")
        print(
            "headline: "
            + ", ".join(
                f"{n}/healthz = {ratios[n]:.2f}" for n in ("join_new", "status", "full_refusal")
            )
        )
        if args.keep:
            sys.stdout.flush()
            log(
                f"--keep: server {server.base_url} (pid {server.pid}), database {name}, "
                f"redis prefix {server_prefix}, work dir {workdir}; Ctrl-C or SIGTERM to clean up"
            )
            while True:
                time.sleep(3600)
        return 1 if failed else 0
    except KeyboardInterrupt:
        log("interrupted; cleaning up")
        return 130
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        if server is not None:
            server.stop()
        if created:
            try:
                asyncio.run(drop_database(name))
            except (OSError, asyncpg.PostgresError) as exc:
                log(f"could not drop database {name}: {exc}")
        try:
            delete_prefix(client, server_prefix)
            delete_prefix(client, raw_prefix)
        except redis.RedisError as exc:
            log(f"could not delete the bench's Redis keys: {exc}")
        client.close()
        if args.keep:
            log(f"logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except httpx.HTTPError as exc:
        log(f"HTTP error: {exc!r}")
        sys.exit(1)
