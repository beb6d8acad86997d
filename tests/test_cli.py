"""The ``rushgate`` command, run in-process against real SQLite and PostgreSQL databases."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rushgate.adapters.security import Argon2Hasher
from rushgate.adapters.sql.engine import SqlStorage
from rushgate.cli import _bootstrap, app, cluster_admin
from rushgate.config import Settings
from rushgate.domain.clock import SystemClock
from tests.support import SECRET


@pytest.fixture
def env(database_url: str, backend: str, tmp_path: Path) -> dict[str, str]:
    values = {"RUSHGATE_DATA_DIR": str(tmp_path / "data"), "RUSHGATE_PASSWORD_HASH_COST": "low"}
    if backend == "postgres":
        values |= {"RUSHGATE_DATABASE_URL": database_url, "RUSHGATE_SECRET_KEY": SECRET}
    else:
        values["RUSHGATE_DATA_DIR"] = str(Path(database_url.removeprefix("sqlite:///")).parent)
    return values


def run(env: dict[str, str], *args: str, stdin: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env=env, input=stdin)
    return result.exit_code, result.output


def login_works(env: dict[str, str], username: str, password: str) -> bool:
    async def check() -> bool:
        url = env.get("RUSHGATE_DATABASE_URL") or (
            f"sqlite:///{Path(env['RUSHGATE_DATA_DIR']) / 'rushgate.sqlite3'}"
        )
        storage = SqlStorage.from_urls(url, None, SystemClock(), pool_size=1)
        try:
            account = await storage.reads(fresh=True).account(username)
        finally:
            await storage.close()
        return account is not None and Argon2Hasher("low").verify(account.password_hash, password)

    return asyncio.run(check())


def test_migrate_is_idempotent(env: dict[str, str]) -> None:
    assert run(env, "migrate")[0] == 0
    code, output = run(env, "migrate")
    assert code == 0
    assert "up to date" in output


def test_create_admin_reads_the_password_from_stdin(env: dict[str, str]) -> None:
    code, output = run(env, "create-admin", "registrar", "--password-stdin", stdin="s3cret-pass\n")
    assert code == 0, output
    assert login_works(env, "registrar", "s3cret-pass")
    assert not login_works(env, "registrar", "s3cret-pass\n")


def test_create_admin_refuses_an_existing_name_and_keeps_its_password(
    env: dict[str, str],
) -> None:
    assert run(env, "create-admin", "registrar", "--password-stdin", stdin="first-pass\n")[0] == 0
    code, output = run(env, "create-admin", "registrar", "--password-stdin", stdin="other-pass\n")
    assert code == 1
    assert "exists" in output
    assert login_works(env, "registrar", "first-pass")


@pytest.mark.parametrize(
    ("args", "stdin"),
    [
        (["create-admin", "registrar"], "a-good-password\n"),  # no --password-stdin
        (["create-admin", "registrar", "--password-stdin"], "short\n"),
    ],
)
def test_create_admin_refuses_bad_input(env: dict[str, str], args: list[str], stdin: str) -> None:
    code, _ = run(env, *args, stdin=stdin)
    assert code == 2


def test_seed_demo_creates_what_it_reports_and_refuses_a_second_time(
    env: dict[str, str],
) -> None:
    code, output = run(env, "seed", "demo", "--students", "50", "--sections", "6")
    assert code == 0, output
    assert "6 sections, 50 students" in output
    assert login_works(env, "s000050", "rushgate-demo")
    assert not login_works(env, "s000051", "rushgate-demo")
    code, output = run(env, "seed", "demo", "--students", "5", "--sections", "3")
    assert code == 1
    assert "already seeded" in output


def test_an_unreachable_database_is_one_clear_line(tmp_path: Path) -> None:
    env = {
        "RUSHGATE_DATABASE_URL": "postgresql://rushgate:hunter2@127.0.0.1:1/nowhere",
        "RUSHGATE_SECRET_KEY": SECRET,
        "RUSHGATE_DATA_DIR": str(tmp_path),
    }
    code, output = run(env, "migrate")
    assert code == 1
    assert "cannot use the database at postgresql://rushgate:***@127.0.0.1:1/nowhere" in output
    assert "hunter2" not in output
    assert "Traceback" not in output


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"RUSHGATE_DATABASE_URL": "postgresql://x@127.0.0.1/y"},
            "RUSHGATE_SECRET_KEY is required",
        ),
        (
            {"RUSHGATE_DATABASE_URL": "postgresql://x@127.0.0.1/y", "RUSHGATE_SECRET_KEY": "short"},
            "at least 32 characters",
        ),
        ({"RUSHGATE_ADMIN_USERNAME": "root"}, "or neither"),
        ({"RUSHGATE_REDIS_URL": "redis://127.0.0.1:6379/0"}, "RUSHGATE_SECRET_KEY is required"),
        ({"RUSHGATE_REDIS_KEY_PREFIX": "no spaces"}, "String should match pattern"),
    ],
)
def test_configuration_errors_are_reported_before_anything_runs(
    env: dict[str, str], message: str, tmp_path: Path
) -> None:
    code, output = run({**env, "RUSHGATE_DATA_DIR": str(tmp_path)}, "migrate")
    assert code == 2
    assert message in output
    assert not (tmp_path / "rushgate.sqlite3").exists()


def test_several_workers_without_redis_are_refused(tmp_path: Path) -> None:
    code, output = run({"RUSHGATE_DATA_DIR": str(tmp_path)}, "serve", "--workers", "2")
    assert code == 2
    assert "set RUSHGATE_REDIS_URL, or run one worker" in output
    assert not (tmp_path / "rushgate.sqlite3").exists()


def test_embedded_bootstrap_seeds_once_and_prints_working_credentials(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, password_hash_cost="low")
    CliRunner().invoke(app, ["migrate"], env={"RUSHGATE_DATA_DIR": str(tmp_path)})
    lines = asyncio.run(_bootstrap(settings))
    admin_line = next(line for line in lines if line.startswith("demo admin:"))
    password = admin_line.rsplit(" / ", 1)[1]
    env = {"RUSHGATE_DATA_DIR": str(tmp_path)}
    assert login_works(env, "admin", password)
    assert login_works(env, "s000001", "rushgate-demo")
    again = asyncio.run(_bootstrap(settings))
    # A restart neither reseeds nor changes the credentials.
    assert again == [line for line in lines if not line.startswith("seeded")]


def test_embedded_bootstrap_never_prints_a_password_that_does_not_work(tmp_path: Path) -> None:
    """An admin named like the demo admin may come from RUSHGATE_ADMIN_*: its password wins."""
    settings = Settings(
        data_dir=tmp_path,
        password_hash_cost="low",
        admin_username="admin",
        admin_password="configured-password",  # type: ignore[arg-type]
    )
    CliRunner().invoke(app, ["migrate"], env={"RUSHGATE_DATA_DIR": str(tmp_path)})
    lines = asyncio.run(_bootstrap(settings))
    assert not any(line.startswith("demo admin:") for line in lines)
    assert login_works({"RUSHGATE_DATA_DIR": str(tmp_path)}, "admin", "configured-password")


def test_cluster_up_takes_the_operators_admin_from_the_environment() -> None:
    chosen = cluster_admin(
        {"RUSHGATE_ADMIN_USERNAME": "operator", "RUSHGATE_ADMIN_PASSWORD": "long-enough-1"}
    )
    assert (chosen.username, chosen.password, chosen.generated) == (
        "operator",
        "long-enough-1",
        False,
    )


def test_cluster_up_generates_an_admin_password_when_none_is_configured() -> None:
    first, second = cluster_admin({}), cluster_admin({"RUSHGATE_ADMIN_USERNAME": ""})
    assert (first.username, first.generated) == ("admin", True)
    assert len(first.password) >= 12
    assert first.password != second.password, "a fresh password every time"


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        pytest.param({"RUSHGATE_ADMIN_USERNAME": "operator"}, "set both", id="no-password"),
        pytest.param({"RUSHGATE_ADMIN_PASSWORD": "long-enough-1"}, "set both", id="no-user"),
        pytest.param(
            {"RUSHGATE_ADMIN_USERNAME": "operator", "RUSHGATE_ADMIN_PASSWORD": "short"},
            "at least 8",
            id="short",
        ),
    ],
)
def test_cluster_up_refuses_half_an_admin_before_starting_anything(
    tmp_path: Path, environ: dict[str, str], message: str
) -> None:
    code, output = run(environ, "cluster", "up", "--dir", str(tmp_path / "stack"))
    assert code == 2
    assert message in output
    assert not (tmp_path / "stack").exists(), "nothing may be started or written"


def test_admin_passwords_follow_the_policy_with_its_breached_list(
    env: dict[str, str], tmp_path: Path
) -> None:
    breached = tmp_path / "breached.txt"
    breached.write_text(hashlib.sha1(b"correct-horse-battery").hexdigest().upper() + ":42\n")
    env = {**env, "RUSHGATE_BREACHED_PASSWORDS_FILE": str(breached)}
    for password in ("correct-horse-battery", "registrar"):  # breached; the username itself
        code, output = run(env, "create-admin", "registrar", "--password-stdin", stdin=password)
        assert code == 1, output
        assert "password" in output.lower()
        assert not login_works(env, "registrar", password)
    assert run(env, "create-admin", "registrar", "--password-stdin", stdin="unlisted-pass")[0] == 0


def test_serve_refuses_a_bootstrap_admin_whose_password_breaks_the_policy(
    env: dict[str, str],
) -> None:
    env = {**env, "RUSHGATE_ADMIN_USERNAME": "registrar", "RUSHGATE_ADMIN_PASSWORD": "registrar"}
    code, output = run(env, "serve", "--port", "1")
    assert code == 2, output
    assert "RUSHGATE_ADMIN_USERNAME/PASSWORD" in output
    assert "Traceback" not in output
    assert not login_works(env, "registrar", "registrar")
