"""``rushgate cluster``: the production topology as processes on one machine.

A PostgreSQL primary and a streaming replica, Redis with its append-only file, N app
nodes, one worker and nginx in front, then (when installed) the node, nginx, PostgreSQL
(primary and replica) and Redis exporters, Alertmanager and Prometheus scraping every
node and exporter, all on loopback ports, from the machine's own Debian packages.
Everything lives in one folder (data, ``logs/``, and ``cluster.json``, which records
what was started so ``down`` stops exactly that). Start order is health-checked: each
part must answer before the next one starts.

PostgreSQL refuses to run as root; when run as root the database processes run as the
``postgres`` user.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess  # runs this machine's own fixed commands  # nosec B404
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from rushgate.cluster.monitoring import (
    RETENTION,
    Exporter,
    MonitoringConfigError,
    Target,
    render_prometheus_config,
    write_alertmanager_config,
)
from rushgate.cluster.nginx import STATUS_PATH, Upstream, render_nginx_conf, template_dir

STATE_FILE = "cluster.json"
# The monitoring parts, in start order: State field -> (what to call it, the Debian
# package's executable).
MONITORING = {
    "node_exporter": ("node exporter", "prometheus-node-exporter"),
    "nginx_exporter": ("nginx exporter", "prometheus-nginx-exporter"),
    "postgres_exporter": ("PostgreSQL exporter (primary)", "prometheus-postgres-exporter"),
    "postgres_replica_exporter": (
        "PostgreSQL exporter (replica)",
        "prometheus-postgres-exporter",
    ),
    "redis_exporter": ("Redis exporter", "prometheus-redis-exporter"),
    "alertmanager": ("Alertmanager", "prometheus-alertmanager"),
    "prometheus": ("Prometheus", "prometheus"),
}
# The exporters as Prometheus scrapes them: State field -> (job, instance, PostgreSQL role),
# the job names of deploy/prometheus/prometheus.yml, which the rules and dashboards use.
EXPORTER_TARGETS: dict[str, tuple[str, str, str | None]] = {
    "nginx_exporter": ("nginx", "nginx", None),
    "postgres_exporter": ("postgres", "postgres-primary", "primary"),
    "postgres_replica_exporter": ("postgres", "postgres-replica", "replica"),
    "redis_exporter": ("redis", "redis", None),
}
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
KILL_TIMEOUT = 5.0
LOCAL_RATE_PER_SECOND = 20_000
# How long a reload takes to put new nginx workers in place on this machine.
NGINX_RELOAD_SECONDS = 0.5


class ClusterError(RuntimeError):
    """Something the operator must fix; the message says what."""


@dataclass
class Node:
    name: str
    port: int
    pid: int
    log: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class State:
    """What ``up`` started, as written to ``cluster.json``."""

    directory: str
    nginx_port: int
    primary_port: int
    replica_port: int
    redis_port: int
    nodes: list[Node] = field(default_factory=list)
    worker: Node | None = None
    balance: str = "round_robin"
    weights: list[int] = field(default_factory=list)
    # nginx's loopback-only stub_status listener (0: a state written before it existed).
    nginx_status_port: int = 0
    node_exporter: Node | None = None
    nginx_exporter: Node | None = None
    postgres_exporter: Node | None = None
    postgres_replica_exporter: Node | None = None
    redis_exporter: Node | None = None
    alertmanager: Node | None = None
    prometheus: Node | None = None

    def monitoring(self) -> list[Node]:
        """The monitoring parts that were started, in start order."""
        parts: list[Node | None] = [getattr(self, key) for key in MONITORING]
        return [part for part in parts if part is not None]

    @property
    def nginx_status_url(self) -> str:
        return f"http://127.0.0.1:{self.nginx_status_port}{STATUS_PATH}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.nginx_port}"

    @property
    def primary_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.primary_port}/rushgate"

    @property
    def replica_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.replica_port}/rushgate"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    def save(self) -> None:
        path = Path(self.directory) / STATE_FILE
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, directory: Path) -> State:
        path = directory / STATE_FILE
        if not path.exists():
            raise ClusterError(f"no cluster is up in {directory} (no {STATE_FILE})")
        raw: dict[str, Any] = json.loads(path.read_text())
        raw["nodes"] = [Node(**n) for n in raw["nodes"]]
        for key in ("worker", *MONITORING):
            raw[key] = Node(**raw[key]) if raw.get(key) else None
        return cls(**raw)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait(what: str, check: Callable[[], bool], timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise ClusterError(f"{what} did not come up within {timeout:.0f}s")


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback  # nosec B310
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _ready(base_url: str) -> Callable[[], bool]:
    return lambda: _answers(f"{base_url}/readyz")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still "exists"; treat it as gone.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _pg_bin(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    for directory in versions:
        if (directory / name).exists():
            return str(directory / name)
    raise ClusterError(
        f"{name} not found: install PostgreSQL (sudo ./scripts/ensure-services postgresql)"
    )


def _as_postgres(command: Sequence[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run it as ``postgres`` then."""
    if os.geteuid() != 0:
        return list(command)
    return ["runuser", "-u", "postgres", "--", *command]


def _run(command: Sequence[str], what: str, **kwargs: Any) -> None:
    result = subprocess.run(  # noqa: S603 - our own fixed commands  # nosec B603
        list(command), capture_output=True, text=True, check=False, **kwargs
    )
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()[-5:]
        raise ClusterError(f"{what} failed: " + " | ".join(detail))


def _postgres_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(path, "postgres", "postgres")
    path.chmod(0o700)


def _pg_ready(port: int) -> Callable[[], bool]:
    def check() -> bool:
        result = subprocess.run(  # noqa: S603 - a fixed command  # nosec B603
            [_pg_bin("pg_isready"), "-h", "127.0.0.1", "-p", str(port)],
            capture_output=True,
            check=False,
        )
        return result.returncode == 0

    return check


def _check_postgres_can_reach(directory: Path) -> None:
    if os.geteuid() != 0:
        return
    reachable = subprocess.run(  # noqa: S603 - fixed, runuser from PATH  # nosec B603 B607
        ["runuser", "-u", "postgres", "--", "test", "-x", str(directory)],  # noqa: S607
        capture_output=True,
        check=False,
    )
    if reachable.returncode != 0:
        raise ClusterError(
            f"the postgres user cannot reach {directory} (PostgreSQL does not run as root): "
            "choose a --dir whose parent folders every user may enter"
        )


def _start_primary(directory: Path, port: int, logs: Path) -> None:
    data = directory / "pg" / "primary"
    _check_postgres_can_reach(directory)
    _postgres_dir(directory / "pg")
    _postgres_dir(data)
    _run(
        _as_postgres(
            [_pg_bin("initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"]
        ),
        "initdb",
    )
    settings = {
        "port": str(port),
        "listen_addresses": "'127.0.0.1'",
        "unix_socket_directories": f"'{directory / 'pg'}'",
        "wal_level": "replica",
        "max_wal_senders": "5",
        "hot_standby": "on",
        "max_connections": "300",
        "fsync": "on",
    }
    with (data / "postgresql.conf").open("a") as conf:
        conf.write("\n# rushgate cluster\n")
        conf.writelines(f"{key} = {value}\n" for key, value in settings.items())
    with (data / "pg_hba.conf").open("a") as hba:
        hba.write("host replication postgres 127.0.0.1/32 trust\n")
    _pg_ctl_start(data, logs / "postgres-primary.log")
    _wait("the PostgreSQL primary", _pg_ready(port))
    _run(
        [_pg_bin("createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "rushgate"],
        "createdb",
    )


def _start_replica(directory: Path, primary_port: int, port: int, logs: Path) -> None:
    data = directory / "pg" / "replica"
    _postgres_dir(data)
    _run(
        _as_postgres(
            [
                _pg_bin("pg_basebackup"),
                "-h",
                "127.0.0.1",
                "-p",
                str(primary_port),
                "-U",
                "postgres",
                "-D",
                str(data),
                "-R",
                "-X",
                "stream",
                "--checkpoint=fast",  # a spread checkpoint makes this wait ~90 s
            ]
        ),
        "pg_basebackup",
    )
    with (data / "postgresql.conf").open("a") as conf:
        conf.write(f"port = {port}\n")
    _pg_ctl_start(data, logs / "postgres-replica.log")
    _wait("the PostgreSQL replica", _pg_ready(port))


def _pg_ctl_start(data: Path, log: Path) -> None:
    log.touch()
    if os.geteuid() == 0:
        shutil.chown(log, "postgres", "postgres")
    _run(
        _as_postgres([_pg_bin("pg_ctl"), "-D", str(data), "-l", str(log), "-w", "start"]),
        f"pg_ctl start ({data.name})",
    )


def _stop_postgres(data: Path) -> None:
    if not (data / "postmaster.pid").exists():
        return
    subprocess.run(  # noqa: S603 - a fixed command  # nosec B603
        _as_postgres([_pg_bin("pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]),
        capture_output=True,
        check=False,
    )


def _start_redis(directory: Path, port: int, logs: Path) -> None:
    server = shutil.which("redis-server")
    if server is None:
        raise ClusterError("redis-server not found (sudo ./scripts/ensure-services redis)")
    data = directory / "redis"
    data.mkdir(parents=True, exist_ok=True)
    _run(
        [
            server,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(data),
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--save",
            "",
            "--daemonize",
            "yes",
            "--pidfile",
            str(data / "redis.pid"),
            "--logfile",
            str(logs / "redis.log"),
        ],
        "redis-server",
    )

    def answers() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    _wait("Redis", answers)


def _pid_file(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _environment(state: State, directory: Path) -> dict[str, str]:
    """The caller's environment (other ``RUSHGATE_*`` settings pass through, e.g. the
    password hash cost), with the parts of this cluster filled in."""
    env = dict(os.environ)
    env.update(
        {
            "RUSHGATE_DATABASE_URL": state.primary_url,
            "RUSHGATE_DATABASE_REPLICA_URL": state.replica_url,
            "RUSHGATE_REDIS_URL": state.redis_url,
            "RUSHGATE_SECRET_KEY": (directory / "secret_key").read_text().strip(),
            "RUSHGATE_DATA_DIR": str(directory / "data"),
            "PYTHONUNBUFFERED": "1",
        }
    )
    # Longer than nginx's idle keepalive to the nodes (4 s): by the time a stopping node
    # closes its connections, nginx holds none of them idle (see CloseWhileDraining).
    env.setdefault("RUSHGATE_SHUTDOWN_DRAIN_SECONDS", "5")
    # The nodes listen on loopback and only this stack's nginx (on 127.0.0.1) reaches
    # them: its X-Forwarded-For / X-Real-IP, and nothing else, names the client.
    env["RUSHGATE_TRUSTED_PROXIES"] = "127.0.0.1"
    return env


def _launch(
    name: str, command: Sequence[str], logs: Path, port: int, env: dict[str, str] | None = None
) -> Node:
    log = logs / f"{name}.log"
    with log.open("ab") as out:
        process = subprocess.Popen(  # noqa: S603 - the stack's own commands  # nosec B603
            list(command),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # its own process group: stop it and its workers
        )
    return Node(name=name, port=port, pid=process.pid, log=str(log))


def _spawn(name: str, args: Sequence[str], env: dict[str, str], logs: Path, port: int) -> Node:
    return _launch(name, [sys.executable, "-m", "rushgate.cli", *args], logs, port, env)


def _spawn_node(env: dict[str, str], directory: Path, name: str, port: int) -> Node:
    # Logs at info: one JSON access line per request, with nginx's request id.
    args = ["serve", "--host", "127.0.0.1", "--port", str(port), "--log-level", "info"]
    return _spawn(name, args, {**env, "RUSHGATE_NODE_NAME": name}, directory / "logs", port)


def _wait_ready(node: Node) -> None:
    _wait(f"app node {node.name} ({node.log})", _ready(node.url))


def start_node(state: State, directory: Path, name: str, port: int) -> Node:
    """Start one app node and wait until it is ready."""
    node = _spawn_node(_environment(state, directory), directory, name, port)
    _wait_ready(node)
    return node


def up(
    directory: Path,
    *,
    nodes: int = 3,
    weights: Sequence[int] = (),
    balance: Literal["round_robin", "least_conn"] = "round_robin",
    nginx_port: int | None = None,
    admin: tuple[str, str] | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> State:
    """Start the whole stack; on any failure, stop what was started and raise."""
    directory = directory.resolve()
    if (directory / STATE_FILE).exists():
        raise ClusterError(f"a cluster is already up in {directory}: rushgate cluster down")
    weights = list(weights) or [1] * nodes
    if len(weights) != nodes or min(weights) < 1:
        raise ClusterError(f"give one positive weight per node ({nodes}), e.g. 3,3,2")
    if directory.exists():
        shutil.rmtree(directory)  # a stopped cluster's leftovers: start clean
    logs = directory / "logs"
    logs.mkdir(parents=True)
    directory.chmod(0o755)
    secret = directory / "secret_key"
    secret.touch(mode=0o600)
    secret.write_text(os.urandom(32).hex())
    state = State(
        directory=str(directory),
        nginx_port=nginx_port or free_port(),
        primary_port=free_port(),
        replica_port=free_port(),
        redis_port=free_port(),
        balance=balance,
        weights=weights,
        nginx_status_port=free_port(),
    )
    state.save()  # from here on, ``down`` can clean up whatever got started
    try:
        progress(f"PostgreSQL primary on :{state.primary_port}")
        _start_primary(directory, state.primary_port, logs)
        progress(f"PostgreSQL streaming replica on :{state.replica_port}")
        _start_replica(directory, state.primary_port, state.replica_port, logs)
        progress(f"Redis (append-only file on) on :{state.redis_port}")
        _start_redis(directory, state.redis_port, logs)
        env = _environment(state, directory)
        if admin is not None:
            env["RUSHGATE_ADMIN_USERNAME"], env["RUSHGATE_ADMIN_PASSWORD"] = admin
        progress("migrations")
        _run([sys.executable, "-m", "rushgate.cli", "migrate"], "rushgate migrate", env=env)
        for n in range(1, nodes + 1):
            port = free_port()
            progress(f"app node {n} on :{port}")
            node = _spawn_node(env, directory, f"node{n}", port)
            state.nodes.append(node)
            state.save()  # before the wait: a node that never gets ready is still stopped
            _wait_ready(node)
        progress("worker")
        state.worker = _spawn(
            "worker", ["worker"], {**env, "RUSHGATE_NODE_NAME": "worker"}, logs, 0
        )
        state.save()
        progress(f"nginx on :{state.nginx_port}")
        _start_nginx(state, directory)
        _wait("nginx", lambda: _answers(f"{state.url}/readyz"))
        _start_monitoring(state, directory, progress)
    except BaseException:
        down(directory)
        raise
    return state


def _binary(executable: str) -> str | None:
    found = shutil.which(executable)
    if found is None and Path(f"/usr/bin/{executable}").exists():
        found = f"/usr/bin/{executable}"
    return found


def _wait_started(part: Node, url: str) -> None:
    """Wait until ``url`` answers; fail at once, with its log's end, if ``part`` exits."""

    def check() -> bool:
        if not _alive(part.pid):
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(part.pid, os.WNOHANG)
            tail = Path(part.log).read_text(errors="replace").strip().splitlines()[-5:]
            raise ClusterError(f"{part.name} exited ({part.log}): " + " | ".join(tail))
        return _answers(url)

    _wait(f"{part.name} ({part.log})", check)


def _metrics_show(url: str, series: str) -> bool:
    """Whether the exposition at ``url`` has the unlabelled ``series`` at value 1."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback  # nosec B310
            text = response.read().decode(errors="replace")
    except (urllib.error.URLError, OSError):
        return False
    return any(line.split() == [series, "1"] for line in text.splitlines())


def _exporter_environment(**settings: str) -> dict[str, str]:
    """Only ``PATH`` and ``settings``: the exporters take defaults from variables such as
    ``REDIS_PASSWORD``, ``NGINX_PLUS`` or ``DATA_SOURCE_USER``, and the caller's must not
    point them elsewhere."""
    return {"PATH": os.environ.get("PATH", os.defpath), **settings}


def _start_part(
    state: State,
    key: str,
    command: Sequence[str],
    *,
    port: int,
    ready_path: str,
    logs: Path,
    progress: Callable[[str], None],
    env: dict[str, str] | None = None,
) -> Node:
    """Launch the monitoring part ``key``, record it (so ``down`` stops it even if it never
    answers), and wait until ``ready_path`` answers."""
    progress(f"{MONITORING[key][0]} on :{port}")
    part = _launch(key.replace("_", "-"), command, logs, port, env)
    setattr(state, key, part)
    state.save()
    _wait_started(part, f"{part.url}{ready_path}")
    return part


def _start_exporter(
    state: State,
    key: str,
    command: Sequence[str],
    *,
    port: int,
    up_series: str,
    logs: Path,
    progress: Callable[[str], None],
    env: dict[str, str],
) -> None:
    """An exporter answers ``/metrics`` even when it cannot reach what it watches; wait
    until its ``up_series`` says it does, so a wrong address fails ``up`` here."""
    part = _start_part(
        state, key, command, port=port, ready_path="/metrics", logs=logs, progress=progress, env=env
    )
    what = f"{part.name} ({part.log}): {up_series} never became 1"
    _wait(what, lambda: _metrics_show(f"{part.url}/metrics", up_series))


def _start_monitoring(state: State, directory: Path, progress: Callable[[str], None]) -> None:
    """Node exporter, the nginx, PostgreSQL (primary, replica) and Redis exporters,
    Alertmanager, then Prometheus, each one whose binary is installed (a missing one is
    skipped, and said so)."""
    logs = directory / "logs"
    binaries: dict[str, str] = {}
    for key, (label, executable) in MONITORING.items():
        found = _binary(executable)
        if found is None:
            progress(
                f"skipping {label}: {executable} is not installed"
                " (sudo ./scripts/ensure-services prometheus)"
            )
        else:
            binaries[key] = found

    def listen(port: int) -> str:
        return f"127.0.0.1:{port}"

    try:
        if "node_exporter" in binaries:
            port = free_port()
            command = [binaries["node_exporter"], f"--web.listen-address={listen(port)}"]
            _start_part(
                state,
                "node_exporter",
                command,
                port=port,
                ready_path="/metrics",
                logs=logs,
                progress=progress,
            )
        if "nginx_exporter" in binaries and state.nginx_status_port:
            port = free_port()
            # v0.11 takes Go-style single-dash flags.
            command = [
                binaries["nginx_exporter"],
                f"-nginx.scrape-uri={state.nginx_status_url}",
                f"-web.listen-address={listen(port)}",
            ]
            _start_exporter(
                state,
                "nginx_exporter",
                command,
                port=port,
                up_series="nginx_up",
                logs=logs,
                progress=progress,
                env=_exporter_environment(),
            )
        databases = {
            "postgres_exporter": state.primary_port,
            "postgres_replica_exporter": state.replica_port,
        }
        for key, database_port in databases.items():
            if key not in binaries:
                continue
            port = free_port()
            # The database the app uses, so pg_database_size_bytes{datname="rushgate"} and
            # the per-database statistics are there.
            dsn = f"postgresql://postgres@127.0.0.1:{database_port}/rushgate?sslmode=disable"
            _start_exporter(
                state,
                key,
                [binaries[key], f"--web.listen-address={listen(port)}"],
                port=port,
                up_series="pg_up",
                logs=logs,
                progress=progress,
                env=_exporter_environment(DATA_SOURCE_NAME=dsn),
            )
        if "redis_exporter" in binaries:
            port = free_port()
            command = [
                binaries["redis_exporter"],
                f"-redis.addr=redis://127.0.0.1:{state.redis_port}",
                f"-web.listen-address={listen(port)}",
            ]
            _start_exporter(
                state,
                "redis_exporter",
                command,
                port=port,
                up_series="redis_up",
                logs=logs,
                progress=progress,
                env=_exporter_environment(),
            )
        if "alertmanager" in binaries:
            port = free_port()
            home = directory / "alertmanager"
            conf = write_alertmanager_config(home, os.environ)
            command = [
                binaries["alertmanager"],
                f"--config.file={conf}",
                f"--storage.path={home / 'data'}",
                f"--web.listen-address={listen(port)}",
                "--cluster.listen-address=",  # one instance: no gossip port on 0.0.0.0
            ]
            _start_part(
                state,
                "alertmanager",
                command,
                port=port,
                ready_path="/-/ready",
                logs=logs,
                progress=progress,
            )
        if "prometheus" in binaries:
            port = free_port()
            home = directory / "prometheus"
            home.mkdir(parents=True, exist_ok=True)
            conf = home / "prometheus.yml"
            conf.write_text(
                render_prometheus_config(
                    nodes=[Target(node.name, node.port) for node in state.nodes],
                    prometheus_port=port,
                    alertmanager_port=state.alertmanager.port if state.alertmanager else None,
                    node_exporter_port=(state.node_exporter.port if state.node_exporter else None),
                    exporters=_exporters(state),
                )
            )
            command = [
                binaries["prometheus"],
                f"--config.file={conf}",
                f"--storage.tsdb.path={home / 'data'}",
                f"--storage.tsdb.retention.time={RETENTION}",
                f"--web.listen-address={listen(port)}",
            ]
            _start_part(
                state,
                "prometheus",
                command,
                port=port,
                ready_path="/-/ready",
                logs=logs,
                progress=progress,
            )
    except MonitoringConfigError as exc:
        raise ClusterError(str(exc)) from exc


def _exporters(state: State) -> list[Exporter]:
    """The exporters that were started, as Prometheus's scrape targets."""
    exporters = []
    for key, (job, instance, role) in EXPORTER_TARGETS.items():
        part: Node | None = getattr(state, key)
        if part is not None:
            exporters.append(Exporter(job, instance, part.port, role))
    return exporters


def _nginx_prefix(directory: Path) -> Path:
    return directory / "nginx"


def write_nginx_conf(state: State, directory: Path, *, without: str | None = None) -> Path:
    """nginx's config for the nodes of ``state`` (but the one named ``without``)."""
    prefix = _nginx_prefix(directory)
    (prefix / "logs").mkdir(parents=True, exist_ok=True)
    conf = prefix / "nginx.conf"
    conf.write_text(
        render_nginx_conf(
            listen_host="127.0.0.1",
            listen_port=state.nginx_port,
            upstreams=[
                Upstream("127.0.0.1", node.port, weight)
                for node, weight in zip(state.nodes, state.weights, strict=True)
                if node.name != without
            ],
            balance="least_conn" if state.balance == "least_conn" else "round_robin",
            prefix=prefix,
            errors_dir=template_dir() / "errors",
            # As the app's own RUSHGATE_MAX_BODY_BYTES default (bulk loads of students).
            client_max_body_size="8m",
            # Per client address; a local rehearsal sends everything from 127.0.0.1.
            rate_per_second=LOCAL_RATE_PER_SECOND,
            login_rate_per_second=LOCAL_RATE_PER_SECOND,
            status_port=state.nginx_status_port or None,
        )
    )
    return conf


def _nginx() -> str:
    found = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if found is None:
        raise ClusterError("nginx not found (sudo ./scripts/ensure-services nginx)")
    return found


def _start_nginx(state: State, directory: Path) -> None:
    conf = write_nginx_conf(state, directory)
    prefix = _nginx_prefix(directory)
    _run([_nginx(), "-t", "-c", str(conf), "-p", str(prefix)], "nginx -t")
    _run([_nginx(), "-c", str(conf), "-p", str(prefix)], "nginx")


def _proc_table() -> dict[int, tuple[str, int, int]]:
    """Every process: pid -> (state, parent pid, process group)."""
    table: dict[int, tuple[str, int, int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # exited while we looked
        table[int(entry.name)] = (fields[0], int(fields[1]), int(fields[2]))
    return table


def process_tree(root: int) -> set[int]:
    """``root``, every live process descended from it, and every member of its process
    group: what must be gone before a part of the stack counts as stopped (uvicorn
    workers, nginx workers, PostgreSQL backends)."""
    table = _proc_table()
    found = {root} if root in table else set()
    found |= {pid for pid, (_, _, group) in table.items() if group == root}
    frontier = list(found)
    while frontier:
        parent = frontier.pop()
        for pid, (_, ppid, _) in table.items():
            if ppid == parent and pid not in found:
                found.add(pid)
                frontier.append(pid)
    return {pid for pid in found if table[pid][0] != "Z"}


def _wait_gone(pids: set[int], timeout: float) -> set[int]:
    """Wait until none of ``pids`` runs; those still running after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        for pid in pids:  # reap our own children, or they linger as zombies
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(pid, os.WNOHANG)
        left = {pid for pid in pids if _alive(pid)}
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.05)


def _kill(pids: set[int]) -> set[int]:
    """SIGKILL what would not stop; what is still running even after that."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    return _wait_gone(pids, KILL_TIMEOUT)


def _stop_tree(root: int, signum: signal.Signals, *, group: bool = False) -> set[int]:
    """Signal ``root`` (its process group with ``group``), wait for its whole tree to exit,
    SIGKILL what is left; the pids that survived even that."""
    tree = process_tree(root)
    if not tree:
        return set()
    with contextlib.suppress(ProcessLookupError):
        if group:
            os.killpg(root, signum)
        else:
            os.kill(root, signum)
    left = _wait_gone(tree | process_tree(root), STOP_TIMEOUT)
    return _kill(left) if left else set()


def _stop_process(pid: int) -> set[int]:
    """SIGTERM an app node or worker and its process group, wait until every process of
    it has exited, then SIGKILL; the pids that survived."""
    return _stop_tree(pid, signal.SIGTERM, group=True)


def _postmaster_pid(data: Path) -> int | None:
    try:
        return int((data / "postmaster.pid").read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return None


def down(directory: Path) -> list[str]:
    """Stop what ``up`` recorded, in reverse start order, and return only once every
    process of it has exited; what was stopped. Raises ``ClusterError`` naming what
    would not die (the state file is kept, so ``down`` can be run again)."""
    directory = directory.resolve()
    state = State.load(directory)
    stopped: list[str] = []
    survivors: dict[str, set[int]] = {}

    def stopping(name: str, left: set[int]) -> None:
        stopped.append(name)
        if left:
            survivors[name] = left

    for part in reversed(state.monitoring()):
        if _alive(part.pid):
            stopping(part.name, _stop_tree(part.pid, signal.SIGTERM, group=True))
    nginx_pid = _pid_file(_nginx_prefix(directory) / "nginx.pid")
    if nginx_pid is not None and _alive(nginx_pid):
        # SIGQUIT: finish the requests in flight, then the master waits for its workers.
        stopping("nginx", _stop_tree(nginx_pid, signal.SIGQUIT))
    for node in [*([state.worker] if state.worker else []), *reversed(state.nodes)]:
        if _alive(node.pid):
            stopping(node.name, _stop_process(node.pid))
    redis_pid = _pid_file(directory / "redis" / "redis.pid")
    if redis_pid is not None and _alive(redis_pid):
        # Redis flushes its append-only file on TERM.
        stopping("redis", _stop_tree(redis_pid, signal.SIGTERM))
    for role in ("replica", "primary"):
        data = directory / "pg" / role
        postmaster = _postmaster_pid(data)
        if postmaster is None or not _alive(postmaster):
            continue
        tree = process_tree(postmaster)
        _stop_postgres(data)  # fast shutdown: the postmaster ends its backends first
        left = _wait_gone(tree, STOP_TIMEOUT)
        stopping(f"postgres-{role}", _kill(left) if left else set())
    if survivors:
        named = "; ".join(f"{name}: pids {sorted(pids)}" for name, pids in survivors.items())
        raise ClusterError(f"these would not exit even after SIGKILL: {named}")
    (directory / STATE_FILE).unlink()
    return stopped


def _part_status(part: Node | None) -> dict[str, Any] | None:
    """A monitoring part as ``status`` reports it; None when it was not started."""
    if part is None:
        return None
    return {"url": part.url, "pid": part.pid, "alive": _alive(part.pid)}


def status(directory: Path) -> dict[str, Any]:
    """What is up, as ``status --json`` prints it."""
    state = State.load(directory.resolve())
    return {
        "url": state.url,
        "nodes": [
            {
                "name": n.name,
                "url": n.url,
                "pid": n.pid,
                "alive": _alive(n.pid),
                "ready": _answers(f"{n.url}/readyz"),
            }
            for n in state.nodes
        ],
        "worker": None
        if state.worker is None
        else {"pid": state.worker.pid, "alive": _alive(state.worker.pid)},
        "postgres": {
            "primary": state.primary_url,
            "replica": state.replica_url,
        },
        "redis": state.redis_url,
        **{key: _part_status(getattr(state, key)) for key in MONITORING},
        "logs": str(Path(state.directory) / "logs"),
    }


def _reload_nginx(directory: Path) -> None:
    """Apply the config on disk: new nginx workers use it, old ones finish their requests
    (a graceful reload, nothing in flight is cut)."""
    conf = _nginx_prefix(directory) / "nginx.conf"
    _run([_nginx(), "-t", "-c", str(conf), "-p", str(_nginx_prefix(directory))], "nginx -t")
    pid = _pid_file(_nginx_prefix(directory) / "nginx.pid")
    if pid is None or not _alive(pid):
        raise ClusterError("nginx is not running: rushgate cluster down, then up")
    os.kill(pid, signal.SIGHUP)
    time.sleep(NGINX_RELOAD_SECONDS)


def restart_rolling(directory: Path, progress: Callable[[str], None] = lambda _: None) -> State:
    """Restart the app nodes one by one, each ready again before the next goes down.

    nginx's health checks are passive: it would keep sending new requests to a stopping
    node until one failed. So each node leaves nginx's upstream first (a graceful
    reload), then drains and stops, starts again, and only once ready rejoins. Each node
    keeps its port, so Prometheus's targets stay right."""
    directory = directory.resolve()
    state = State.load(directory)
    if len(state.nodes) < 2:
        raise ClusterError("a rolling restart needs two nodes or more: one must serve")
    for index, node in enumerate(state.nodes):
        progress(f"restarting {node.name}")
        write_nginx_conf(state, directory, without=node.name)
        _reload_nginx(directory)
        if left := _stop_process(node.pid):
            raise ClusterError(f"{node.name} would not exit even after SIGKILL: pids {left}")
        state.nodes[index] = start_node(state, directory, node.name, node.port)
        state.save()
        write_nginx_conf(state, directory)
        _reload_nginx(directory)
    return state
