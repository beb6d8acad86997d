"""Password hashing (argon2id) and signed bearer tokens (JWT, HS256)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Literal

import jwt
from argon2 import PasswordHasher as Argon2
from argon2 import exceptions as argon2_errors
from argon2.profiles import RFC_9106_LOW_MEMORY

from rushgate.domain.clock import Clock
from rushgate.domain.errors import InvalidCredentials
from rushgate.services.ports import Principal

HashCost = Literal["standard", "low"]


class Argon2Hasher:
    """argon2id. ``standard`` follows RFC 9106's low-memory profile (64 MiB, t=3);
    ``low`` is ~100x cheaper and meant for tests and throwaway demo data only."""

    def __init__(self, cost: HashCost = "standard") -> None:
        if cost == "standard":
            self._argon2 = Argon2.from_parameters(RFC_9106_LOW_MEMORY)
        else:
            self._argon2 = Argon2(time_cost=1, memory_cost=1024, parallelism=1)
        self._dummy = self._argon2.hash("rushgate-dummy-password")

    def hash(self, password: str) -> str:
        return self._argon2.hash(password)

    def hash_many(self, passwords: Sequence[str]) -> list[str]:
        """Hash a batch on every core (argon2 releases the GIL while it works)."""
        if len(passwords) < 8:
            return [self.hash(p) for p in passwords]
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
            return list(pool.map(self.hash, passwords, chunksize=64))

    def verify(self, password_hash: str, password: str) -> bool:
        try:
            return self._argon2.verify(password_hash, password)
        except (argon2_errors.VerificationError, argon2_errors.InvalidHashError):
            return False

    def dummy_verify(self) -> None:
        self.verify(self._dummy, "not-the-password")


class JwtSigner:
    """HS256 tokens carrying who the caller is, so no request needs a session lookup."""

    _ALGORITHM = "HS256"
    _AUDIENCE = "rushgate"

    def __init__(self, secret: str, clock: Clock, ttl: timedelta) -> None:
        self._secret = secret
        self._clock = clock
        self._ttl = ttl

    def issue(self, principal: Principal) -> tuple[str, int]:
        now = self._clock.now()
        claims: dict[str, object] = {
            "sub": str(principal.user_pk),
            "name": principal.username,
            "role": principal.role,
            "aud": self._AUDIENCE,
            "iat": int(now.timestamp()),
            "exp": int((now + self._ttl).timestamp()),
            "jti": uuid.uuid4().hex,
        }
        if principal.student_pk is not None:
            claims["sid"] = principal.student_pk
        token = jwt.encode(claims, self._secret, algorithm=self._ALGORITHM)
        return token, int(self._ttl.total_seconds())

    def verify(self, token: str) -> Principal:
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[self._ALGORITHM],
                audience=self._AUDIENCE,
                # Expiry is checked below against the injected clock, not the wall clock
                # (PyJWT's own check would use the wall clock).
                options={
                    "require": ["sub", "exp", "role", "aud"],
                    "verify_iat": False,
                    "verify_exp": False,
                },
            )
            if self._clock.now().timestamp() >= int(claims["exp"]):
                raise jwt.ExpiredSignatureError("expired")
            student = claims.get("sid")
            return Principal(
                user_pk=int(claims["sub"]),
                username=str(claims.get("name", "")),
                role=str(claims["role"]),
                student_pk=int(student) if student is not None else None,
            )
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            raise InvalidCredentials("the bearer token is invalid or expired") from exc
