"""Bot challenges: a CAPTCHA (Cloudflare Turnstile, hCaptcha) or a self-hosted proof of
work, asked of clients on sign-up, on login after failures and on waiting-room join."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

ChallengeKind = Literal["turnstile", "hcaptcha", "pow"]
# The steps that may ask for a challenge.
ChallengeAction = Literal["signup", "login", "join"]


@dataclass(frozen=True, slots=True)
class ChallengeSpec:
    """What a client needs to solve a challenge: for a CAPTCHA its widget's site key, for
    proof of work a signed puzzle (``params``)."""

    kind: ChallengeKind
    site_key: str | None = None
    params: dict[str, object] = field(default_factory=dict)


class ChallengeVerifier(Protocol):
    """One kind of challenge. Answers are single use and verification fails closed."""

    @property
    def kind(self) -> ChallengeKind: ...

    async def issue(self, action: ChallengeAction) -> ChallengeSpec:
        """What the client must solve before taking ``action``."""
        ...

    async def verify(self, answer: str, *, action: ChallengeAction, remote_ip: str | None) -> None:
        """Return when ``answer`` solves a challenge for ``action``. Raises
        ``ChallengeFailed`` when it is forged, expired, already used, for another action,
        or cannot be checked (the provider is unreachable: fail closed)."""
        ...


class UsedAnswers(Protocol):
    """Challenge answers already accepted, shared by every node, so each is single use."""

    async def first_use(self, key: str, ttl_seconds: float) -> bool:
        """Remember ``key`` for ``ttl_seconds`` (at least until the answer expires); True
        only for the first call with it while it is remembered. Atomic across nodes.
        Raises ``Unavailable`` when the backend cannot answer."""
        ...
