"""The password rules where passwords are chosen: applicant sign-up (the configured
minimum), students' initial passwords and admins (the operators' floor), each refusal a
422 naming the field, with nothing written."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from rushgate.composition import Container
from rushgate.config import Settings
from rushgate.domain.errors import ValidationFailed
from tests.http.api import Api, assert_problem, student_json
from tests.support import SECRET

BREACHED = "correcthorse1"
MIN_LENGTH = 12


@pytest.fixture
def backend() -> str:
    """The rules do not depend on the database engine: SQLite only."""
    return "sqlite"


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    listed = tmp_path / "pwned.txt"
    listed.write_text(f"{hashlib.sha1(BREACHED.encode()).hexdigest().upper()}:3861493\n")
    return Settings(
        database_url=database_url,
        secret_key=SECRET,
        password_hash_cost="low",
        data_dir=tmp_path / "data",
        password_min_length=MIN_LENGTH,
        breached_passwords_file=listed,
    )


async def sign_up(api: Api, email: str, password: str) -> dict[str, object]:
    r = await api.client.post(
        "/api/v1/applicants", json={"email": email, "password": password, "name": "지원자"}
    )
    if r.status_code == 201:
        return {}
    body = assert_problem(r, 422)
    return body


@pytest.mark.parametrize(
    ("password", "code", "reason"),
    [
        ("a" * (MIN_LENGTH - 1), "validation_failed", "too_short"),
        ("New@Example.Test", "validation_failed", "same_as_identity"),
        (BREACHED, "validation_failed", "breached"),
        # Past the argon2 input cap: the schema refuses it before anything is hashed.
        ("a" * 1025, "validation_error", None),
    ],
)
async def test_sign_up_refuses_weak_passwords(
    api: Api, password: str, code: str, reason: str | None
) -> None:
    body = await sign_up(api, "new@example.test", password)
    assert body["code"] == code
    if reason is not None:
        errors = body["errors"]
        assert isinstance(errors, list)
        assert [(e["field"], e["reason"]) for e in errors] == [("password", reason)]
        assert password not in str(body)  # never echoed back
    # Nothing was written: the address is still free.
    assert await sign_up(api, "new@example.test", "a long enough password") == {}


async def test_sign_up_takes_a_good_password(api: Api) -> None:
    assert await sign_up(api, "ok@example.test", "a" * MIN_LENGTH) == {}
    assert (await api.login("ok@example.test", "a" * MIN_LENGTH)).status_code == 200


async def test_initial_passwords_follow_the_operators_floor(api: Api) -> None:
    # Eight characters are enough for a password an admin hands out...
    fine = student_json("s1", password="8chars!!")
    # ...but not the student's own id, or a breached one.
    same = student_json("s2-initial", password="S2-Initial")
    breached = student_json("s3", password=BREACHED)
    r = await api.create_students([fine, same, breached])
    body = assert_problem(r, 422, "validation_failed")
    assert [(e["field"], e["reason"]) for e in body["errors"]] == [
        ("1.password", "same_as_identity"),
        ("2.password", "breached"),
    ]
    # Never echoed back.
    assert "8chars" not in r.text
    assert BREACHED not in r.text
    # All or nothing: not even the good one was created.
    assert_problem(await api.login("s1", "8chars!!"), 401, "invalid_credentials")
    assert (await api.create_students([fine])).status_code == 201
    assert (await api.login("s1", "8chars!!")).status_code == 200


async def test_admins_follow_the_operators_floor(container: Container) -> None:
    with pytest.raises(ValidationFailed) as caught:
        await container.registry.create_admin("registrar", "seven77")
    assert [(e["field"], e["reason"]) for e in caught.value.errors] == [("password", "too_short")]
    with pytest.raises(ValidationFailed):
        await container.registry.create_admin("registrar", "Registrar")
    assert await container.registry.ensure_admin("registrar", "eight888")
    # An existing bootstrap admin keeps starting, whatever its configured password.
    assert not await container.registry.ensure_admin("registrar", BREACHED)
