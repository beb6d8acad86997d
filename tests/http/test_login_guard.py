"""Login brute-force protection over HTTP: a flood of guesses meets the per-(account,
address) budget, credential stuffing from one address is challenged and slowed, and
the real student logging in from elsewhere while their account is hammered still gets
in: with a challenge when one is configured, never locked out."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest

from rushgate.adapters.memory.rate_limits import MemoryRateLimiter
from rushgate.config import Settings
from rushgate.domain.clock import FixedClock
from rushgate.domain.errors import InvalidCredentials, RateLimited
from rushgate.services.challenge import ChallengeGate
from rushgate.services.login_guard import LoginGuard
from tests.http.api import PASSWORD, Api, assert_problem, student_json
from tests.http.challenge_support import (
    ATTACKER_IP,
    HEADER,
    STUDENT_IP,
    Node,
    fresh_pow,
    node,
    pow_answer,
)
from tests.support import REDIS_URL, T0, redis_reachable, require_service

POW: dict[str, Any] = {"challenge": "pow", "pow_difficulty": 8}
TOKEN = "/api/v1/auth/token"


@pytest.fixture
def backend() -> str:
    # The guard decides before the password is read: one backend is enough.
    return "sqlite"


async def with_students(n: Node, count: int = 1) -> None:
    api = Api(n.client("192.0.2.1"))
    students = [student_json(f"s{i}") for i in range(1, count + 1)]
    assert (await api.create_students(students)).status_code == 201


async def login(
    client: httpx.AsyncClient, username: str, password: str, challenge: str | None = None
) -> httpx.Response:
    headers = {HEADER: challenge} if challenge else {}
    return await client.post(
        TOKEN, json={"username": username, "password": password}, headers=headers
    )


def statuses(responses: list[httpx.Response]) -> dict[int, int]:
    counted: dict[int, int] = {}
    for r in responses:
        counted[r.status_code] = counted.get(r.status_code, 0) + 1
    return counted


async def test_a_flood_of_guesses_meets_the_limit_and_the_student_still_gets_in(
    settings: Settings, clock: FixedClock
) -> None:
    async with node(settings, clock) as n:
        await with_students(n)
        attacker = n.client(ATTACKER_IP)
        started = asyncio.get_running_loop().time()
        flood = await asyncio.gather(*(login(attacker, "s1", f"guess-{i}") for i in range(30)))
        # Counted before the password is checked: concurrency does not slip past it.
        assert statuses(flood) == {401: 5, 429: 25}
        for r in flood:
            if r.status_code == 429:
                body = assert_problem(r, 429, "rate_limited")
                assert 1 <= int(r.headers["Retry-After"]) <= 30, body
        assert asyncio.get_running_loop().time() - started < 10
        # Even the right password waits on that address...
        assert_problem(await login(attacker, "s1", PASSWORD), 429, "rate_limited")
        # ...but the student, elsewhere, is not locked out.
        r = await login(n.client(STUDENT_IP), "s1", PASSWORD)
        assert r.status_code == 200, r.text


async def test_a_flood_spread_over_two_nodes_sharing_redis_meets_the_same_limit(
    settings: Settings, clock: FixedClock
) -> None:
    reason = await redis_reachable()
    if reason is not None:
        require_service("Redis", reason)
    shared = {"redis_url": REDIS_URL, "redis_key_prefix": f"rgtest:{uuid.uuid4().hex[:12]}:"}
    async with node(settings, clock, **shared) as one, node(settings, clock, **shared) as two:
        try:
            await with_students(one)
            clients = [one.client(ATTACKER_IP), two.client(ATTACKER_IP)]
            flood = await asyncio.gather(
                *(login(clients[i % 2], "s1", f"guess-{i}") for i in range(30))
            )
            assert statuses(flood) == {401: 5, 429: 25}
            r = await login(two.client(STUDENT_IP), "s1", PASSWORD)
            assert r.status_code == 200, r.text
        finally:
            await one.container.coordination.delete_all_keys()  # type: ignore[attr-defined]


async def test_a_success_clears_the_failures_of_that_address(
    settings: Settings, clock: FixedClock
) -> None:
    async with node(settings, clock) as n:
        await with_students(n)
        client = n.client(STUDENT_IP)
        for _ in range(4):
            assert (await login(client, "s1", "typo")).status_code == 401
        assert (await login(client, "s1", PASSWORD)).status_code == 200
        for _ in range(5):
            assert (await login(client, "s1", "typo")).status_code == 401
        assert_problem(await login(client, "s1", "typo"), 429, "rate_limited")


async def test_unknown_usernames_are_limited_alike(settings: Settings, clock: FixedClock) -> None:
    async with node(settings, clock) as n:
        await with_students(n)
        client = n.client(ATTACKER_IP)
        known = [(await login(client, "s1", "x")).status_code for _ in range(7)]
        unknown = [(await login(client, "nobody", "x")).status_code for _ in range(7)]
        assert known == unknown == [401] * 5 + [429] * 2


async def hammer_from_many_addresses(n: Node, username: str, addresses: int) -> None:
    for i in range(addresses):
        r = await login(n.client(f"203.0.113.{100 + i}"), username, "guess")
        assert r.status_code == 401, r.text


async def test_a_hammered_account_steps_up_to_a_challenge_never_a_lock(
    settings: Settings, clock: FixedClock
) -> None:
    async with node(settings, clock, **POW) as n:
        await with_students(n)
        await hammer_from_many_addresses(n, "s1", 10)
        student = n.client(STUDENT_IP)
        body = assert_problem(await login(student, "s1", PASSWORD), 403, "challenge_required")
        assert body["challenge"]["params"]["action"] == "login"
        r = await login(student, "s1", PASSWORD, pow_answer(body["challenge"]))
        assert r.status_code == 200, r.text
        # The answer may also come in the body; a replayed or wrong-step one is refused.
        answer = await fresh_pow(student, "login")
        r = await student.post(
            TOKEN, json={"username": "s1", "password": PASSWORD, "challenge": answer}
        )
        assert r.status_code == 200, r.text
        r = await login(student, "s1", PASSWORD, answer)
        assert_problem(r, 403, "challenge_failed")
        r = await login(student, "s1", PASSWORD, await fresh_pow(student, "signup"))
        assert_problem(r, 403, "challenge_failed")
        # Other accounts are not asked.
        await with_students_more(n)
        assert (await login(student, "s2", PASSWORD)).status_code == 200


async def with_students_more(n: Node) -> None:
    api = Api(n.client("192.0.2.1"))
    assert (await api.create_students([student_json("s2")])).status_code == 201


async def test_without_a_challenge_a_hammered_account_still_lets_the_student_in(
    settings: Settings, clock: FixedClock
) -> None:
    async with node(settings, clock) as n:
        await with_students(n)
        await hammer_from_many_addresses(n, "s1", 15)
        r = await login(n.client(STUDENT_IP), "s1", PASSWORD)
        assert r.status_code == 200, r.text


async def test_credential_stuffing_from_one_address_is_slowed(
    settings: Settings, clock: FixedClock
) -> None:
    async with node(settings, clock) as n:
        await with_students(n)
        bot = n.client(ATTACKER_IP)
        results = [await login(bot, f"victim{i}@example.org", "Winter2026!") for i in range(50)]
        # 20 failures, then one attempt a second: the rest of a quick run is refused.
        assert [r.status_code for r in results[:20]] == [401] * 20
        assert statuses(results[20:]) == {401: 1, 429: 29}
        assert_problem(results[-1], 429, "rate_limited")
        # The address's students elsewhere are untouched.
        assert (await login(n.client(STUDENT_IP), "s1", PASSWORD)).status_code == 200


async def test_credential_stuffing_from_one_address_is_challenged(
    settings: Settings, clock: FixedClock
) -> None:
    async with node(settings, clock, **POW) as n:
        await with_students(n)
        bot = n.client(ATTACKER_IP)
        results = [await login(bot, f"victim{i}@example.org", "Winter2026!") for i in range(50)]
        assert [r.status_code for r in results[:20]] == [401] * 20
        later = statuses(results[20:])
        assert later.get(401, 0) == 0  # no password checked without a solved challenge
        assert set(later) <= {403, 429}
        assert later.get(403, 0) >= 1
        # A solved challenge buys one attempt, and no more than one a second.
        await asyncio.sleep(1.05)
        solved = await fresh_pow(bot, "login")
        assert (await login(bot, "victim99@example.org", "x", solved)).status_code == 401
        r = await login(bot, "victim98@example.org", "x", await fresh_pow(bot, "login"))
        assert_problem(r, 429, "rate_limited")
        # Students on other addresses are not asked.
        assert (await login(n.client(STUDENT_IP), "s1", PASSWORD)).status_code == 200


async def test_the_backoff_grows(container: Any) -> None:
    """The per-pair budget on a clock the test moves: 30 s after 5 failures, 5 min after
    10, 30 min after 20."""
    clock = FixedClock(T0)
    guard = LoginGuard(container.auth, MemoryRateLimiter(clock), ChallengeGate(None))

    async def attempt() -> float | None:
        try:
            await guard.sign_in("nobody", "x", remote_ip=ATTACKER_IP, challenge=None)
        except InvalidCredentials:
            return None
        except RateLimited as limited:
            return limited.retry_after
        raise AssertionError("logged in")

    waits: list[float] = []
    for _ in range(20):
        while (wait := await attempt()) is None:
            pass
        waits.append(wait)
        clock.set(clock.now() + timedelta(seconds=wait))
    assert waits[0] == pytest.approx(30, abs=0.01)
    assert max(waits) == pytest.approx(1800, rel=0.01)
    assert waits == sorted(waits)
