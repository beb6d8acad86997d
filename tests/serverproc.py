"""Run real ``rushgate serve`` processes for end-to-end tests and benchmarks.

One :class:`ServerProcess` is one node: ``rushgate serve`` (uvicorn, N workers) started as a
subprocess in its own process group, with an explicit environment (nothing ``RUSHGATE_*``
leaks in from the developer's shell), its output in a log file, ready once ``/readyz``
answers 200. :meth:`ServerProcess.stop` sends SIGTERM to the whole group, then SIGKILL after
a grace period; it is idempotent, and every started server is also stopped at interpreter
exit, so a failing or interrupted test never leaves a node behind.

Several nodes on one database (for later multi-node tests)::

    with ServerGroup() as group:
        a = group.start(ServerConfig(database_url=url, log_dir=tmp_path, name="a"))
        b = group.start(ServerConfig(database_url=url, log_dir=tmp_path, name="b"))

or in async code ``await a.astart()`` / ``await a.astop()`` (the blocking parts run in a
thread, so the event loop keeps going).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Self

import httpx

from tests.support import REDIS_URL

DEFAULT_SECRET = "serverproc-secret-key-that-is-long-enough-0123456789"
DEFAULT_ADMIN = ("testadmin", "testadmin-password")

_LIVE: set[ServerProcess] = set()


def free_port(host: str = "127.0.0.1") -> int:
    """A port the kernel just handed out (and took back): free unless someone races us."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True, slots=True)
class ProcStat:
    """One process as /proc/<pid>/stat tells it."""

    pid: int
    ppid: int
    pgrp: int
    cpu_seconds: float  # user + system so far


def proc_stat(pid: int) -> ProcStat | None:
    """One process (Linux /proc), or None once it has exited."""
    try:
        # Fields after the ")" that ends the command name: state is field 3.
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    # fields 4, 5: parent, process group; 14, 15: utime, stime
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return ProcStat(pid, int(fields[1]), int(fields[2]), cpu)


def processes() -> Iterator[ProcStat]:
    """Every process alive now (nothing where /proc is missing)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (process := proc_stat(int(entry.name))) is not None:
            yield process


def cluster_cli(
    directory: Path, *args: str, timeout: float, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``rushgate cluster <args> --dir <directory>`` with cheap password hashing; ``env``
    adds to (or overrides) the environment."""
    env = {**os.environ, "RUSHGATE_PASSWORD_HASH_COST": "low", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "rushgate.cli", "cluster", *args, "--dir", str(directory)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


def _clean_environ() -> dict[str, str]:
    """The parent's environment without any RUSHGATE_* setting (PATH, HOME, locale stay)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("RUSHGATE_")}


@dataclass
class ServerConfig:
    """What one node is started with. ``database_url=None`` means the embedded SQLite
    default in ``data_dir`` (which ``serve`` seeds with a demo term when empty)."""

    log_dir: Path
    database_url: str | None = None
    data_dir: Path | None = None  # default: log_dir / f"{name}-data"
    name: str = "node"
    host: str = "127.0.0.1"
    port: int | None = None  # default: a free port
    workers: int = 2
    secret_key: str | None = DEFAULT_SECRET
    admin: tuple[str, str] | None = DEFAULT_ADMIN
    password_hash_cost: str = "low"
    log_level: str = "info"
    # Several workers coordinate through Redis; each config gets its own key prefix,
    # shared by the nodes of one group.
    redis_url: str | None = REDIS_URL
    redis_prefix: str = field(default_factory=lambda: f"rgtest:{uuid.uuid4().hex[:10]}:")
    extra_env: dict[str, str] = field(default_factory=dict)
    ready_timeout: float = 60.0
    stop_timeout: float = 15.0

    def environ(self, data_dir: Path) -> dict[str, str]:
        env = _clean_environ()
        env["PYTHONUNBUFFERED"] = "1"
        env["RUSHGATE_DATA_DIR"] = str(data_dir)
        env["RUSHGATE_PASSWORD_HASH_COST"] = self.password_hash_cost
        if self.database_url is not None:
            env["RUSHGATE_DATABASE_URL"] = self.database_url
        if self.secret_key is not None:
            env["RUSHGATE_SECRET_KEY"] = self.secret_key
        if self.admin is not None:
            env["RUSHGATE_ADMIN_USERNAME"], env["RUSHGATE_ADMIN_PASSWORD"] = self.admin
        if self.redis_url is not None:
            env["RUSHGATE_REDIS_URL"] = self.redis_url
            env["RUSHGATE_REDIS_KEY_PREFIX"] = self.redis_prefix
        env.update(self.extra_env)
        return env


class ServerNotReady(RuntimeError):
    pass


class ServerProcess:
    """One ``rushgate serve`` node. Use as a (sync) context manager, or start/stop."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.port = config.port or free_port(config.host)
        self.base_url = f"http://{config.host}:{self.port}"
        self.data_dir = config.data_dir or config.log_dir / f"{config.name}-data"
        self.log_path = config.log_dir / f"{config.name}-{self.port}.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    # --- lifecycle ---------------------------------------------------------------------

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "rushgate.cli",
            "serve",
            "--host",
            self.config.host,
            "--port",
            str(self.port),
            "--workers",
            str(self.config.workers),
            "--log-level",
            self.config.log_level,
        ]

    def start(self) -> Self:
        """Spawn the node and wait until ``/readyz`` says ready (or raise, after stopping it)."""
        if self._proc is not None and self._proc.poll() is None:
            raise RuntimeError("already running")
        self.config.log_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self._proc = subprocess.Popen(
            self.command(),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=self.config.environ(self.data_dir),
            cwd=self.data_dir,
            start_new_session=True,  # its own process group: one signal reaches every worker
        )
        _LIVE.add(self)
        try:
            self.wait_ready(self.config.ready_timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                code = self.returncode
                if code is not None:
                    raise ServerNotReady(
                        f"{self.config.name} exited with {code} before it was ready\n"
                        + self.log_tail()
                    )
                try:
                    response = client.get(self.base_url + "/readyz")
                    if response.status_code == 200:
                        return
                    last = f"{response.status_code} {response.text[:200]}"
                except httpx.HTTPError as exc:
                    last = repr(exc)
                time.sleep(0.1)
        raise ServerNotReady(
            f"{self.config.name} not ready after {timeout:.0f}s ({last})\n" + self.log_tail()
        )

    def stop(self) -> int | None:
        """SIGTERM the process group, SIGKILL it after ``stop_timeout``. Idempotent."""
        proc = self._proc
        if proc is None:
            return None
        try:
            if proc.poll() is None:
                self._signal_group(proc, signal.SIGTERM)
                try:
                    proc.wait(self.config.stop_timeout)
                except subprocess.TimeoutExpired:
                    self._signal_group(proc, signal.SIGKILL)
                    proc.wait(10)
            # Workers outlive a killed supervisor now and then: sweep the group anyway.
            self._signal_group(proc, signal.SIGKILL)
            return proc.returncode
        finally:
            _LIVE.discard(self)
            if self._log is not None:
                self._log.close()
                self._log = None

    @staticmethod
    def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)  # start_new_session: the group id is the leader's pid

    def restart(self) -> Self:
        """Stop (if running) and start again on the same port, data dir and log file."""
        self.stop()
        return self.start()

    async def astart(self) -> Self:
        await asyncio.to_thread(self.start)
        return self

    async def astop(self) -> int | None:
        return await asyncio.to_thread(self.stop)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- inspection --------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    @property
    def returncode(self) -> int | None:
        return None if self._proc is None else self._proc.poll()

    def cpu_seconds(self) -> float:
        """CPU time (user + system) used so far by the live processes of this node's group
        (the supervisor and its workers). Linux only; 0.0 where /proc is missing."""
        if self._proc is None:
            return 0.0
        group = self._proc.pid
        return sum(p.cpu_seconds for p in processes() if p.pgrp == group)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        tail = self.log_text().splitlines()[-lines:]
        return f"--- last {len(tail)} lines of {self.log_path} ---\n" + "\n".join(tail)

    def __repr__(self) -> str:
        return f"<ServerProcess {self.config.name} {self.base_url} pid={self.pid}>"


class ServerGroup:
    """Several nodes that are stopped together (in reverse start order), whatever happens."""

    def __init__(self) -> None:
        self.servers: list[ServerProcess] = []

    def start(self, config: ServerConfig) -> ServerProcess:
        server = ServerProcess(config)
        self.servers.append(server)
        return server.start()

    async def astart(self, config: ServerConfig) -> ServerProcess:
        server = ServerProcess(config)
        self.servers.append(server)
        return await server.astart()

    def stop(self) -> None:
        for server in reversed(self.servers):
            server.stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


class HttpPool:
    """Many concurrent requests to one node, over ``size`` keep-alive connections.

    Made of ``size`` single-connection ``httpx.AsyncClient``s handed out through a queue:
    one ``AsyncClient`` with a pool of 200 connections spends its time in its own pool
    bookkeeping once a thousand requests wait (measured here: ~50 req/s against a node that
    serves 6,000/s), while single-connection clients stay cheap. ``peak`` is the most
    requests that were on the wire at once.
    """

    def __init__(self, base_url: str, size: int = 200, timeout: float = 60.0) -> None:
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        tls = ssl.create_default_context()  # one for all: each default one costs ~30 ms
        self._clients = [
            httpx.AsyncClient(base_url=base_url, limits=limits, timeout=timeout, verify=tls)
            for _ in range(size)
        ]
        self._idle: asyncio.Queue[httpx.AsyncClient] = asyncio.Queue()
        for client in self._clients:
            self._idle.put_nowait(client)
        self.size = size
        self.in_flight = 0
        self.peak = 0

    async def request(self, method: str, url: str, **kwargs: object) -> httpx.Response:
        client = await self._idle.get()
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            return await client.request(method, url, **kwargs)  # type: ignore[arg-type]
        finally:
            self.in_flight -= 1
            self._idle.put_nowait(client)

    async def get(self, url: str, **kwargs: object) -> httpx.Response:
        return await self.request("GET", url, **kwargs)

    async def post(self, url: str, **kwargs: object) -> httpx.Response:
        return await self.request("POST", url, **kwargs)

    async def put(self, url: str, **kwargs: object) -> httpx.Response:
        return await self.request("PUT", url, **kwargs)

    async def delete(self, url: str, **kwargs: object) -> httpx.Response:
        return await self.request("DELETE", url, **kwargs)

    async def warm_up(self) -> None:
        """Open every connection (a GET /healthz on each), so a race measures the server."""
        responses = await asyncio.gather(*(c.get("/healthz") for c in self._clients))
        bad = [r.status_code for r in responses if r.status_code != 200]
        assert not bad, bad

    def reset_peak(self) -> None:
        self.peak = self.in_flight

    async def aclose(self) -> None:
        await asyncio.gather(*(c.aclose() for c in self._clients))

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()


@atexit.register
def _stop_leftovers() -> None:
    for server in list(_LIVE):
        server.stop()
