"""RegistryService, AuthService and the demo seed on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest

from rushgate.adapters.security import Argon2Hasher, JwtSigner
from rushgate.adapters.sql.engine import SqlStorage
from rushgate.domain import errors
from rushgate.domain.clock import FixedClock
from rushgate.domain.model import RegistrationWindow
from rushgate.services.auth import AuthService
from rushgate.services.demo import DEMO_PASSWORD, DEMO_TERM, seed_demo
from rushgate.services.enrollment import EnrollmentService
from rushgate.services.registry import RegistryService
from tests.support import (
    SECRET,
    T0,
    check_invariants,
    new_section,
    new_term,
    student_input,
    window,
)


@pytest.fixture
def registry(storage: SqlStorage, hasher: Argon2Hasher) -> RegistryService:
    return RegistryService(storage, hasher)


@pytest.fixture
def auth(storage: SqlStorage, hasher: Argon2Hasher, clock: FixedClock) -> AuthService:
    return AuthService(storage, hasher, JwtSigner(SECRET, clock, timedelta(hours=1)))


async def term_codes(storage: SqlStorage) -> list[str]:
    return [t.code for t in await storage.reads(fresh=True).terms()]


async def existing(storage: SqlStorage, *usernames: str) -> set[str]:
    reads = storage.reads(fresh=True)
    return {u for u in usernames if await reads.account(u) is not None}


@pytest.mark.parametrize(
    "bad_window",
    [
        pytest.param(RegistrationWindow(T0, T0 - timedelta(hours=1)), id="closes-before-opens"),
        pytest.param(RegistrationWindow(T0, T0), id="closes-when-opens"),
        pytest.param(
            RegistrationWindow(T0, T0 + timedelta(hours=1), {4: T0 + timedelta(hours=1)}),
            id="class-year-opens-at-close",
        ),
    ],
)
async def test_create_term_refuses_bad_windows(
    registry: RegistryService, storage: SqlStorage, bad_window: RegistrationWindow
) -> None:
    with pytest.raises(errors.InvalidRequest) as caught:
        await registry.create_term(new_term(window=bad_window))
    assert caught.value.code == "invalid_request"
    assert await term_codes(storage) == []


async def test_create_term_once(registry: RegistryService, storage: SqlStorage) -> None:
    await registry.create_term(new_term(window=window(by_year={4: T0 - timedelta(hours=2)})))
    with pytest.raises(errors.Conflict):
        await registry.create_term(new_term())
    assert await term_codes(storage) == [new_term().code]


async def test_create_sections_all_or_nothing(
    registry: RegistryService, storage: SqlStorage
) -> None:
    await registry.create_term(new_term())
    code = new_term().code
    with pytest.raises(errors.Conflict) as caught:
        await registry.create_sections(
            code, [new_section("A-01"), new_section("B-01"), new_section("A-01")]
        )
    assert caught.value.context == {"duplicates": ["A-01"]}
    assert await storage.reads(fresh=True).catalog(code) == []
    await registry.create_sections(code, [new_section("A-01")])
    with pytest.raises(errors.Conflict):
        await registry.create_sections(code, [new_section("B-01"), new_section("A-01")])
    assert [s.section_id for s in await storage.reads(fresh=True).catalog(code)] == ["A-01"]
    with pytest.raises(errors.NotFound):
        await registry.create_sections("nope", [new_section("C-01")])


async def test_create_students_hashes_and_logs_in(
    registry: RegistryService, auth: AuthService, storage: SqlStorage
) -> None:
    await registry.create_students([student_input("s1", password="first-password")])
    account = await storage.reads(fresh=True).account("s1")
    assert account is not None
    assert account.password_hash.startswith("$argon2id$")
    assert "first-password" not in account.password_hash
    token, ttl = await auth.login("s1", "first-password")
    assert ttl == 3600
    principal = auth.authenticate(token)
    assert (principal.username, principal.role) == ("s1", "student")
    assert principal.student_pk == account.student_pk
    for username, password in (("s1", "wrong-password"), ("ghost", "first-password")):
        with pytest.raises(errors.InvalidCredentials):
            await auth.login(username, password)


@pytest.mark.parametrize(
    ("batch", "duplicates"),
    [
        pytest.param(
            [student_input("s1"), student_input("s2"), student_input("s1", email="x@y.test")],
            ["s1"],
            id="ids",
        ),
        pytest.param(
            [student_input("s1", email="Same@y.test"), student_input("s2", email="same@Y.test")],
            ["same@y.test"],
            id="emails-ignoring-case",
        ),
    ],
)
async def test_create_students_refuses_duplicates_in_batch(
    registry: RegistryService, storage: SqlStorage, batch: list[object], duplicates: list[str]
) -> None:
    with pytest.raises(errors.Conflict) as caught:
        await registry.create_students(batch)  # type: ignore[arg-type]
    assert caught.value.context == {"duplicates": duplicates}
    assert await existing(storage, "s1", "s2") == set()


async def test_create_students_refuses_existing_ids(
    registry: RegistryService, storage: SqlStorage
) -> None:
    await registry.create_students([student_input("s1")])
    with pytest.raises(errors.Conflict):
        await registry.create_students([student_input("s2"), student_input("s1")])
    assert await existing(storage, "s1", "s2") == {"s1"}


async def test_admins(registry: RegistryService, auth: AuthService) -> None:
    assert await registry.ensure_admin("root", "root-password")
    assert not await registry.ensure_admin("root", "other-password")
    with pytest.raises(errors.Conflict):
        await registry.create_admin("root", "third-password")
    # ensure_admin never changes a password.
    principal = auth.authenticate((await auth.login("root", "root-password"))[0])
    assert (principal.role, principal.student_pk) == ("admin", None)
    with pytest.raises(errors.InvalidCredentials):
        await auth.login("root", "other-password")


async def test_expired_and_forged_tokens(auth: AuthService, clock: FixedClock) -> None:
    await RegistryService(auth._storage, Argon2Hasher("low")).create_students([student_input("s1")])
    token, ttl = await auth.login("s1", "password-123")
    clock.set(clock.now() + timedelta(seconds=ttl - 1))
    assert auth.authenticate(token).username == "s1"
    with pytest.raises(errors.InvalidCredentials):
        auth.authenticate(token[:-2] + ("AA" if not token.endswith("AA") else "BB"))
    clock.set(clock.now() + timedelta(seconds=1))
    with pytest.raises(errors.InvalidCredentials):
        auth.authenticate(token)


async def test_demo_seed(storage: SqlStorage, hasher: Argon2Hasher, clock: FixedClock) -> None:
    progress: list[tuple[str, int, int]] = []
    summary = await seed_demo(
        storage,
        hasher,
        clock,
        students=5,
        sections=6,
        batch=4,
        progress=lambda *a: progress.append(a),
    )
    assert (summary.term, summary.sections, summary.students) == (DEMO_TERM, 6, 5)
    assert progress[-1] == ("students", 5, 5)
    catalog = await storage.reads().catalog(DEMO_TERM)
    assert len(catalog) == 6
    pk = (await storage.reads().account(summary.first_student)).student_pk  # type: ignore[union-attr]
    assert pk is not None
    service = EnrollmentService(storage, clock)
    await service.enroll(student_pk=pk, term_code=DEMO_TERM, section_id=catalog[0].section_id)
    await check_invariants(storage)
    assert summary.password == DEMO_PASSWORD
