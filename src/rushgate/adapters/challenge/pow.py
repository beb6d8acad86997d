"""Self-hosted proof of work: no third party sees the visitor, and a bot pays in CPU.

The server issues a puzzle ``challenge.difficulty.expires_at.action.signature`` signed
with an HMAC of the secret key, so issuing keeps no state and any node verifies what
another issued. The client finds a decimal ``nonce`` such that
``sha256(challenge + nonce)`` (the ASCII text, concatenated) starts with ``difficulty``
zero bits, and answers ``<puzzle>.<nonce>``. Each puzzle is accepted once (the used
answers are shared by every node) until it expires.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

from rushgate.domain.clock import Clock
from rushgate.domain.errors import ChallengeFailed
from rushgate.services.ports.challenge import (
    ChallengeAction,
    ChallengeKind,
    ChallengeSpec,
    UsedAnswers,
)

# The page's solver (http/static/pow.js) hashes ~400,000 times a second in headless
# Chromium on a 2-core server (a Python loop ~2,000,000): 18 bits, 262,144 hashes on
# average, took 1.2 s there on average (8 puzzles).
DEFAULT_DIFFICULTY = 18
# Time to fetch, solve and send a puzzle.
PUZZLE_TTL_SECONDS = 300

_ACTIONS = frozenset({"signup", "login", "join"})
_CHALLENGE = re.compile(r"[0-9a-f]{32}")
_NUMBER = re.compile(r"[0-9]{1,20}")


def leading_zero_bits(digest: bytes) -> int:
    return len(digest) * 8 - int.from_bytes(digest, "big").bit_length()


def solve(challenge: str, difficulty: int) -> int:
    """The smallest nonce solving a puzzle (what a client does; tests and the demo)."""
    prefix = hashlib.sha256(challenge.encode("ascii"))
    nonce = 0
    while True:
        attempt = prefix.copy()
        attempt.update(str(nonce).encode("ascii"))
        if leading_zero_bits(attempt.digest()) >= difficulty:
            return nonce
        nonce += 1


class ProofOfWork:
    def __init__(
        self,
        key: bytes,
        used: UsedAnswers,
        clock: Clock,
        *,
        difficulty: int = DEFAULT_DIFFICULTY,
        ttl_seconds: int = PUZZLE_TTL_SECONDS,
    ) -> None:
        if not 1 <= difficulty <= 64:
            raise ValueError("difficulty must be 1 to 64 bits")
        # A key of its own: a puzzle signature can never pass for a token signature.
        self._key = hmac.new(key, b"rushgate proof of work", "sha256").digest()
        self._used = used
        self._clock = clock
        self._difficulty = difficulty
        self._ttl = ttl_seconds

    @property
    def kind(self) -> ChallengeKind:
        return "pow"

    def _sign(self, challenge: str, difficulty: int, expires_at: int, action: str) -> str:
        message = f"{challenge}.{difficulty}.{expires_at}.{action}".encode("ascii")
        mac = hmac.new(self._key, message, "sha256").digest()
        return base64.urlsafe_b64encode(mac).decode("ascii").rstrip("=")

    def _now(self) -> float:
        return self._clock.now().timestamp()

    async def issue(self, action: ChallengeAction) -> ChallengeSpec:
        challenge = secrets.token_hex(16)
        expires_at = int(self._now()) + self._ttl
        signature = self._sign(challenge, self._difficulty, expires_at, action)
        return ChallengeSpec(
            kind="pow",
            params={
                "challenge": challenge,
                "difficulty": self._difficulty,
                "expires_at": expires_at,
                "action": action,
                "signature": signature,
                # Answer with "<puzzle>.<nonce>".
                "puzzle": f"{challenge}.{self._difficulty}.{expires_at}.{action}.{signature}",
            },
        )

    async def verify(self, answer: str, *, action: ChallengeAction, remote_ip: str | None) -> None:
        parts = answer.split(".")
        if len(parts) != 6:
            raise ChallengeFailed("the proof of work answer is malformed")
        challenge, difficulty_text, expires_text, puzzle_action, signature, nonce = parts
        if not (
            _CHALLENGE.fullmatch(challenge)
            and _NUMBER.fullmatch(difficulty_text)
            and _NUMBER.fullmatch(expires_text)
            and _NUMBER.fullmatch(nonce)
            and puzzle_action in _ACTIONS
        ):
            raise ChallengeFailed("the proof of work answer is malformed")
        difficulty, expires_at = int(difficulty_text), int(expires_text)
        expected = self._sign(challenge, difficulty, expires_at, puzzle_action)
        if not hmac.compare_digest(expected, signature):
            raise ChallengeFailed("the puzzle was not issued by this site")
        if puzzle_action != action:
            raise ChallengeFailed(f"the puzzle was issued for {puzzle_action}, not {action}")
        remaining = expires_at - self._now()
        if remaining <= 0:
            raise ChallengeFailed("the puzzle has expired; fetch a new one")
        digest = hashlib.sha256(f"{challenge}{nonce}".encode("ascii")).digest()
        if leading_zero_bits(digest) < difficulty:
            raise ChallengeFailed("the nonce does not solve the puzzle")
        # Last, once the answer is known to be good: forged ones cannot fill the store.
        if not await self._used.first_use(f"pow:{challenge}", remaining + 1):
            raise ChallengeFailed("this puzzle was already used; fetch a new one")
