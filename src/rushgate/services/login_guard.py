"""Login brute-force protection that an attacker cannot turn against a student.

Three counts of failed logins, in rate-limit budgets (GCRA) shared by every node:

- per (account, address): after ``pair_failures`` failures that pair waits, longer and
  longer (three tiers of budget); a success clears it. This is the only hard refusal,
  and it falls only on the address that failed: the student elsewhere is not locked out.
- per account, from every address: past ``account_step_up_failures`` the account's login
  needs a solved challenge (step-up), never a lock. Without a challenge configured
  nothing more happens: the per-pair backoff alone slows a distributed attack.
- per address, across accounts (credential stuffing): past ``ip_step_up_failures`` the
  address needs a challenge for every login and is slowed to one attempt per
  ``ip_slow_seconds`` (without a challenge, slowed only).

Attempts are counted against the pair before the password is checked, so concurrent
guesses cannot slip past the budget; the per-account and per-address counts see only
failures (students logging in by the thousand from one campus address are not
counted). Every refusal happens before the password hash is touched and reads the same
whether the account exists. When the limits' backend is down the guard fails open (the
password check still runs) rather than stop every login.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TypeVar

from rushgate.domain.errors import InvalidCredentials, RateLimited, Unavailable
from rushgate.services.auth import AuthService
from rushgate.services.challenge import ChallengeGate
from rushgate.services.ports.rate_limits import Limit, RateLimiter, Verdict

log = logging.getLogger("rushgate.login")

_T = TypeVar("_T")
_FITS = Verdict(True, 0.0, 1)


@dataclass(frozen=True, slots=True)
class LoginPolicy:
    pair_failures: int = 5
    account_step_up_failures: int = 10
    ip_step_up_failures: int = 20
    # One more failure is forgiven this often (seconds).
    account_refill_seconds: float = 60.0
    ip_refill_seconds: float = 30.0
    ip_slow_seconds: float = 1.0

    def pair_tiers(self) -> tuple[Limit, ...]:
        """The growing backoff: after n failures one more try every 30 s, after 2n every
        5 min, after 4n every 30 min (until a success or the budget refills)."""
        n = self.pair_failures
        return (
            Limit("login-pair-1", n, 1 / 30),
            Limit("login-pair-2", 2 * n, 1 / 300),
            Limit("login-pair-3", 4 * n, 1 / 1800),
        )


def _digest(text: str) -> str:
    # Budgets are keyed by digests: no usernames (email addresses) in Redis.
    return hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()[:32]


class LoginGuard:
    def __init__(
        self,
        auth: AuthService,
        limits: RateLimiter,
        challenges: ChallengeGate,
        policy: LoginPolicy | None = None,
    ) -> None:
        self._auth = auth
        self._limits = limits
        self._challenges = challenges
        self.policy = policy = policy or LoginPolicy()
        self._pair = policy.pair_tiers()
        self._account = Limit(
            "login-account", policy.account_step_up_failures, 1 / policy.account_refill_seconds
        )
        self._ip = Limit("login-ip", policy.ip_step_up_failures, 1 / policy.ip_refill_seconds)
        self._ip_slow = Limit("login-ip-slow", 1, 1 / policy.ip_slow_seconds)

    async def sign_in(
        self, username: str, password: str, *, remote_ip: str | None, challenge: str | None
    ) -> tuple[str, int]:
        account = _digest(username.lower())
        address = remote_ip or "unknown"
        pair = f"{account}:{_digest(address)}"
        account_seen, ip_seen = await asyncio.gather(
            self._fail_open(self._limits.peek(self._account, account), _FITS),
            self._fail_open(self._limits.peek(self._ip, address), _FITS),
        )
        stuffing = not ip_seen.allowed
        if stuffing:
            slow = await self._fail_open(self._limits.take(self._ip_slow, address), _FITS)
            if not slow.allowed:
                raise RateLimited(
                    "too many failed logins from this address; slow down",
                    retry_after=slow.retry_after,
                )
        if stuffing or not account_seen.allowed:
            # Off: require() returns at once, the per-pair backoff is all that remains.
            await self._challenges.require("login", challenge, remote_ip=remote_ip)
        tiers = await self._fail_open(
            self._limits.take_all([(tier, pair) for tier in self._pair]),
            tuple(_FITS for _ in self._pair),
        )
        refused = [verdict.retry_after for verdict in tiers if not verdict.allowed]
        if refused:
            raise RateLimited(
                "too many failed logins for this account from this address; wait",
                retry_after=max(refused),
            )
        try:
            issued = await self._auth.login(username, password)
        except InvalidCredentials:
            await asyncio.gather(
                self._fail_open(self._limits.take(self._account, account), _FITS),
                self._fail_open(self._limits.take(self._ip, address), _FITS),
            )
            raise
        await asyncio.gather(
            *(self._fail_open(self._limits.reset(tier, pair), None) for tier in self._pair)
        )
        return issued

    async def _fail_open(self, call: Awaitable[_T], fallback: _T) -> _T:
        try:
            return await call
        except Unavailable:
            log.warning("login limits unavailable; checking the password without them")
            return fallback
