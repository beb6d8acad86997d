"""Bot challenges over HTTP: the challenge endpoint, sign-up and waiting-room join ask
for one when configured, refuse forged, replayed, expired and wrong-step answers (also
through another node sharing Redis), and a CAPTCHA provider that hangs or fails means
refusal, not a pass."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import ValidationError

from rushgate.config import Settings
from rushgate.domain.clock import FixedClock
from tests.fake_verifier import FakeVerifier, fake_verifier
from tests.http.admissions_api import APPLICANT_PASSWORD
from tests.http.api import Api, assert_problem, student_json
from tests.http.challenge_support import HEADER, Node, fresh_pow, node, pow_answer
from tests.http.test_queue import room_json
from tests.support import REDIS_URL, redis_reachable, require_service

POW: dict[str, Any] = {"challenge": "pow", "pow_difficulty": 8}


@pytest.fixture
def backend() -> str:
    # The challenge is decided before storage is touched: one backend is enough.
    return "sqlite"


def applicant(n: int | str) -> dict[str, str]:
    return {"email": f"bot{n}@example.org", "password": APPLICANT_PASSWORD, "name": "지원자"}


@pytest.fixture
def turnstile() -> Iterator[FakeVerifier]:
    with fake_verifier("turnstile") as fake:
        yield fake


def captcha_settings(fake: FakeVerifier, **extra: Any) -> dict[str, Any]:
    return {
        "challenge": fake.kind,
        "challenge_site_key": fake.site_key,
        "challenge_secret_key": fake.secret,
        "challenge_verify_url": fake.url,
        "challenge_timeout_seconds": 0.5,
        **extra,
    }


# --- the challenge endpoint ----------------------------------------------------------


async def test_nothing_to_solve_while_off(settings: Settings, clock: FixedClock) -> None:
    async with node(settings, clock) as n:
        r = await n.client().get("/api/v1/challenge", params={"action": "signup"})
        assert r.status_code == 200
        assert r.json() == {"kind": "off", "site_key": None, "params": {}}


async def test_a_fresh_puzzle_per_call(settings: Settings, clock: FixedClock) -> None:
    async with node(settings, clock, **POW) as n:
        client = n.client()
        first = (await client.get("/api/v1/challenge", params={"action": "login"})).json()
        second = (await client.get("/api/v1/challenge", params={"action": "login"})).json()
        assert first["kind"] == "pow"
        assert first["params"]["action"] == "login"
        assert first["params"]["difficulty"] == 8
        assert first["params"]["challenge"] != second["params"]["challenge"]
        r = await client.get("/api/v1/challenge", params={"action": "admin"})
        assert_problem(r, 422, "validation_error")


async def test_the_captcha_spec_names_the_widget(
    settings: Settings, clock: FixedClock, turnstile: FakeVerifier
) -> None:
    async with node(settings, clock, **captcha_settings(turnstile)) as n:
        r = await n.client().get("/api/v1/challenge", params={"action": "join"})
        assert r.json() == {
            "kind": "turnstile",
            "site_key": turnstile.site_key,
            "params": {"action": "join"},
        }


# --- sign-up -------------------------------------------------------------------------


async def test_sign_up_needs_no_challenge_while_off(settings: Settings, clock: FixedClock) -> None:
    async with node(settings, clock) as n:
        r = await n.client().post("/api/v1/applicants", json=applicant(1))
        assert r.status_code == 201, r.text


async def test_sign_up_without_a_challenge_is_refused_with_what_to_solve(
    settings: Settings, clock: FixedClock
) -> None:
    async with node(settings, clock, **POW) as n:
        client = n.client()
        body = assert_problem(
            await client.post("/api/v1/applicants", json=applicant(1)), 403, "challenge_required"
        )
        assert body["challenge"]["params"]["action"] == "signup"
        # The client solves what it was given and retries.
        r = await client.post(
            "/api/v1/applicants", json=applicant(1), headers={HEADER: pow_answer(body["challenge"])}
        )
        assert r.status_code == 201, r.text


async def test_sign_up_refuses_replayed_forged_and_wrong_step_answers(
    settings: Settings, clock: FixedClock
) -> None:
    async with node(settings, clock, **POW) as n:
        client = n.client()
        answer = await fresh_pow(client, "signup")
        r = await client.post("/api/v1/applicants", json=applicant(1), headers={HEADER: answer})
        assert r.status_code == 201, r.text
        replayed = await client.post(
            "/api/v1/applicants", json=applicant(2), headers={HEADER: answer}
        )
        body = assert_problem(replayed, 403, "challenge_failed")
        assert body["challenge"]["kind"] == "pow"  # a fresh one to solve
        challenge, _, expires, action, signature, _ = (await fresh_pow(client, "signup")).split(".")
        forged = f"{challenge}.1.{expires}.{action}.{signature}.0"
        for bad in (forged, await fresh_pow(client, "login"), "garbage"):
            r = await client.post("/api/v1/applicants", json=applicant(3), headers={HEADER: bad})
            assert_problem(r, 403, "challenge_failed")
        # Nothing of the refused sign-ups was written.
        login = await client.post(
            "/api/v1/auth/token",
            json={"username": "bot2@example.org", "password": APPLICANT_PASSWORD},
        )
        assert_problem(login, 401, "invalid_credentials")


async def test_sign_up_with_a_captcha(
    settings: Settings, clock: FixedClock, turnstile: FakeVerifier
) -> None:
    async with node(settings, clock, **captcha_settings(turnstile)) as n:
        client = n.client()
        body = assert_problem(
            await client.post("/api/v1/applicants", json=applicant(1)), 403, "challenge_required"
        )
        assert body["challenge"]["site_key"] == turnstile.site_key
        token = turnstile.issue("signup")
        r = await client.post("/api/v1/applicants", json=applicant(1), headers={HEADER: token})
        assert r.status_code == 201, r.text
        assert turnstile.requests[-1]["remoteip"] == "198.51.100.20"
        for bad in (token, "fake.forged", turnstile.issue("login")):
            r = await client.post("/api/v1/applicants", json=applicant(2), headers={HEADER: bad})
            assert_problem(r, 403, "challenge_failed")


@pytest.mark.parametrize("mode", ["hang", "error", "garbage"])
async def test_sign_up_fails_closed_when_the_provider_fails(
    settings: Settings, clock: FixedClock, turnstile: FakeVerifier, mode: str
) -> None:
    turnstile.mode = mode  # type: ignore[assignment]
    async with node(settings, clock, **captcha_settings(turnstile)) as n:
        r = await n.client().post(
            "/api/v1/applicants", json=applicant(1), headers={HEADER: turnstile.issue("signup")}
        )
        assert_problem(r, 403, "challenge_failed")


# --- another node sharing Redis ------------------------------------------------------


async def test_an_answer_used_on_one_node_is_refused_on_another(
    settings: Settings, clock: FixedClock
) -> None:
    reason = await redis_reachable()
    if reason is not None:
        require_service("Redis", reason)
    shared = {"redis_url": REDIS_URL, "redis_key_prefix": f"rgtest:{uuid.uuid4().hex[:12]}:"}
    async with (
        node(settings, clock, **POW, **shared) as one,
        node(settings, clock, **POW, **shared) as two,
    ):
        try:
            first, second = one.client(), two.client()
            # Issued by one node, accepted by the other (stateless puzzles)...
            answer = await fresh_pow(first, "signup")
            r = await second.post("/api/v1/applicants", json=applicant(1), headers={HEADER: answer})
            assert r.status_code == 201, r.text
            # ...once: the replay through the first node is refused.
            r = await first.post("/api/v1/applicants", json=applicant(2), headers={HEADER: answer})
            assert_problem(r, 403, "challenge_failed")
        finally:
            await one.container.coordination.delete_all_keys()  # type: ignore[attr-defined]


# --- waiting-room join ---------------------------------------------------------------


async def joining_node(n: Node) -> Api:
    api = Api(n.client())
    assert (await api.create_term(room_json())).status_code == 201
    assert (await api.create_students([student_json("q1"), student_json("q2")])).status_code == 201
    return api


async def test_join_needs_a_challenge_when_configured(
    settings: Settings, clock: FixedClock
) -> None:
    async with node(settings, clock, **POW, challenge_on_join=True) as n:
        api = await joining_node(n)
        path = "/api/v1/queue/2026-spring/join"
        headers = await api.headers("q1")
        body = assert_problem(
            await api.client.post(path, headers=headers), 403, "challenge_required"
        )
        assert body["challenge"]["params"]["action"] == "join"
        signup_answer = await fresh_pow(api.client, "signup")
        r = await api.client.post(path, headers={**headers, HEADER: signup_answer})
        assert_problem(r, 403, "challenge_failed")
        answer = await fresh_pow(api.client, "join")
        r = await api.client.post(path, headers={**headers, HEADER: answer})
        assert r.status_code == 200, r.text
        # Another student cannot reuse it.
        r = await api.client.post(path, headers={**await api.headers("q2"), HEADER: answer})
        assert_problem(r, 403, "challenge_failed")


async def test_join_needs_no_challenge_unless_asked(settings: Settings, clock: FixedClock) -> None:
    async with node(settings, clock, **POW) as n:
        api = await joining_node(n)
        r = await api.client.post("/api/v1/queue/2026-spring/join", headers=await api.headers("q1"))
        assert r.status_code == 200, r.text


# --- the OpenAPI document ------------------------------------------------------------


async def test_the_openapi_document_tells_clients_about_challenges(
    settings: Settings, clock: FixedClock
) -> None:
    async with node(settings, clock) as n:
        doc = (await n.client().get("/openapi.json")).json()
        paths = doc["paths"]
        assert "/api/v1/challenge" in paths
        for path in ("/api/v1/applicants", "/api/v1/queue/{term}/join", "/api/v1/auth/token"):
            operation = paths[path]["post"]
            headers = {p["name"].lower() for p in operation["parameters"] if p["in"] == "header"}
            assert HEADER.lower() in headers, path
            assert "challenge_required" in operation["responses"]["403"]["description"], path
        assert (
            "rate_limited" in paths["/api/v1/auth/token"]["post"]["responses"]["429"]["description"]
        )


# --- settings ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["turnstile", "hcaptcha"])
def test_a_captcha_needs_its_keys(settings: Settings, kind: str) -> None:
    base = {**settings.model_dump(), "challenge": kind}

    def configured(**changes: Any) -> Settings:
        return Settings(**{**base, **changes})

    with pytest.raises(ValidationError, match="RUSHGATE_CHALLENGE_SITE_KEY"):
        configured(challenge_site_key="site")
    with pytest.raises(ValidationError, match="RUSHGATE_CHALLENGE_SECRET_KEY"):
        configured(challenge_secret_key="secret")
    keys = {"challenge_site_key": "site", "challenge_secret_key": "secret"}
    with pytest.raises(ValidationError, match="http"):
        configured(**keys, challenge_verify_url="file:///etc/passwd")
    assert configured(**keys).challenge == kind
