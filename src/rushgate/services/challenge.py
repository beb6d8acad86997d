"""Which steps ask for a bot challenge, and checking the answers.

With a challenge configured, sign-up always needs one, login needs one once the login
guard finds the account or the address suspicious (step-up), and joining a waiting room
needs one when the operator asks for it. Off: nothing is ever asked."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from rushgate.domain.errors import ChallengeFailed, ChallengeRequired
from rushgate.services.ports.challenge import ChallengeAction, ChallengeSpec, ChallengeVerifier


def spec_document(spec: ChallengeSpec) -> dict[str, Any]:
    """The spec as clients receive it (the challenge endpoint and problem bodies)."""
    return {"kind": spec.kind, "site_key": spec.site_key, "params": spec.params}


class ChallengeGate:
    def __init__(
        self,
        verifier: ChallengeVerifier | None,
        *,
        on_join: bool = False,
        close: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._verifier = verifier
        self._close = close
        #: A challenge is configured: sign-up needs one and login may step up to one.
        self.enabled = verifier is not None
        #: Joining a waiting room needs a challenge (read before awaiting anything).
        self.on_join = on_join and verifier is not None

    @property
    def kind(self) -> str:
        return "off" if self._verifier is None else self._verifier.kind

    async def spec(self, action: ChallengeAction) -> ChallengeSpec | None:
        """What to solve before ``action``; None when no challenge is configured."""
        return None if self._verifier is None else await self._verifier.issue(action)

    async def require(
        self, action: ChallengeAction, answer: str | None, *, remote_ip: str | None
    ) -> None:
        """Return when ``answer`` solves a challenge for ``action`` (or none is
        configured). Raises ``ChallengeRequired`` without an answer and
        ``ChallengeFailed`` with a bad one, both carrying a fresh challenge to retry."""
        verifier = self._verifier
        if verifier is None:
            return
        if not answer:
            raise ChallengeRequired(
                f"this step ({action}) needs a solved bot challenge",
                challenge=spec_document(await verifier.issue(action)),
            )
        try:
            await verifier.verify(answer, action=action, remote_ip=remote_ip)
        except ChallengeFailed as failed:
            failed.context.setdefault("challenge", spec_document(await verifier.issue(action)))
            raise

    async def close(self) -> None:
        if self._close is not None:
            await self._close()
