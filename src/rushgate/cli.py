"""The ``rushgate`` command."""

from __future__ import annotations

import asyncio
import enum
import logging
import os
import secrets
import shutil
import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import asyncpg
import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from rushgate.adapters.security import Argon2Hasher
from rushgate.adapters.sql.engine import SqlStorage
from rushgate.adapters.sql.migrate import upgrade
from rushgate.config import Settings
from rushgate.domain.clock import SystemClock
from rushgate.domain.errors import DomainError
from rushgate.services.demo import seed_demo
from rushgate.services.registry import RegistryService

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
seed_app = typer.Typer(no_args_is_help=True, help="Load data.")
app.add_typer(seed_app, name="seed")
console = Console(stderr=True, soft_wrap=True)

_DEMO_ADMIN = "admin"
_MIN_ADMIN_PASSWORD = 8


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        for error in exc.errors():
            console.print(f"[red]configuration error:[/red] {error['msg']}")
        raise typer.Exit(2) from exc


def _storage(settings: Settings) -> SqlStorage:
    return SqlStorage.from_urls(
        settings.effective_database_url, settings.database_replica_url, SystemClock(), pool_size=2
    )


@contextmanager
def _database_errors(settings: Settings) -> Iterator[None]:
    """Turn an unreachable or refusing database into one clear line and exit status 1."""
    try:
        yield
    except (OSError, SQLAlchemyError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        where = make_url(settings.effective_database_url).render_as_string(hide_password=True)
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        console.print(f"[red]cannot use the database at {where}:[/red] {reason}")
        raise typer.Exit(1) from exc


def _migrate(settings: Settings) -> None:
    if settings.embedded:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    with _database_errors(settings):
        upgrade(settings.effective_database_url)


def _explain(exc: DomainError) -> str:
    """A refusal in a line: its detail and what each refused field was told."""
    reasons = [e.get("message", "") for e in exc.context.get("errors", [])]
    return "; ".join([exc.detail, *filter(None, reasons)])


async def _bootstrap(settings: Settings) -> list[str]:
    """Create the configured admin, and on a fresh embedded database the demo data.

    Returns lines to show the operator.
    """
    from rushgate.composition import build_password_policy

    lines: list[str] = []
    storage = _storage(settings)
    hasher = Argon2Hasher(settings.password_hash_cost)
    registry = RegistryService(storage, hasher, passwords=build_password_policy(settings))
    try:
        if (
            settings.admin_username
            and settings.admin_password
            and await registry.ensure_admin(
                settings.admin_username, settings.admin_password.get_secret_value()
            )
        ):
            lines.append(f"created admin {settings.admin_username!r}")
        if settings.embedded:
            lines += await _embedded_demo(settings, storage, hasher, registry)
    finally:
        await storage.close()
    return lines


async def _embedded_demo(
    settings: Settings, storage: SqlStorage, hasher: Argon2Hasher, registry: RegistryService
) -> list[str]:
    password_file = settings.data_dir / "demo-admin-password"
    seeded: list[str] = []
    async with storage.unit_of_work() as uow:
        empty = await uow.registry.is_empty()
    if empty:
        password = secrets.token_urlsafe(12)
        # Only remember (and print) a password that really belongs to the account: an admin
        # of that name may already exist, e.g. from RUSHGATE_ADMIN_USERNAME.
        if await registry.ensure_admin(_DEMO_ADMIN, password):
            password_file.touch(mode=0o600)
            password_file.write_text(password)
        summary = await seed_demo(storage, hasher, SystemClock())
        seeded.append(
            f"seeded demo term {summary.term!r}: {summary.sections} sections, "
            f"{summary.students} students"
        )
    if not password_file.exists():
        return seeded
    return [
        *seeded,
        f"demo admin:   {_DEMO_ADMIN} / {password_file.read_text().strip()}",
        "demo student: s000001, s000002, … / rushgate-demo (term 'demo')",
        "demo admission round 'demo-admissions': applicants sign up at POST /api/v1/applicants",
    ]


class LogLevel(enum.StrEnum):
    debug = "debug"
    info = "info"
    warning = "warning"
    error = "error"


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
    log_level: Annotated[
        LogLevel | None,
        typer.Option(help="Least severe log records written (default: RUSHGATE_LOG_LEVEL)."),
    ] = None,
) -> None:
    """Run the service: apply migrations, bootstrap, then serve HTTP."""
    import uvicorn

    from rushgate.composition import configure_process

    if log_level is not None:
        # The server's worker processes read their settings from the environment.
        os.environ["RUSHGATE_LOG_LEVEL"] = log_level.value
    settings = _settings()
    json_logs = configure_process(settings) == "json"
    if workers > 1 and settings.redis_url is None:
        console.print(
            "[red]several workers share the waiting room, seat hints and locks through "
            "Redis:[/red] set RUSHGATE_REDIS_URL, or run one worker"
        )
        raise typer.Exit(2)
    _migrate(settings)
    settings.effective_secret_key()  # create the embedded key before workers race for it
    try:
        with _database_errors(settings):
            lines = asyncio.run(_bootstrap(settings))
    except DomainError as exc:  # e.g. RUSHGATE_ADMIN_PASSWORD breaks the password policy
        console.print(f"[red]RUSHGATE_ADMIN_USERNAME/PASSWORD: {_explain(exc)}[/red]")
        raise typer.Exit(2) from exc
    where = "embedded SQLite in " + str(settings.data_dir) if settings.embedded else "PostgreSQL"
    for line in [*lines, f"rushgate on http://{host}:{port}  ({where}; API docs at /docs)"]:
        _announce(line, json_logs)
    with _metrics_dir(settings, workers):
        uvicorn.run(
            "rushgate.http.app:factory",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            # Logging is ours (observability/logging.py): uvicorn's records go through it,
            # and the access line is the app's (with route template and request id).
            log_config=None,
            log_level=settings.log_level,
            access_log=False,
            # No "server: uvicorn": it tells an attacker which exploits to try.
            server_header=False,
            timeout_graceful_shutdown=30,
        )


def _announce(line: str, json_logs: bool) -> None:
    """Tell the operator: on the terminal as it is, or as a log record when the logs are
    JSON (a log collector then gets JSON lines only)."""
    if json_logs:
        logging.getLogger("rushgate.cli").info(line)
    else:
        console.print(line)


_MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


@contextmanager
def _metrics_dir(settings: Settings, workers: int) -> Iterator[None]:
    """With several workers, give them one fresh directory for their metric files
    (prometheus-client's multiprocess mode; /metrics adds them up) and remove it when
    the server exits. One worker keeps its metrics in memory. A directory the operator
    set in ``PROMETHEUS_MULTIPROC_DIR`` is used as it is, and left in place."""
    if workers == 1 or os.environ.get(_MULTIPROC_ENV):
        yield
        return
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        path = tempfile.mkdtemp(prefix="metrics-", dir=settings.data_dir)
    except OSError:
        path = tempfile.mkdtemp(prefix="rushgate-metrics-")
    os.environ[_MULTIPROC_ENV] = path
    try:
        yield
    finally:
        os.environ.pop(_MULTIPROC_ENV, None)
        shutil.rmtree(path, ignore_errors=True)


@app.command()
def worker() -> None:
    """Run the background jobs without serving HTTP: the queue admitter, the seat-hint
    keeper and the outbox relay (confirmation mail). Every ``serve`` process runs them
    too; a cluster-wide lock each makes one admitter and one keeper work at a time, while
    relays all deliver side by side (each message is leased to one). So a worker is where
    they keep running while app nodes restart."""
    from rushgate.composition import configure_process

    settings = _settings()
    if settings.redis_url is None:
        console.print("[red]a worker coordinates through Redis:[/red] set RUSHGATE_REDIS_URL")
        raise typer.Exit(2)
    json_logs = configure_process(settings) == "json"
    _migrate(settings)
    with _database_errors(settings):
        asyncio.run(_work(settings, json_logs))


async def _work(settings: Settings, json_logs: bool) -> None:
    import signal

    from rushgate.composition import Container

    container = Container.build(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    container.start()
    _announce(
        "rushgate worker running (admitter, seat hints, outbox relay); SIGTERM stops it",
        json_logs,
    )
    try:
        await stop.wait()
    finally:
        await container.close()


@app.command()
def migrate() -> None:
    """Apply database migrations and exit."""
    _migrate(_settings())
    console.print("database is up to date")


@app.command("create-admin")
def create_admin(
    username: str,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
) -> None:
    """Create an admin account."""
    if not password_stdin:
        console.print("[red]pass the password on standard input with --password-stdin[/red]")
        raise typer.Exit(2)
    password = sys.stdin.readline().rstrip("\r\n")
    if len(password) < _MIN_ADMIN_PASSWORD:
        console.print(f"[red]the password must be at least {_MIN_ADMIN_PASSWORD} characters[/red]")
        raise typer.Exit(2)
    settings = _settings()
    _migrate(settings)

    async def run() -> None:
        from rushgate.composition import build_password_policy

        storage = _storage(settings)
        try:
            await RegistryService(
                storage,
                Argon2Hasher(settings.password_hash_cost),
                passwords=build_password_policy(settings),
            ).create_admin(username, password)
        finally:
            await storage.close()

    try:
        with _database_errors(settings):
            asyncio.run(run())
    except DomainError as exc:
        console.print(f"[red]{_explain(exc)}[/red]")
        raise typer.Exit(1) from exc
    console.print(f"created admin {username!r}")


@seed_app.command("demo")
def seed_demo_command(
    students: Annotated[int, typer.Option(min=0, max=1_000_000)] = 200,
    sections: Annotated[int, typer.Option(min=1, max=100_000)] = 30,
) -> None:
    """A demo term open now, with sections and students (password printed at the end)."""
    settings = _settings()
    _migrate(settings)

    async def run() -> None:
        storage = _storage(settings)
        columns = (
            TextColumn("{task.description:>9}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=console) as bar:
            tasks = {
                "sections": bar.add_task("sections", total=sections),
                "students": bar.add_task("students", total=students),
            }

            def progress(stage: str, done: int, _total: int) -> None:
                bar.update(tasks[stage], completed=done)

            try:
                summary = await seed_demo(
                    storage,
                    Argon2Hasher(settings.password_hash_cost),
                    SystemClock(),
                    students=students,
                    sections=sections,
                    progress=progress,
                )
            finally:
                await storage.close()
        console.print(
            f"term {summary.term!r}: {summary.sections} sections, {summary.students} students; "
            f"log in as {summary.first_student} … with password {summary.password!r}"
        )

    try:
        with _database_errors(settings):
            asyncio.run(run())
    except DomainError as exc:
        console.print(f"[red]{exc.detail}[/red] (is the demo already seeded?)")
        raise typer.Exit(1) from exc


cluster_app = typer.Typer(
    no_args_is_help=True,
    help="The local multi-node stack: PostgreSQL primary + replica, Redis, nginx, N nodes,"
    " Prometheus.",
)
app.add_typer(cluster_app, name="cluster")
ClusterDir = Annotated[
    Path, typer.Option("--dir", help="Where the cluster keeps its data, logs and state.")
]
_CLUSTER_DIR = Path(".rushgate-cluster")


@contextmanager
def _cluster_errors() -> Iterator[None]:
    from rushgate.cluster.stack import ClusterError

    try:
        yield
    except ClusterError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc


@cluster_app.command("up")
def cluster_up(
    directory: ClusterDir = _CLUSTER_DIR,
    nodes: Annotated[int, typer.Option(min=1, max=16, help="App nodes.")] = 3,
    weights: Annotated[
        str | None, typer.Option(help="Round-robin weights, one per node, e.g. 3,3,2.")
    ] = None,
    least_conn: Annotated[
        bool, typer.Option("--least-conn", help="Balance by fewest active connections.")
    ] = False,
    port: Annotated[int | None, typer.Option(help="nginx port (default: a free one).")] = None,
) -> None:
    """Start the stack and print where it answers."""
    from rushgate.cluster.stack import up

    try:
        parsed = [int(w) for w in weights.split(",")] if weights else []
    except ValueError as exc:
        console.print(f"[red]--weights takes integers like 3,3,2, not {weights!r}[/red]")
        raise typer.Exit(2) from exc
    admin = cluster_admin(os.environ)
    with _cluster_errors():
        state = up(
            directory,
            nodes=nodes,
            weights=parsed,
            balance="least_conn" if least_conn else "round_robin",
            nginx_port=port,
            admin=(admin.username, admin.password),
            progress=lambda step: console.print(
                f"  {step}" if step.startswith("skipping ") else f"  starting {step} …"
            ),
        )
    console.print(f"rushgate cluster up at {state.url}  (logs: {directory / 'logs'})")
    if state.prometheus is not None:
        console.print(f"Prometheus: {state.prometheus.url}")
    if admin.generated:
        password_file = directory / "admin-password"
        password_file.touch(mode=0o600)
        password_file.write_text(admin.password + "\n")
        console.print(f"admin: {admin.username} / {admin.password}  (also in {password_file})")
    else:
        console.print(f"admin: {admin.username}  (password from RUSHGATE_ADMIN_PASSWORD)")


@dataclass(frozen=True, slots=True)
class ClusterAdmin:
    username: str
    password: str
    generated: bool


def cluster_admin(environ: Mapping[str, str]) -> ClusterAdmin:
    """The stack's first admin: ``RUSHGATE_ADMIN_USERNAME``/``PASSWORD`` when set (as for
    ``serve``), else ``admin`` with a generated password that ``up`` prints and keeps."""
    username = environ.get("RUSHGATE_ADMIN_USERNAME") or None
    password = environ.get("RUSHGATE_ADMIN_PASSWORD") or None
    if username is None and password is None:
        return ClusterAdmin(_DEMO_ADMIN, secrets.token_urlsafe(12), generated=True)
    if username is None or password is None:
        console.print(
            "[red]set both RUSHGATE_ADMIN_USERNAME and RUSHGATE_ADMIN_PASSWORD, or neither[/red]"
        )
        raise typer.Exit(2)
    if len(password) < _MIN_ADMIN_PASSWORD:
        console.print(
            f"[red]RUSHGATE_ADMIN_PASSWORD must be at least {_MIN_ADMIN_PASSWORD} characters[/red]"
        )
        raise typer.Exit(2)
    return ClusterAdmin(username, password, generated=False)


@cluster_app.command("down")
def cluster_down(directory: ClusterDir = _CLUSTER_DIR) -> None:
    """Stop exactly what ``up`` started."""
    from rushgate.cluster.stack import down

    with _cluster_errors():
        stopped = down(directory)
    console.print("stopped: " + (", ".join(stopped) or "nothing was running"))


@cluster_app.command("status")
def cluster_status(
    directory: ClusterDir = _CLUSTER_DIR,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable.")] = False,
) -> None:
    """Where the stack answers and which parts are alive."""
    import json

    from rushgate.cluster.stack import MONITORING, status

    with _cluster_errors():
        report = status(directory)
    if as_json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
        return
    console.print(f"url: {report['url']}")
    for node in report["nodes"]:
        health = "ready" if node["ready"] else ("alive" if node["alive"] else "DOWN")
        console.print(f"  {node['name']}: {node['url']} pid {node['pid']} {health}")
    for key in MONITORING:
        part = report[key]
        if part is not None:
            alive = "alive" if part["alive"] else "DOWN"
            console.print(f"{key.replace('_', ' ')}: {part['url']} pid {part['pid']} {alive}")


@cluster_app.command("restart")
def cluster_restart(
    directory: ClusterDir = _CLUSTER_DIR,
    rolling: Annotated[
        bool, typer.Option("--rolling", help="One node at a time (the only mode).")
    ] = True,
) -> None:
    """Restart the app nodes one by one, each ready before the next stops."""
    from rushgate.cluster.stack import restart_rolling

    with _cluster_errors():
        restart_rolling(directory, progress=lambda step: console.print(f"  {step} …"))
    console.print("all nodes restarted")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
