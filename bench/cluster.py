"""Enroll through nginx with 1, 2 and 3 app nodes against the raw SQL transaction.

Run: ``.venv/bin/python bench/cluster.py [--nodes 1,2,3] [--duration 10] [--clients 64]``
(or ``.venv/bin/python -m bench.cluster``).

For each node count N: ``rushgate cluster up --nodes N`` (PostgreSQL primary + streaming
replica, Redis, N app nodes of one uvicorn worker each, the worker, nginx in front; with
``RUSHGATE_PASSWORD_HASH_COST=low``) in a fresh folder under /tmp; through nginx and the
admin API two identical open terms without waiting room (``bench-pg`` for pgbench,
``bench-http`` for HTTP) of ``--sections`` sections with room for 100,000 each (they never
fill, 0 credits, no meetings) and ``--students`` students, whose bearer tokens are minted
with the cluster's own secret (``D/secret_key``) and ``JwtSigner``, as a login would sign
them. Then, each for ``--duration`` seconds with ``--clients`` concurrent clients:

1. **pgbench_raw**: ``pgbench -M prepared`` on the cluster's PRIMARY with the very script of
   ``bench/enroll.py`` (rushgate's enroll transaction, statement for statement, imported
   from ``rushgate.adapters.sql.postgres``), into ``bench-pg``. The nodes are up but idle.
2. **enroll_nginx**: ``POST /api/v1/terms/bench-http/enrollments`` through nginx (the
   cluster's URL), ``wrk`` with ``bench/enroll.py``'s rotating-token Lua script: every
   request a distinct (student, section) pair, the same scheme as pgbench's, so nothing is
   refused and both sides do the same work. Every answer must be ``201``.
3. **healthz_nginx**: ``GET /healthz`` through nginx: the HTTP stack's own ceiling.

CPU per successful operation is read from /proc: ``server`` = every process of the N nodes,
``nginx`` = nginx's master and workers, ``db`` = the PostgreSQL backends of the cluster's
database (primary and replica). ``others`` = cores busy with processes that are neither
the cluster's nor this script's (wrk, pgbench): CI jobs, builds.

Everything (nodes, nginx, PostgreSQL, Redis, wrk, pgbench) shares this machine's cores: on
a small machine the numbers are a floor and the ratio is what to compare. The cluster is
always brought down, also on Ctrl-C, SIGTERM or failure. Any non-201 enroll answer, a
failed pgbench transaction or a wrk socket error fails the run (exit status 1).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # `bench.enroll` and `tests.serverproc` when run as a script

from bench.enroll import (  # noqa: E402
    HTTP_TERM,
    PG_TERM,
    WRK_ENROLL,
    WRK_PLAIN,
    Result,
    asyncpg_dsn,
    cell,
    enrolled_rows,
    first_student_pk,
    interrupt,
    log,
    run_pgbench,
    run_wrk,
    seed_bench_terms,
    wrk_result,
)
from tests.serverproc import HttpPool, cluster_cli, processes  # noqa: E402

from rushgate.adapters.security import JwtSigner  # noqa: E402
from rushgate.domain.clock import SystemClock  # noqa: E402
from rushgate.services.ports.auth import Principal  # noqa: E402

DBNAME = "rushgate"  # the database `rushgate cluster up` creates
OTHERS_WARN = 0.2  # cores busy elsewhere above which a run's rates mean little


# --- the cluster ---------------------------------------------------------------------------


def run_cluster(directory: Path, *args: str, timeout: float = 300) -> str:
    """``rushgate cluster …``'s output; raises when it fails."""
    done = cluster_cli(directory, *args, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(
            f"rushgate cluster {args[0]} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
        )
    return done.stdout


@dataclass
class Cluster:
    directory: Path
    status: dict[str, Any]

    @property
    def url(self) -> str:
        return str(self.status["url"])

    @property
    def primary(self) -> str:
        return str(self.status["postgres"]["primary"])

    @property
    def node_pids(self) -> set[int]:
        return {int(n["pid"]) for n in self.status["nodes"]}

    def _pid_file(self, relative: str) -> int | None:
        try:
            return int((self.directory / relative).read_text().splitlines()[0].strip())
        except (OSError, ValueError, IndexError):
            return None

    @property
    def nginx_pid(self) -> int | None:
        return self._pid_file("nginx/nginx.pid")

    @property
    def postmaster_pids(self) -> set[int]:
        pids = (self._pid_file(f"pg/{role}/postmaster.pid") for role in ("primary", "replica"))
        return {p for p in pids if p is not None}

    @property
    def other_pids(self) -> set[int]:
        """The worker's process group and redis-server."""
        pids = {self._pid_file("redis/redis.pid")}
        if self.status.get("worker"):
            pids.add(int(self.status["worker"]["pid"]))
        return {p for p in pids if p is not None}


def cluster_up(directory: Path, nodes: int) -> Cluster:
    started = time.monotonic()
    run_cluster(directory, "up", "--nodes", str(nodes))
    status = json.loads(run_cluster(directory, "status", "--json"))
    not_ready = [n["name"] for n in status["nodes"] if not (n["alive"] and n["ready"])]
    if len(status["nodes"]) != nodes or not_ready:
        raise RuntimeError(f"cluster nodes not ready: {not_ready or status['nodes']}")
    log(f"cluster of {nodes} node(s) up at {status['url']} in {time.monotonic() - started:.1f}s")
    return Cluster(directory, status)


def cluster_down(directory: Path) -> None:
    if not (directory / "cluster.json").exists():
        return
    try:
        run_cluster(directory, "down", timeout=180)
        log("cluster down")
    except (RuntimeError, subprocess.SubprocessError) as exc:
        log(f"could not bring the cluster in {directory} down: {exc}")


# --- CPU accounting ------------------------------------------------------------------------


class ClusterCpu:
    """CPU seconds the cluster's processes use during a phase, by part, and what the rest of
    the machine does meanwhile (Linux /proc).

    Every process is sampled every 0.2 s and sorted by its place in the cluster: ``server``
    (the process groups of the app nodes: each is started in a session of its own),
    ``nginx`` (the master and its workers), ``db`` (children of the primary's or replica's
    postmaster whose title names the database: the backends, as ``bench.enroll.BackendCpu``
    counts them), ``pg`` (the postmasters' other processes: WAL writer, replication),
    ``rest`` (worker, Redis). A process that exits is counted up to its last sample (a
    slight undercount). ``kernel`` = cores in interrupt handlers, mostly the loopback
    network's soft interrupts: work the load causes that no process is charged for.
    ``others`` = cores busy with processes that are none of these nor this script and its
    children (wrk, pgbench).
    """

    PARTS = ("server", "nginx", "db", "pg", "rest")

    def __init__(self, cluster: Cluster) -> None:
        self._nodes = cluster.node_pids
        self._nginx = cluster.nginx_pid
        self._postmasters = cluster.postmaster_pids
        self._rest = cluster.other_pids
        self._needle = f" {DBNAME} ".encode()
        self._tick = os.sysconf("SC_CLK_TCK")
        self._start: dict[int, tuple[str, float]] = {}
        self._last: dict[int, tuple[str, float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._machine_start = (0.0, 0.0, 0.0, 0.0)
        self.others = 0.0
        self.kernel = 0.0

    def _part(self, pid: int, ppid: int, pgrp: int) -> str | None:
        if pgrp in self._nodes:
            return "server"
        if self._nginx is not None and self._nginx in (pid, ppid):
            return "nginx"
        if ppid in self._postmasters:
            try:
                title = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                return None
            return "db" if self._needle in title else "pg"
        if pid in self._postmasters:
            return "pg"
        if pgrp in self._rest or pid in self._rest:
            return "rest"
        return None

    def _sample(self) -> dict[int, tuple[str, float]]:
        found: dict[int, tuple[str, float]] = {}
        for process in processes():
            part = self._part(process.pid, process.ppid, process.pgrp)
            if part is not None:
                found[process.pid] = (part, process.cpu_seconds)
        return found

    def _machine(self) -> tuple[float, float, float, float]:
        """(wall, processes busy, own, interrupts) seconds; own = this process + its reaped
        children."""
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        user, nice, system, _idle, _iowait, irq, softirq = fields[:7]
        me = resource.getrusage(resource.RUSAGE_SELF)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        own = me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime
        tick = self._tick
        return time.monotonic(), (user + nice + system) / tick, own, (irq + softirq) / tick

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self._last.update(self._sample())

    def __enter__(self) -> ClusterCpu:
        self._machine_start = self._machine()
        self._start = self._sample()
        self._last = dict(self._start)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self._last.update(self._sample())
        wall, busy, own, interrupts = self._machine()
        w0, b0, o0, i0 = self._machine_start
        cluster = sum(self.seconds(part) for part in self.PARTS)
        elapsed = max(wall - w0, 1e-9)
        self.others = max(busy - b0 - (own - o0) - cluster, 0.0) / elapsed
        self.kernel = (interrupts - i0) / elapsed

    def seconds(self, part: str) -> float:
        total = 0.0
        for pid, (which, cpu) in self._last.items():
            if which == part:
                total += cpu - self._start.get(pid, (which, 0.0))[1]
        return total


# --- seeding -------------------------------------------------------------------------------


async def seed(cluster: Cluster, args: argparse.Namespace) -> None:
    """Two open terms without waiting room, their sections, the students (through nginx)."""
    password = (cluster.directory / "admin-password").read_text().strip()
    async with HttpPool(cluster.url, size=8, timeout=120) as http:
        r = await http.post("/api/v1/auth/token", json={"username": "admin", "password": password})
        r.raise_for_status()
        admin = {"Authorization": f"Bearer {r.json()['access_token']}"}
        await seed_bench_terms(http, admin, args)


async def mint_tokens(cluster: Cluster) -> list[str]:
    """The students' bearer tokens in student-id order, signed with the cluster's secret
    like a login's (thousands of password logins would only slow the setup down)."""
    conn = await asyncpg.connect(asyncpg_dsn(cluster.primary), timeout=10)
    try:
        rows = await conn.fetch(
            "SELECT s.id AS student_pk, u.id AS user_pk, u.username FROM students s "
            "JOIN users u ON u.id = s.user_id WHERE s.student_id LIKE 'b%' "
            "ORDER BY s.student_id"
        )
    finally:
        await conn.close()
    secret = (cluster.directory / "secret_key").read_text().strip()
    signer = JwtSigner(secret, SystemClock(), timedelta(hours=4))
    return [
        signer.issue(Principal(r["user_pk"], r["username"], "student", r["student_pk"]))[0]
        for r in rows
    ]


async def check_token(cluster: Cluster, token: str) -> None:
    """One minted token must be accepted (a GET that changes nothing)."""
    async with httpx.AsyncClient(base_url=cluster.url, timeout=30) as client:
        r = await client.get(
            f"/api/v1/terms/{HTTP_TERM}/enrollments/me",
            headers={"Authorization": f"Bearer {token}"},
        )
    if r.status_code != 200:
        raise RuntimeError(f"a minted token is refused: {r.status_code} {r.text}")


# --- one node count ------------------------------------------------------------------------


@dataclass
class Row:
    nodes: int
    pgbench: Result
    enroll: Result
    healthz: Result
    nginx_cpu_ms: float | None = None  # per enroll
    kernel: float = 0.0  # cores in interrupts while enrolling
    others: float = 0.0  # the most of the three phases
    setup_s: float = 0.0
    failures: list[str] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        return self.enroll.ok_per_s / self.pgbench.ok_per_s if self.pgbench.ok_per_s else 0.0


def measure(nodes: int, args: argparse.Namespace, parent: Path) -> Row:
    directory = parent / f"stack-{nodes}"
    workdir = parent / f"work-{nodes}"
    workdir.mkdir()
    started = time.monotonic()
    try:
        cluster = cluster_up(directory, nodes)
        asyncio.run(seed(cluster, args))
        tokens = asyncio.run(mint_tokens(cluster))
        if len(tokens) != args.students:
            raise RuntimeError(f"{len(tokens)} tokens for {args.students} students")
        asyncio.run(check_token(cluster, tokens[0]))
        tokens_path = workdir / "tokens.txt"
        tokens_path.write_text("\n".join(tokens) + "\n")
        first = asyncio.run(first_student_pk(cluster.primary, args.students))
        setup = time.monotonic() - started
        log(f"{nodes} node(s): seeded in {setup:.1f}s (cluster up included)")
        failures: list[str] = []
        others: list[float] = []

        log(f"pgbench on the primary for {args.duration}s with {args.clients} clients")
        with ClusterCpu(cluster) as cpu:
            pgbench = run_pgbench(cluster.primary, args, workdir, first)
        rows = asyncio.run(enrolled_rows(cluster.primary, PG_TERM))
        pgbench.note += f", {rows} rows"
        pgbench.db_cpu_ms = 1000 * cpu.seconds("db") / max(rows, 1)
        others.append(cpu.others)
        failed = pgbench.note.split("failed ", 1)[1].split(",", 1)[0]
        if failed != "0":
            failures.append(f"{nodes} node(s): pgbench failed transactions: {failed}")

        log(f"enroll through nginx for {args.duration}s with {args.clients} clients (wrk)")
        path = f"/api/v1/terms/{HTTP_TERM}/enrollments"
        with ClusterCpu(cluster) as cpu:
            raw = run_wrk(
                cluster.url + path,
                args,
                workdir,
                WRK_ENROLL,
                [
                    str(tokens_path),
                    str(args.students),
                    str(args.sections),
                    str(args.wrk_threads),
                    path,
                ],
            )
            time.sleep(1)  # requests in flight at the end finish (and are counted) first
        enroll = wrk_result("enroll_nginx", raw, "201")
        rows = asyncio.run(enrolled_rows(cluster.primary, HTTP_TERM))
        ok = int(raw["statuses"].get("201", 0))
        enroll.note += f", {rows} rows"
        # Requests still in flight when wrk stops commit uncounted: at most --clients.
        if not ok <= rows <= ok + args.clients:
            enroll.note += f" (MISMATCH: {ok} x 201)"
            failures.append(f"{nodes} node(s): {ok} x 201 but {rows} enrollment rows")
        unexpected = {k: v for k, v in raw["statuses"].items() if k != "201"}
        if unexpected or raw["errors"]:
            failures.append(
                f"{nodes} node(s): enroll answered {unexpected} besides 201, "
                f"{raw['errors']} socket errors"
            )
        enroll.server_cpu_ms = 1000 * cpu.seconds("server") / max(rows, 1)
        enroll.db_cpu_ms = 1000 * cpu.seconds("db") / max(rows, 1)
        nginx_cpu_ms = 1000 * cpu.seconds("nginx") / max(rows, 1)
        kernel = cpu.kernel
        others.append(cpu.others)

        log(f"GET /healthz through nginx for {args.duration}s with {args.clients} clients")
        with ClusterCpu(cluster) as cpu:
            raw = run_wrk(f"{cluster.url}/healthz", args, workdir, WRK_PLAIN, [])
        healthz = wrk_result("healthz_nginx", raw, None)
        if raw["errors"]:
            failures.append(f"{nodes} node(s): healthz had {raw['errors']} errors/non-2xx")
        healthz.server_cpu_ms = 1000 * cpu.seconds("server") / max(raw["requests"], 1)
        others.append(cpu.others)

        logs = directory / "logs"
        for log_file in sorted(logs.glob("node*.log")):
            if "Traceback" in log_file.read_text(errors="replace"):
                failures.append(f"{nodes} node(s): {log_file.name} logged a traceback")
        return Row(
            nodes,
            pgbench,
            enroll,
            healthz,
            nginx_cpu_ms=nginx_cpu_ms,
            kernel=kernel,
            others=max(others),
            setup_s=setup,
            failures=failures,
        )
    finally:
        if args.keep and directory.exists():
            shutil.copytree(directory / "logs", workdir / "logs", dirs_exist_ok=True)
        cluster_down(directory)


# --- main ------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", default="1,2,3", help="node counts to run (1,2,3)")
    parser.add_argument("--clients", type=int, default=64, help="concurrent clients (64)")
    parser.add_argument("--duration", type=int, default=10, help="seconds per measurement")
    parser.add_argument("--sections", type=int, default=200)
    parser.add_argument("--students", type=int, default=3000)
    parser.add_argument("--wrk-threads", type=int, default=1)
    parser.add_argument("--pgbench-threads", type=int, default=2)
    parser.add_argument("--pgbench", default=shutil.which("pgbench") or "/usr/bin/pgbench")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (logs)")
    args = parser.parse_args(argv)
    try:
        args.node_counts = [int(n) for n in args.nodes.split(",") if n.strip()]
    except ValueError:
        parser.error(f"--nodes: comma-separated numbers, not {args.nodes!r}")
    if not args.node_counts or min(args.node_counts) < 1:
        parser.error("--nodes: at least one node count, each >= 1")
    args.wrk = shutil.which("wrk")
    if args.wrk is None:
        parser.error("wrk is not installed (apt-get install -y wrk)")
    if not Path(args.pgbench).exists():
        parser.error(f"pgbench not found at {args.pgbench}")
    return args


def print_table(rows: list[Row], args: argparse.Namespace, load: float) -> None:
    print()
    print(
        f"clients={args.clients} duration={args.duration}s sections={args.sections} "
        f"students={args.students} wrk_threads={args.wrk_threads} "
        f"pgbench_threads={args.pgbench_threads} load average at start={load:.2f}"
    )
    print(
        f"NOTE: the app nodes (1 uvicorn worker each), nginx, PostgreSQL (primary + replica), "
        f"Redis, the worker, wrk and pgbench all share this machine's {os.cpu_count()} cores."
    )
    print(
        "cpu/op = CPU milliseconds per successful enroll, from /proc: 'server' = all app "
        "nodes, 'nginx' = nginx, 'db' = the database's backends (raw = during pgbench); "
        "'kernel' = cores in interrupts while enrolling (loopback networking); "
        "'others' = cores busy with processes that are not the bench's (most of the 3 runs)."
    )

    print(
        f"{'nodes':>5} {'pgbench_raw/s':>13} {'enroll_nginx/s':>14} {'p50 ms':>7} "
        f"{'p99 ms':>7} {'healthz_nginx/s':>15} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'server cpu/op':>13} {'nginx cpu/op':>12} {'db cpu/op':>9} {'db raw':>6} "
        f"{'kernel':>6} {'others':>6} {'ratio':>5}"
    )
    for r in rows:
        print(
            f"{r.nodes:>5} {r.pgbench.ok_per_s:>13.1f} {r.enroll.ok_per_s:>14.1f} "
            f"{cell(r.enroll.p50_ms, 7)} {cell(r.enroll.p99_ms, 7)} "
            f"{r.healthz.ok_per_s:>15.1f} {cell(r.healthz.p50_ms, 7)} "
            f"{cell(r.healthz.p99_ms, 7)} {cell(r.enroll.server_cpu_ms, 13, 3)} "
            f"{cell(r.nginx_cpu_ms, 12, 3)} {cell(r.enroll.db_cpu_ms, 9, 3)} "
            f"{cell(r.pgbench.db_cpu_ms, 6, 3)} {r.kernel:>6.2f} {r.others:>6.2f} "
            f"{r.ratio:>5.2f}"
        )
    print()
    for r in rows:
        print(
            f"{r.nodes} node(s): pgbench {r.pgbench.note}; enroll {r.enroll.note}; "
            f"healthz {r.healthz.note}, server cpu/op {cell(r.healthz.server_cpu_ms, 0, 3)}; "
            f"cluster up + seeding {r.setup_s:.0f}s"
        )
    busiest = max(rows, key=lambda r: r.others)
    if busiest.others > OTHERS_WARN:
        print(
            f"WARNING: other processes kept {busiest.others:.2f} cores busy during the "
            f"{busiest.nodes}-node runs: its rates are not comparable."
        )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # SIGTERM (a CI timeout, kill) unwinds like Ctrl-C, so every cluster is brought down.
    signal.signal(signal.SIGTERM, interrupt)
    load = os.getloadavg()[0]
    started = time.monotonic()
    # Not a private temp folder: PostgreSQL runs as the postgres user when we are root.
    parent = Path(tempfile.mkdtemp(prefix="rushgate-bench-cluster-"))
    parent.chmod(0o755)
    rows: list[Row] = []
    try:
        for nodes in args.node_counts:
            rows.append(measure(nodes, args, parent))
        print_table(rows, args, load)
        failures = [f for r in rows for f in r.failures]
        for failure in failures:
            print(f"FAILED: {failure}")
        print(f"total time {time.monotonic() - started:.0f}s")
        parts = ", ".join(f"{r.nodes} node{'s' if r.nodes > 1 else ''} {r.ratio:.2f}" for r in rows)
        print(f"ratio enroll_via_nginx/pgbench_raw: {parts} (target >= 0.5)")
        return 1 if failures else 0
    except KeyboardInterrupt:
        log("interrupted; cleaning up")
        return 130
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        if args.keep:
            log(f"work dirs (pgbench/wrk output, logs) kept in {parent}")
        else:
            shutil.rmtree(parent, ignore_errors=True)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (httpx.HTTPError, RuntimeError) as exc:
        log(f"failed: {exc}")
        sys.exit(1)
