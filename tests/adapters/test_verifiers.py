"""The challenge verifiers: Turnstile and hCaptcha against a fake siteverify server on
loopback (a real HTTP exchange), proof of work with real hashing at a low difficulty.
Forged, expired, replayed and wrong-step answers are refused for every kind, and the
CAPTCHA check fails closed when the provider hangs, errs or talks nonsense."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta

import pytest

from rushgate.adapters.challenge.captcha import HCAPTCHA, TURNSTILE, SiteverifyVerifier
from rushgate.adapters.challenge.pow import ProofOfWork, leading_zero_bits, solve
from rushgate.adapters.memory.used_answers import MemoryUsedAnswers
from rushgate.domain.clock import FixedClock
from rushgate.domain.errors import ChallengeFailed
from tests.fake_verifier import FakeVerifier, fake_verifier
from tests.support import T0, closed_port

KEY = b"test-secret-key-that-is-long-enough-0123456789"
IP = "203.0.113.7"


# --- CAPTCHA providers ---------------------------------------------------------------


@pytest.fixture(params=["turnstile", "hcaptcha"])
def fake(request: pytest.FixtureRequest) -> Iterator[FakeVerifier]:
    with fake_verifier(request.param) as server:
        yield server


def captcha_for(fake: FakeVerifier, **options: object) -> SiteverifyVerifier:
    settings: dict[str, object] = {
        "site_key": fake.site_key,
        "secret": fake.secret,
        "used": MemoryUsedAnswers(),
        "verify_url": fake.url,
        "timeout_seconds": 2.0,
    }
    settings.update(options)
    provider = TURNSTILE if fake.kind == "turnstile" else HCAPTCHA
    return SiteverifyVerifier(provider, **settings)  # type: ignore[arg-type]


@pytest.fixture
async def captcha(fake: FakeVerifier) -> AsyncIterator[SiteverifyVerifier]:
    verifier = captcha_for(fake)
    yield verifier
    await verifier.aclose()


async def test_a_solved_captcha_passes_and_the_provider_hears_the_client(
    fake: FakeVerifier, captcha: SiteverifyVerifier
) -> None:
    await captcha.verify(fake.issue("signup"), action="signup", remote_ip=IP)
    (sent,) = fake.requests
    assert sent["secret"] == fake.secret
    assert sent["remoteip"] == IP
    assert ("sitekey" in sent) == (fake.kind == "hcaptcha")


async def test_the_spec_names_the_widget(captcha: SiteverifyVerifier, fake: FakeVerifier) -> None:
    spec = await captcha.issue("login")
    assert (spec.kind, spec.site_key, spec.params) == (
        fake.kind,
        fake.site_key,
        {"action": "login"},
    )


async def test_a_forged_token_is_refused(captcha: SiteverifyVerifier) -> None:
    with pytest.raises(ChallengeFailed) as refused:
        await captcha.verify("fake.made-up-by-a-bot", action="signup", remote_ip=IP)
    assert refused.value.context["error_codes"] == ["invalid-input-response"]


async def test_an_expired_token_is_refused(fake: FakeVerifier, captcha: SiteverifyVerifier) -> None:
    token = fake.issue("signup", ttl=0.05)
    await asyncio.sleep(0.1)
    with pytest.raises(ChallengeFailed) as refused:
        await captcha.verify(token, action="signup", remote_ip=IP)
    assert refused.value.context["error_codes"] == ["timeout-or-duplicate"]


async def test_a_replayed_token_is_refused_before_the_provider_is_asked(
    fake: FakeVerifier,
) -> None:
    # The fake would take the token again: only the service's own memory refuses it.
    fake.refuse_replays = False
    verifier = captcha_for(fake)
    token = fake.issue("signup")
    await verifier.verify(token, action="signup", remote_ip=IP)
    with pytest.raises(ChallengeFailed, match="already used"):
        await verifier.verify(token, action="signup", remote_ip=IP)
    assert len(fake.requests) == 1
    await verifier.aclose()


async def test_a_token_replayed_on_a_node_that_never_saw_it_is_refused_by_the_provider(
    fake: FakeVerifier,
) -> None:
    token = fake.issue("signup")
    first, second = captcha_for(fake), captcha_for(fake)  # memories not shared
    await first.verify(token, action="signup", remote_ip=IP)
    with pytest.raises(ChallengeFailed):
        await second.verify(token, action="signup", remote_ip=IP)
    await first.aclose()
    await second.aclose()


async def test_a_turnstile_token_for_another_step_is_refused() -> None:
    with fake_verifier("turnstile") as fake:
        verifier = captcha_for(fake)
        with pytest.raises(ChallengeFailed, match="another step"):
            await verifier.verify(fake.issue("login"), action="signup", remote_ip=IP)
        await verifier.verify(fake.issue("signup"), action="signup", remote_ip=IP)
        await verifier.aclose()


async def test_an_hcaptcha_token_of_another_sites_widget_is_refused() -> None:
    # hCaptcha reports no action: what binds a token is the site key it was solved for.
    with fake_verifier("hcaptcha") as fake:
        verifier = captcha_for(fake, site_key="another-sites-key")
        with pytest.raises(ChallengeFailed) as refused:
            await verifier.verify(fake.issue("signup"), action="signup", remote_ip=IP)
        assert refused.value.context["error_codes"] == ["sitekey-secret-mismatch"]
        await verifier.aclose()


async def test_a_token_solved_on_another_host_is_refused_when_the_host_is_set(
    fake: FakeVerifier,
) -> None:
    verifier = captcha_for(fake, hostname="rushgate.test")
    with pytest.raises(ChallengeFailed, match="another site"):
        await verifier.verify(
            fake.issue("signup", hostname="phish.example"), action="signup", remote_ip=IP
        )
    await verifier.verify(fake.issue("signup"), action="signup", remote_ip=IP)
    await verifier.aclose()


async def test_a_wrong_secret_is_refused(fake: FakeVerifier) -> None:
    verifier = captcha_for(fake, secret="not-the-secret")
    with pytest.raises(ChallengeFailed) as refused:
        await verifier.verify(fake.issue("signup"), action="signup", remote_ip=IP)
    assert refused.value.context["error_codes"] == ["invalid-input-secret"]
    await verifier.aclose()


@pytest.mark.parametrize("answer", ["", "x" * 4097])
async def test_a_malformed_token_is_refused_without_asking(
    fake: FakeVerifier, captcha: SiteverifyVerifier, answer: str
) -> None:
    with pytest.raises(ChallengeFailed, match="malformed"):
        await captcha.verify(answer, action="signup", remote_ip=IP)
    assert fake.requests == []


async def test_a_hanging_provider_fails_closed_within_the_timeout(fake: FakeVerifier) -> None:
    fake.mode = "hang"
    verifier = captcha_for(fake, timeout_seconds=0.3)
    started = time.monotonic()
    with pytest.raises(ChallengeFailed, match="cannot be checked"):
        await verifier.verify(fake.issue("signup"), action="signup", remote_ip=IP)
    assert time.monotonic() - started < 1.5
    await verifier.aclose()


@pytest.mark.parametrize("mode", ["error", "garbage"])
async def test_a_failing_provider_fails_closed(
    fake: FakeVerifier, captcha: SiteverifyVerifier, mode: str
) -> None:
    fake.mode = mode  # type: ignore[assignment]
    with pytest.raises(ChallengeFailed, match="cannot be checked"):
        await captcha.verify(fake.issue("signup"), action="signup", remote_ip=IP)


async def test_an_unreachable_provider_fails_closed() -> None:
    verifier = SiteverifyVerifier(
        TURNSTILE,
        site_key="k",
        secret="s",
        used=MemoryUsedAnswers(),
        verify_url=f"http://127.0.0.1:{closed_port()}/siteverify",
    )
    with pytest.raises(ChallengeFailed, match="cannot be checked"):
        await verifier.verify("token", action="signup", remote_ip=IP)
    await verifier.aclose()


# --- proof of work -------------------------------------------------------------------

DIFFICULTY = 8


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(T0)


@pytest.fixture
def pow_verifier(clock: FixedClock) -> ProofOfWork:
    return ProofOfWork(KEY, MemoryUsedAnswers(), clock, difficulty=DIFFICULTY)


async def solved(verifier: ProofOfWork, action: str = "signup") -> str:
    params = (await verifier.issue(action)).params  # type: ignore[arg-type]
    return f"{params['puzzle']}.{solve(str(params['challenge']), int(str(params['difficulty'])))}"


async def test_a_solved_puzzle_passes_once(pow_verifier: ProofOfWork) -> None:
    answer = await solved(pow_verifier)
    await pow_verifier.verify(answer, action="signup", remote_ip=IP)
    with pytest.raises(ChallengeFailed, match="already used"):
        await pow_verifier.verify(answer, action="signup", remote_ip=IP)


async def test_the_puzzle_says_what_to_solve(pow_verifier: ProofOfWork) -> None:
    spec = await pow_verifier.issue("join")
    params = spec.params
    assert spec.kind == "pow"
    assert params["difficulty"] == DIFFICULTY
    assert params["action"] == "join"
    assert params["expires_at"] == int(T0.timestamp()) + 300
    assert params["puzzle"] == ".".join(
        str(params[k]) for k in ("challenge", "difficulty", "expires_at", "action", "signature")
    )


async def test_an_unsolved_nonce_is_refused(pow_verifier: ProofOfWork) -> None:
    params = (await pow_verifier.issue("signup")).params
    nonce = next(
        n
        for n in range(1000)
        if leading_zero_bits(hashlib.sha256(f"{params['challenge']}{n}".encode()).digest())
        < DIFFICULTY
    )
    with pytest.raises(ChallengeFailed, match="does not solve"):
        await pow_verifier.verify(f"{params['puzzle']}.{nonce}", action="signup", remote_ip=IP)


async def test_a_puzzle_for_another_step_is_refused(pow_verifier: ProofOfWork) -> None:
    with pytest.raises(ChallengeFailed, match="issued for login"):
        await pow_verifier.verify(
            await solved(pow_verifier, "login"), action="signup", remote_ip=IP
        )


async def test_an_expired_puzzle_is_refused(pow_verifier: ProofOfWork, clock: FixedClock) -> None:
    answer = await solved(pow_verifier)
    clock.set(T0 + timedelta(seconds=301))
    with pytest.raises(ChallengeFailed, match="expired"):
        await pow_verifier.verify(answer, action="signup", remote_ip=IP)


async def test_a_puzzle_edited_by_the_client_is_refused(pow_verifier: ProofOfWork) -> None:
    challenge, difficulty, expires_at, action, signature, nonce = (
        await solved(pow_verifier)
    ).split(".")
    easier = f"{challenge}.1.{expires_at}.{action}.{signature}.0"
    later = f"{challenge}.{difficulty}.{int(expires_at) + 3600}.{action}.{signature}.{nonce}"
    other_step = f"{challenge}.{difficulty}.{expires_at}.join.{signature}.{nonce}"
    made_up = f"{'0' * 32}.{difficulty}.{expires_at}.{action}.{signature}.{nonce}"
    for forged in (easier, later, other_step, made_up):
        with pytest.raises(ChallengeFailed, match="not issued by this site"):
            await pow_verifier.verify(forged, action=action, remote_ip=IP)  # type: ignore[arg-type]


async def test_a_puzzle_signed_with_another_key_is_refused(clock: FixedClock) -> None:
    theirs = ProofOfWork(
        b"another deployment's secret key, as long",
        MemoryUsedAnswers(),
        clock,
        difficulty=DIFFICULTY,
    )
    ours = ProofOfWork(KEY, MemoryUsedAnswers(), clock, difficulty=DIFFICULTY)
    with pytest.raises(ChallengeFailed, match="not issued by this site"):
        await ours.verify(await solved(theirs), action="signup", remote_ip=IP)


@pytest.mark.parametrize(
    "answer",
    ["", "nonsense", "a.b.c.d.e.f", "0" * 32 + ".8.1.signup.sig.-1", "0" * 32 + ".8.1.admin.sig.1"],
)
async def test_a_malformed_answer_is_refused(pow_verifier: ProofOfWork, answer: str) -> None:
    with pytest.raises(ChallengeFailed, match="malformed"):
        await pow_verifier.verify(answer, action="signup", remote_ip=IP)


def test_a_solution_has_the_leading_zero_bits() -> None:
    nonce = solve("00" * 16, 12)
    assert leading_zero_bits(hashlib.sha256(f"{'00' * 16}{nonce}".encode()).digest()) >= 12
    assert leading_zero_bits(b"\x00\x0f" + b"\xff" * 30) == 12
