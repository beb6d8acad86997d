"""The real stack, as ``rushgate cluster up`` starts it: PostgreSQL primary + streaming
replica, Redis with AOF, three app nodes (weights 3:3:2), a worker, nginx, and the node,
nginx, PostgreSQL and Redis exporters, Alertmanager and Prometheus where installed (in CI
they must be). One stack for the module; ``down`` at the end must leave nothing
running."""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from rushgate.cluster.stack import EXPORTER_TARGETS, MONITORING, process_tree
from tests.deploy.test_observability import (
    EXPORTER_PREFIXES,
    exporter_label_matchers,
    exporter_series,
)
from tests.serverproc import HttpPool, cluster_cli
from tests.support import IN_CI, require_service

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

STUDENTS = 2000
SECTIONS = 50
SEATS = 40
PASSWORD = "rush-password-1"
ADMIN_PASSWORD = "operator-password-1"
# How often the rolling-restart client sends a request again when the kept-alive
# connection it reused was closed before any answer, as browsers do. Twice: the next
# pooled connection may have been closed by the same nginx reload. Every resend is
# counted and printed.
BROWSER_RESENDS = 2


def cli(
    directory: Path, *args: str, timeout: float = 180, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return cluster_cli(directory, *args, timeout=timeout, env=env)


@dataclass
class Stack:
    directory: Path
    status: dict[str, Any]
    admin_password: str
    state: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return str(self.status["url"])

    @property
    def primary(self) -> str:
        return str(self.status["postgres"]["primary"]).replace("postgresql://", "postgres://")

    @property
    def replica(self) -> str:
        return str(self.status["postgres"]["replica"]).replace("postgresql://", "postgres://")


def _pids(directory: Path) -> set[int]:
    """Every process of the stack: what ``up`` recorded and all their descendants (uvicorn
    and nginx workers, PostgreSQL backends and walsenders)."""
    state = json.loads((directory / "cluster.json").read_text())
    pids = [n["pid"] for n in state["nodes"]] + [state["worker"]["pid"]]
    pids += [state[key]["pid"] for key in MONITORING if state.get(key)]
    for pid_file in ("nginx/nginx.pid", "redis/redis.pid"):
        path = directory / pid_file
        if path.exists():
            pids.append(int(path.read_text().strip()))
    for role in ("primary", "replica"):
        path = directory / "pg" / role / "postmaster.pid"
        if path.exists():
            pids.append(int(path.read_text().splitlines()[0]))
    return set().union(*(process_tree(pid) for pid in pids))


def _running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    missing = [
        name
        for name in ("initdb", "pg_basebackup", "redis-server", "nginx")
        if not shutil.which(name)
        and not list(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
        and not Path(f"/usr/sbin/{name}").exists()
    ]
    if missing:
        require_service("the cluster's parts", f"not installed: {', '.join(missing)}")
    # Not pytest's tmp_path: its folders are private to this user, and PostgreSQL runs as
    # the postgres user when the tests run as root.
    parent = Path(tempfile.mkdtemp(prefix="rushgate-e2e-"))
    parent.chmod(0o755)
    directory = parent / "stack"
    started = time.monotonic()
    # The operator's admin, as a deployment sets it: up must create exactly that one.
    admin = {"RUSHGATE_ADMIN_USERNAME": "operator", "RUSHGATE_ADMIN_PASSWORD": ADMIN_PASSWORD}
    up = cli(directory, "up", "--nodes", "3", "--weights", "3,3,2", env=admin)
    assert up.returncode == 0, f"cluster up failed:\n{up.stdout}\n{up.stderr}"
    print(f"cluster up in {time.monotonic() - started:.1f}s")
    report = cli(directory, "status", "--json")
    assert report.returncode == 0, report.stderr
    assert "operator" in up.stderr
    assert ADMIN_PASSWORD not in up.stderr + up.stdout
    assert not (directory / "admin-password").exists(), "an operator's password is theirs"
    stack = Stack(directory, json.loads(report.stdout), ADMIN_PASSWORD)
    pids = _pids(directory)
    assert len(pids) > 3 + 1 + 2 + 1 + 2, f"expected worker processes too, got {pids}"
    try:
        yield stack
    finally:
        down = cli(directory, "down")
        assert down.returncode == 0, down.stderr
        # No grace period: down returns only once every process it started has exited.
        assert not [p for p in pids if _running(p)], "down returned with processes running"
        assert not (directory / "cluster.json").exists()
        if not os.environ.get("RUSHGATE_TEST_KEEP_CLUSTER"):
            shutil.rmtree(parent, ignore_errors=True)


@dataclass
class Admin:
    """A client pool through nginx, and an admin's bearer header."""

    http: HttpPool
    headers: dict[str, str]


@pytest.fixture(scope="module")
async def admin(stack: Stack) -> AsyncIterator[Admin]:
    async with HttpPool(stack.url, size=200, timeout=30) as http:
        r = await http.post(
            "/api/v1/auth/token", json={"username": "operator", "password": stack.admin_password}
        )
        assert r.status_code == 200, r.text
        yield Admin(http, {"Authorization": f"Bearer {r.json()['access_token']}"})


async def new_term(admin: Admin, *, room: dict[str, Any] | None = None) -> str:
    code = f"e2e-{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)
    body: dict[str, Any] = {
        "code": code,
        "name": code,
        "opens_at": (now - timedelta(minutes=5)).isoformat(),
        "closes_at": (now + timedelta(hours=2)).isoformat(),
    }
    if room is not None:
        body["waiting_room"] = room
    r = await admin.http.post("/api/v1/admin/terms", json=body, headers=admin.headers)
    assert r.status_code == 201, r.text
    return code


def section(n: int, capacity: int) -> dict[str, Any]:
    return {
        "section_id": f"SEC{n:03d}-01",
        "course_code": f"SEC{n:03d}",
        "title": f"Section {n}",
        "credits": 3,
        "capacity": capacity,
        "meetings": [],
    }


async def add_students(admin: Admin, names: list[str]) -> None:
    for chunk in range(0, len(names), 1000):
        r = await admin.http.post(
            "/api/v1/admin/students",
            json=[
                {
                    "student_id": s,
                    "name": s,
                    "email": f"{s}@e2e.test",
                    "password": PASSWORD,
                    "class_year": 1,
                    "max_credits": 20,
                }
                for s in names[chunk : chunk + 1000]
            ],
            headers=admin.headers,
        )
        assert r.status_code == 201, r.text


async def bearer_of(admin: Admin, student: str) -> dict[str, str]:
    """The student's bearer header, logging in through nginx."""
    for _ in range(5):
        r = await admin.http.post(
            "/api/v1/auth/token", json={"username": student, "password": PASSWORD}
        )
        if r.status_code == 200:
            return {"Authorization": f"Bearer {r.json()['access_token']}"}
    raise AssertionError(f"{student} could not log in: {r.text}")


def test_status_names_the_front_door_and_every_node(stack: Stack) -> None:
    report = stack.status
    assert report["url"].startswith("http://127.0.0.1:")
    assert [n["name"] for n in report["nodes"]] == ["node1", "node2", "node3"]
    for node in report["nodes"]:
        assert node["alive"]
        assert node["ready"]
        assert httpx.get(f"{node['url']}/readyz", timeout=5).status_code == 200
    assert report["worker"]["alive"]
    ready = httpx.get(f"{stack.url}/readyz", timeout=5).json()
    assert ready["status"] == "ready"
    assert 0 <= ready["checks"]["replica"]["lag_seconds"] < 5  # exported, and streaming


def test_nginx_request_ids_reach_the_nodes_logs_and_the_client(stack: Stack) -> None:
    """nginx names every request (a client cannot pick the name); the node that served it
    logs that name on its JSON access line and returns it."""
    forged = "f" * 32
    with httpx.Client(base_url=stack.url, timeout=5) as client:
        responses = [client.get("/healthz", headers={"X-Request-ID": forged}) for _ in range(6)]
    ids = [r.headers["x-request-id"] for r in responses]
    assert all(re.fullmatch(r"[0-9a-f]{32}", rid) for rid in ids), ids
    assert forged not in ids
    assert len(set(ids)) == len(ids)
    deadline = time.monotonic() + 10
    while True:
        logged: dict[str, dict[str, Any]] = {}
        for n in (1, 2, 3):
            for line in (stack.directory / "logs" / f"node{n}.log").read_text().splitlines():
                if line.startswith("{") and '"request_id"' in line:
                    record = json.loads(line)
                    if record.get("logger") == "rushgate.access":
                        logged[record["request_id"]] = record
        if all(rid in logged for rid in ids) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    for rid in ids:
        assert rid in logged, rid
        assert logged[rid]["route"] == "/healthz"
        assert logged[rid]["node"] in {"node1", "node2", "node3"}


def pg_ctl(stack: Stack, role: str, *args: str) -> None:
    """``pg_ctl`` on the stack's ``primary`` or ``replica`` data folder, as its owner. A
    start needs ``-l``: a server writing to our captured output would never let go of it."""
    binary = next(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    runner = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    data = stack.directory / "pg" / role
    subprocess.run([*runner, str(binary), "-D", str(data), *args], check=True, capture_output=True)


async def test_writes_reach_the_replica_and_the_catalog_survives_its_loss(
    stack: Stack, admin: Admin
) -> None:
    term = await new_term(admin)
    r = await admin.http.post(
        f"/api/v1/admin/terms/{term}/sections", json=[section(1, 5)], headers=admin.headers
    )
    assert r.status_code == 201, r.text
    replica = await asyncpg.connect(stack.replica)
    try:
        assert await replica.fetchval("SELECT pg_is_in_recovery()")
        deadline = time.monotonic() + 10
        while not await replica.fetchval("SELECT count(*) FROM terms WHERE code = $1", term):
            assert time.monotonic() < deadline, "the write never reached the replica"
            await asyncio.sleep(0.05)
    finally:
        await replica.close()

    # Stop the replica: the catalog degrades to the primary, enrolling goes on.
    pg_ctl(stack, "replica", "-m", "fast", "-w", "stop")
    try:
        await add_students(admin, ["replica-test"])
        student = await bearer_of(admin, "replica-test")
        ready = await admin.http.get("/readyz")
        assert ready.status_code == 200  # reads fall back: losing the replica is no outage
        assert ready.json()["checks"]["replica"].startswith("unreachable")
        for _ in range(6):  # every node, whichever nginx picks
            catalog = await admin.http.get(f"/api/v1/terms/{term}/sections", headers=student)
            assert catalog.status_code == 200, catalog.text
        enrolled = await admin.http.post(
            f"/api/v1/terms/{term}/enrollments", json={"section_id": "SEC001-01"}, headers=student
        )
        assert enrolled.status_code == 201, enrolled.text
        logs = "".join((stack.directory / "logs" / f"node{n}.log").read_text() for n in (1, 2, 3))
        assert "replica unreachable" in logs  # the catalog really was meant for the replica
    finally:
        log = stack.directory / "logs" / "postgres-replica.log"
        pg_ctl(stack, "replica", "-l", str(log), "-w", "start")


@dataclass
class Outcome:
    student: str
    key: str
    section: str
    status: int
    attempts: int
    errors: list[str] = field(default_factory=list)


async def test_an_opening_rush_survives_a_node_killed_mid_rush(stack: Stack, admin: Admin) -> None:
    term = await new_term(
        admin, room={"enabled": True, "admit_per_second": 2000, "max_active": 10_000}
    )
    r = await admin.http.post(
        f"/api/v1/admin/terms/{term}/sections",
        json=[section(n, SEATS) for n in range(1, SECTIONS + 1)],
        headers=admin.headers,
    )
    assert r.status_code == 201, r.text
    prefix = uuid.uuid4().hex[:6]
    students = [f"r{prefix}{n:05d}" for n in range(STUDENTS)]
    await add_students(admin, students)
    logins = await asyncio.gather(*(bearer_of(admin, s) for s in students))
    bearers = dict(zip(students, logins, strict=True))
    victim = stack.status["nodes"][1]
    killed = asyncio.Event()
    outcomes: list[Outcome] = []
    rng = random.Random(20261123)

    async def call(
        method: str, path: str, headers: dict[str, str], **kw: Any
    ) -> httpx.Response | str:
        try:
            return await admin.http.request(method, path, headers=headers, **kw)
        except httpx.HTTPError as exc:  # a connection the killed node dropped
            return type(exc).__name__

    async def rush(student: str) -> None:
        headers = dict(bearers[student])
        admission = None
        for _ in range(600):
            answer = await call("POST", f"/api/v1/queue/{term}/join", headers)
            ok = isinstance(answer, httpx.Response) and answer.status_code == 200
            if ok and answer.json()["admission_token"]:  # type: ignore[union-attr]
                admission = answer.json()["admission_token"]  # type: ignore[union-attr]
                break
            await asyncio.sleep(0.05)
        assert admission, f"{student} was never admitted"
        headers["X-Admission-Token"] = admission
        choices = rng.sample(range(1, SECTIONS + 1), 3)
        for choice in choices:
            target = f"SEC{choice:03d}-01"
            key = f"{student}-{target}"
            outcome = Outcome(student, key, target, 0, 0)
            outcomes.append(outcome)
            while outcome.attempts < 20:
                outcome.attempts += 1
                answer = await call(
                    "POST",
                    f"/api/v1/terms/{term}/enrollments",
                    {**headers, "Idempotency-Key": key},
                    json={"section_id": target},
                )
                if isinstance(answer, str) or answer.status_code >= 500:
                    outcome.errors.append(
                        answer if isinstance(answer, str) else str(answer.status_code)
                    )
                    await asyncio.sleep(0.1)
                    continue
                outcome.status = answer.status_code
                break
            if outcome.status == 201:
                return

    async def kill_mid_rush() -> None:
        while sum(o.status == 201 for o in outcomes) < STUDENTS * 0.25:
            await asyncio.sleep(0.01)
        os.kill(victim["pid"], signal.SIGKILL)
        killed.set()

    started = time.monotonic()
    killer = asyncio.create_task(kill_mid_rush())
    await asyncio.gather(*map(rush, students))
    elapsed = time.monotonic() - started
    assert killed.is_set(), "the rush ended before the node was killed"
    await killer

    conn = await asyncpg.connect(stack.primary)
    try:
        rows = await conn.fetch(
            """SELECT u.username, s.section_id, s.course_code, e.status
                 FROM enrollments e
                 JOIN sections s ON s.id = e.section_id
                 JOIN terms t ON t.id = e.term_id
                 JOIN students st ON st.id = e.student_id
                 JOIN users u ON u.id = st.user_id
                WHERE t.code = $1""",
            term,
        )
        counts = await conn.fetch(
            """SELECT s.section_id, s.capacity, s.enrolled,
                      (SELECT count(*) FROM enrollments e
                        WHERE e.section_id = s.id AND e.status = 'enrolled') AS rows
                 FROM sections s JOIN terms t ON t.id = s.term_id WHERE t.code = $1""",
            term,
        )
    finally:
        await conn.close()
    held = {(r["username"], r["section_id"]) for r in rows}
    per_student = Counter(r["username"] for r in rows)
    confirmed = [o for o in outcomes if o.status == 201]
    retried = [o for o in outcomes if o.errors]
    print(
        f"rush: {len(students)} students, {len(outcomes)} enroll intents, "
        f"{len(confirmed)} confirmed, {len(retried)} retried after errors "
        f"({Counter(e for o in retried for e in o.errors)}), {elapsed:.1f}s"
    )
    assert not [o for o in confirmed if (o.student, o.section) not in held], "a 201 was lost"
    assert all(c["enrolled"] == c["rows"] <= c["capacity"] for c in counts), counts
    assert max(per_student.values()) == 1, "a student holds two seats"
    for o in retried:
        mine = [r for r in rows if r["username"] == o.student and r["section_id"] == o.section]
        assert len(mine) == (1 if o.status == 201 else 0), o
    # nginx saw the node die under load (requests in flight on it failed over or failed).
    nginx_errors = (stack.directory / "nginx" / "logs" / "error.log").read_text()
    victim_port = str(victim["url"]).rsplit(":", 1)[1]
    assert f"127.0.0.1:{victim_port}" in nginx_errors
    seats = SECTIONS * SEATS
    assert len(rows) == min(seats, len(confirmed)) == len(confirmed)


async def test_a_rolling_restart_under_steady_load_fails_no_request(
    stack: Stack, admin: Admin
) -> None:
    term = await new_term(admin)
    r = await admin.http.post(
        f"/api/v1/admin/terms/{term}/sections",
        json=[section(n, 1000) for n in range(1, 4)],
        headers=admin.headers,
    )
    assert r.status_code == 201, r.text
    students = [f"roll{uuid.uuid4().hex[:6]}{n}" for n in range(20)]
    await add_students(admin, students)
    headers = {s: await bearer_of(admin, s) for s in students}
    before = {
        n["name"]: n["pid"]
        for n in json.loads(cli(stack.directory, "status", "--json").stdout)["nodes"]
    }
    failures: list[str] = []
    done = asyncio.Event()
    served = Counter[str]()
    resent = Counter[str]()

    async def steady(student: str) -> None:
        n = 0
        while not done.is_set():
            n += 1
            target = f"SEC{n % 3 + 1:03d}-01"
            calls: list[tuple[str, str, dict[str, Any]]] = [
                ("GET", f"/api/v1/terms/{term}/sections", {}),
                ("POST", f"/api/v1/terms/{term}/enrollments", {"json": {"section_id": target}}),
                ("DELETE", f"/api/v1/terms/{term}/enrollments/{target}", {}),
            ]
            for method, path, extra in calls:
                sent = {**headers[student], "Idempotency-Key": f"{student}-{n}"}
                try:
                    for resend in range(BROWSER_RESENDS + 1):
                        try:
                            r = await admin.http.request(method, path, headers=sent, **extra)
                            break
                        except (httpx.RemoteProtocolError, httpx.ReadError):
                            # nginx's reload closed a kept-alive connection as the request
                            # went out; like a browser, send it again (safe: GET and DELETE
                            # are idempotent, the POST carries an Idempotency-Key).
                            if resend == BROWSER_RESENDS:
                                raise
                            resent[method] += 1
                except httpx.HTTPError as exc:
                    failures.append(f"{method} {path}: {type(exc).__name__}")
                    continue
                served[method] += 1
                if r.status_code >= 500:
                    failures.append(f"{method} {path}: {r.status_code} {r.text[:120]}")
            await asyncio.sleep(0.01)

    load = [asyncio.create_task(steady(s)) for s in students]
    await asyncio.sleep(1.0)
    restart = await asyncio.to_thread(cli, stack.directory, "restart", "--rolling")
    await asyncio.sleep(1.0)
    done.set()
    await asyncio.gather(*load)
    assert restart.returncode == 0, restart.stdout + restart.stderr
    after = {
        n["name"]: n for n in json.loads(cli(stack.directory, "status", "--json").stdout)["nodes"]
    }
    print(
        f"rolling restart under load: {dict(served)} requests, {len(failures)} failed, "
        f"{dict(resent)} sent again on a closed keep-alive connection"
    )
    assert all(after[name]["pid"] != pid for name, pid in before.items())
    assert all(node["ready"] for node in after.values())
    assert not failures, failures[:10]
    assert sum(served.values()) > 500


async def test_admission_reaches_sse_streams_on_every_node(stack: Stack, admin: Admin) -> None:
    term = await new_term(admin, room={"enabled": True, "admit_per_second": 5, "max_active": 1})
    names = [f"sse{uuid.uuid4().hex[:6]}{n}" for n in range(4)]
    await add_students(admin, names)
    bearer = {s: await bearer_of(admin, s) for s in names}
    for s in names:  # in this order: the first is admitted, the others wait (one at a time)
        assert (await admin.http.post(f"/api/v1/queue/{term}/join", headers=bearer[s])).is_success
    nodes = [n["url"] for n in json.loads(cli(stack.directory, "status", "--json").stdout)["nodes"]]

    async def wait_on(node: str, student: str) -> dict[str, Any]:
        """Follow the stream on one node directly until it ends; the last event."""
        last: dict[str, Any] = {}
        async with (
            httpx.AsyncClient(base_url=node, timeout=None) as http,
            http.stream("GET", f"/api/v1/queue/{term}/stream", headers=bearer[student]) as r,
        ):
            assert r.status_code == 200
            async for line in r.aiter_lines():
                if line.startswith("data: "):
                    last = json.loads(line.removeprefix("data: "))
        return last

    streams = [
        asyncio.create_task(wait_on(node, student))
        for node, student in zip(nodes, names[1:], strict=True)
    ]
    await asyncio.sleep(0.5)
    for leaving, task in zip(names[:-1], streams, strict=True):
        # whoever holds the slot leaves; the next in line is admitted by whichever
        # process ticks, and its stream, on its own node, must hear of it
        for _ in range(50):
            status = await admin.http.get(f"/api/v1/queue/{term}/status", headers=bearer[leaving])
            if status.json()["state"] == "admitted":
                break
            await asyncio.sleep(0.1)
        assert (
            await admin.http.post(f"/api/v1/queue/{term}/leave", headers=bearer[leaving])
        ).status_code == 204
        last = await asyncio.wait_for(task, 10)
        assert last["state"] == "admitted"
        assert last["admission_token"]


async def test_a_primary_restart_is_503s_to_retry_and_loses_nothing(
    stack: Stack, admin: Admin
) -> None:
    """The primary restarts under steady enrollment. Clients see only 503
    database_unavailable (never another 5xx) and retry with the same Idempotency-Key;
    afterwards every 201 is in the database once and no count is off."""
    term = await new_term(admin)
    sections = 60
    r = await admin.http.post(
        f"/api/v1/admin/terms/{term}/sections",
        # no credits: the credit limit must not stop a student before the last section
        json=[{**section(n, 1000), "credits": 0} for n in range(1, sections + 1)],
        headers=admin.headers,
    )
    assert r.status_code == 201, r.text
    students = [f"pgr{uuid.uuid4().hex[:6]}{n}" for n in range(16)]
    await add_students(admin, students)
    headers = {s: await bearer_of(admin, s) for s in students}
    seen = Counter[tuple[int, str]]()
    confirmed: dict[str, set[str]] = {s: set() for s in students}
    restarted = asyncio.Event()
    first_clean_after: list[float] = []

    async def enroll_through(student: str) -> None:
        for n in range(1, sections + 1):
            sent = {**headers[student], "Idempotency-Key": f"{student}-{n}"}
            body = {"section_id": f"SEC{n:03d}-01"}
            while True:
                r = await admin.http.post(
                    f"/api/v1/terms/{term}/enrollments", json=body, headers=sent
                )
                code = r.json().get("code", "") if r.status_code >= 400 else ""
                seen[r.status_code, code] += 1
                if r.status_code != 503:
                    break
                await asyncio.sleep(0.1)  # a client honouring Retry-After, shortened
            if r.status_code == 201:
                confirmed[student].add(body["section_id"])
                if restarted.is_set() and not first_clean_after:
                    first_clean_after.append(time.monotonic())
            await asyncio.sleep(0.02)

    load = [asyncio.create_task(enroll_through(s)) for s in students]
    await asyncio.sleep(1.0)
    log = str(stack.directory / "logs" / "postgres-primary.log")
    await asyncio.to_thread(pg_ctl, stack, "primary", "-m", "fast", "-l", log, "-w", "restart")
    back = time.monotonic()
    restarted.set()
    await asyncio.wait_for(asyncio.gather(*load), 120)

    recovered = first_clean_after[0] - back if first_clean_after else None
    print(f"primary restart under load: {dict(seen)}; first 201 {recovered}s after it")
    assert {status for status, _ in seen} <= {201, 503}, seen
    assert all(code == "database_unavailable" for status, code in seen if status == 503)
    assert seen[503, "database_unavailable"] > 0, "the restart was never noticed"
    assert all(len(held) == sections for held in confirmed.values())
    assert recovered is not None
    assert recovered < 10
    primary = await asyncpg.connect(stack.primary)
    try:
        rows = await primary.fetch(
            "SELECT u.username, s.section_id FROM enrollments e "
            "JOIN students st ON st.id = e.student_id JOIN users u ON u.id = st.user_id "
            "JOIN sections s ON s.id = e.section_id JOIN terms t ON t.id = e.term_id "
            "WHERE t.code = $1",
            term,
        )
        off = await primary.fetchval(
            "SELECT count(*) FROM sections s JOIN terms t ON t.id = s.term_id "
            "WHERE t.code = $1 AND s.enrolled <> "
            "(SELECT count(*) FROM enrollments e WHERE e.section_id = s.id)",
            term,
        )
    finally:
        await primary.close()
    in_db = Counter((r["username"], r["section_id"]) for r in rows)
    assert max(in_db.values()) == 1
    assert set(in_db) == {(s, sid) for s, held in confirmed.items() for sid in held}
    assert off == 0


PROMETHEUS = Path("/usr/bin/prometheus")
TARGETS_TIMEOUT = 60.0
# What each exporter's own *_up says: it reaches the server it watches.
EXPORTER_UP = {"nginx": "nginx_up", "postgres": "pg_up", "redis": "redis_up"}


def _installed(key: str) -> bool:
    """Whether the monitoring part ``key``'s Debian binary is here (as ``cluster up``
    looks for it)."""
    executable = MONITORING[key][1]
    return bool(shutil.which(executable)) or Path("/usr/bin", executable).exists()


def _installed_exporters() -> list[str]:
    """The exporters ``cluster up`` must have started; in CI every one of them."""
    missing = [MONITORING[key][1] for key in EXPORTER_TARGETS if not _installed(key)]
    if missing and IN_CI:
        pytest.fail(f"not installed: {', '.join(sorted(set(missing)))}", pytrace=False)
    return [key for key in EXPORTER_TARGETS if _installed(key)]


def test_prometheus_scrapes_every_node_and_exporter_and_loads_the_rules(stack: Stack) -> None:
    """Last in the module but one: after the rolling restart (nodes keep their ports), the
    node killed mid-rush and the primary's restart, every node's target and every
    exporter's must be up again, and each exporter must reach its server."""
    if not PROMETHEUS.exists():
        require_service("Prometheus", f"{PROMETHEUS} not installed (scripts/ensure-services)")
    report = json.loads(cli(stack.directory, "status", "--json").stdout)
    prometheus = report["prometheus"]
    assert prometheus is not None, "Prometheus is installed but cluster up did not start it"
    assert prometheus["alive"], prometheus
    nodes = {n["name"] for n in report["nodes"]}
    exporters = _installed_exporters()
    for key in exporters:
        assert report[key] is not None, f"{key} is installed but cluster up did not start it"
        assert report[key]["alive"], (key, report[key])
    api = f"{prometheus['url']}/api/v1"
    wanted = {("rushgate", node): "up" for node in nodes}
    wanted |= {EXPORTER_TARGETS[key][:2]: "up" for key in exporters}

    health: dict[tuple[str, str], str] = {}
    deadline = time.monotonic() + TARGETS_TIMEOUT
    while time.monotonic() < deadline:
        targets = httpx.get(f"{api}/targets", timeout=5).json()["data"]["activeTargets"]
        health = {
            (t["labels"]["job"], t["labels"]["instance"]): t["health"]
            for t in targets
            if t["labels"]["job"] in {"rushgate", *EXPORTER_UP}
        }
        if health == wanted:
            break
        time.sleep(1)
    assert health == wanted, f"targets: {health}"
    up = httpx.get(f"{api}/query", params={"query": 'up{job="rushgate"}'}, timeout=5).json()
    assert {r["metric"]["instance"]: r["value"][1] for r in up["data"]["result"]} == (
        dict.fromkeys(nodes, "1")
    )

    # Answering is not enough: pg_up, redis_up and nginx_up say the server is reached.
    expected = {EXPORTER_TARGETS[key][:2]: "1" for key in exporters}
    reached: dict[tuple[str, str], str] = {}
    query = " or ".join(EXPORTER_UP.values())
    while time.monotonic() < deadline + 30:
        result = httpx.get(f"{api}/query", params={"query": query}, timeout=5).json()
        reached = {
            (r["metric"]["job"], r["metric"]["instance"]): r["value"][1]
            for r in result["data"]["result"]
        }
        if reached == expected:
            break
        time.sleep(1)
    assert reached == expected, reached
    postgres = httpx.get(f"{api}/query", params={"query": "pg_up"}, timeout=5).json()
    roles = {r["metric"]["instance"]: r["metric"].get("role") for r in postgres["data"]["result"]}
    expected_roles = {
        instance: role
        for key, (job, instance, role) in EXPORTER_TARGETS.items()
        if job == "postgres" and key in exporters
    }
    assert roles == expected_roles

    groups = httpx.get(f"{api}/rules", timeout=5).json()["data"]["groups"]
    alerts = {
        rule["name"] for group in groups for rule in group["rules"] if rule["type"] == "alerting"
    }
    assert "SectionOversold" in alerts, sorted(alerts)

    if report["alertmanager"] is not None:
        assert report["alertmanager"]["alive"]
        managers: list[dict[str, str]] = []
        while time.monotonic() < deadline + 10:
            managers = httpx.get(f"{api}/alertmanagers", timeout=5).json()["data"][
                "activeAlertmanagers"
            ]
            if managers:
                break
            time.sleep(1)
        assert [m["url"] for m in managers] == [f"{report['alertmanager']['url']}/api/v2/alerts"], (
            managers
        )


SAMPLE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})?\s")
SAMPLE_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def _exposition(url: str) -> dict[str, list[dict[str, str]]]:
    """One scrape of ``url``: series name -> the label sets of its samples."""
    text = httpx.get(url, timeout=10).text
    series: dict[str, list[dict[str, str]]] = {}
    for line in text.splitlines():
        match = SAMPLE.match(line)
        if match and not line.startswith("#"):
            labels = dict(SAMPLE_LABEL.findall(match.group(2) or ""))
            series.setdefault(match.group(1), []).append(labels)
    return series


def test_every_exporter_series_of_the_dashboards_and_rules_is_really_exported(
    stack: Stack,
) -> None:
    """Scrape the running exporters (primary and replica alike: pg_stat_replication is
    only on the primary) and look up each ``pg_*``, ``redis_*``, ``nginx_*`` and
    ``node_*`` series the dashboards and rules read, and each ``label="value"`` they put
    on one, in what the exporters really serve."""
    exporters = _installed_exporters()
    if len(exporters) < len(EXPORTER_TARGETS) or not _installed("node_exporter"):
        require_service("the exporters", "not all installed (scripts/ensure-services prometheus)")
    keys = ["node_exporter", *exporters]
    report = json.loads(cli(stack.directory, "status", "--json").stdout)
    served: dict[str, list[dict[str, str]]] = {}
    for key in keys:
        assert report[key] is not None, f"{key} is installed but cluster up did not start it"
        for name, samples in _exposition(f"{report[key]['url']}/metrics").items():
            served.setdefault(name, []).extend(samples)
    assert {"pg_up", "redis_up", "nginx_up", "node_load1"} <= set(served)

    used = exporter_series()
    assert all(name.startswith(EXPORTER_PREFIXES) for name in used)
    missing = {name: where for name, where in used.items() if name not in served}
    assert not missing, f"read by the dashboards or rules, not exported: {missing}"
    unmatched = []
    for where, name, label, value in exporter_label_matchers():
        values = {sample.get(label) for sample in served[name]}
        if value.startswith("~"):
            ok = any(v is not None and re.fullmatch(value[1:], v) for v in values)
        else:
            ok = value in values
        if not ok:
            unmatched.append(
                f"{where}: {name}{{{label}={value!r}}} (has {sorted(map(str, values))})"
            )
    assert not unmatched, unmatched
