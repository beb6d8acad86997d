"""Password hashing (argon2id), signed tokens (JWT, HS256: bearer, admission, email
verification) and the cipher of personal data at rest (AES-GCM)."""

from __future__ import annotations

import base64
import binascii
import hmac
import os
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Generic, Literal, TypeVar

import jwt
from argon2 import PasswordHasher as Argon2
from argon2 import exceptions as argon2_errors
from argon2.profiles import RFC_9106_LOW_MEMORY
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from rushgate.domain.clock import Clock
from rushgate.domain.errors import InvalidCredentials, InvalidRequest, NotAdmitted
from rushgate.services.ports.auth import Principal
from rushgate.services.ports.waiting_room import AdmissionClaims

T = TypeVar("T")

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


class _VerifiedTokens(Generic[T]):
    """Tokens this process has verified, kept until they expire.

    Checking an HS256 JWT costs ~70 µs of CPU, a dict lookup well under one; in a rush the
    same client sends the same token many times a minute. Only valid tokens are kept, and
    the expiry is still checked on every hit. Bounded: when full, it starts over.
    """

    def __init__(self, clock: Clock, max_entries: int = 200_000) -> None:
        self._clock = clock
        self._max = max_entries
        self._entries: dict[str, tuple[T, float]] = {}

    def get(self, token: str) -> T | None:
        entry = self._entries.get(token)
        if entry is None:
            return None
        if self._clock.now().timestamp() >= entry[1]:
            del self._entries[token]
            return None
        return entry[0]

    def put(self, token: str, value: T, expires: float) -> T:
        if len(self._entries) >= self._max:
            self._entries.clear()
        self._entries[token] = (value, expires)
        return value


class JwtSigner:
    """HS256 tokens carrying who the caller is, so no request needs a session lookup."""

    _ALGORITHM = "HS256"
    _AUDIENCE = "rushgate"

    def __init__(self, secret: str, clock: Clock, ttl: timedelta) -> None:
        self._secret = secret
        self._clock = clock
        self._ttl = ttl
        self._verified = _VerifiedTokens[Principal](clock)

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
        known = self._verified.get(token)
        if known is not None:
            return known
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
            principal = Principal(
                user_pk=int(claims["sub"]),
                username=str(claims.get("name", "")),
                role=str(claims["role"]),
                student_pk=int(student) if student is not None else None,
            )
            return self._verified.put(token, principal, int(claims["exp"]))
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            raise InvalidCredentials("the bearer token is invalid or expired") from exc


class AdmissionTokens:
    """Admission tokens of the waiting room: HS256 JWTs bound to (student, term, ticket).

    Signed with a key derived from the secret for this purpose only, and with their own
    audience, so neither kind of token passes for the other. Revocation is by ticket
    (see ``SeatHints.precheck``); the signature and expiry are checked here, with no I/O.
    """

    _ALGORITHM = "HS256"
    _AUDIENCE = "rushgate:admission"

    def __init__(self, secret: str, clock: Clock) -> None:
        self._key = hmac.new(secret.encode(), b"rushgate admission tokens", "sha256").digest()
        self._clock = clock
        self._verified = _VerifiedTokens[AdmissionClaims](clock)

    def issue(self, claims: AdmissionClaims) -> str:
        body: dict[str, object] = {
            "sub": str(claims.student_pk),
            "term": claims.term,
            "tkt": claims.ticket,
            "aud": self._AUDIENCE,
            "exp": int(claims.expires_at.timestamp()),
        }
        return jwt.encode(body, self._key, algorithm=self._ALGORITHM)

    def verify(self, token: str) -> AdmissionClaims:
        known = self._verified.get(token)
        if known is not None:
            return known
        try:
            body = jwt.decode(
                token,
                self._key,
                algorithms=[self._ALGORITHM],
                audience=self._AUDIENCE,
                options={"require": ["sub", "exp", "aud", "term", "tkt"], "verify_exp": False},
            )
            expires = int(body["exp"])
            if self._clock.now().timestamp() >= expires:
                raise jwt.ExpiredSignatureError("expired")
            claims = AdmissionClaims(
                student_pk=int(body["sub"]),
                term=str(body["term"]),
                ticket=int(body["tkt"]),
                expires_at=datetime.fromtimestamp(expires, UTC),
            )
            return self._verified.put(token, claims, expires)
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            raise NotAdmitted("the admission token is invalid or expired") from exc


class AesGcmFieldCipher:
    """AES-256-GCM for personal fields at rest: ``v1.<nonce>.<ciphertext>``, base64url.

    A random 96-bit nonce per value (AES-GCM's limit of about 2^32 values per key is far
    beyond any admission site). The field's name is bound as associated data, so a
    phone number cannot be moved into the birth-date column and still open."""

    _PREFIX = "v1"

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("the personal-data key must be 32 bytes")
        self._aead = AESGCM(key)

    @classmethod
    def from_secret(cls, secret: str) -> AesGcmFieldCipher:
        """From a 32-byte key in base64url (``RUSHGATE_PERSONAL_DATA_KEY``)."""
        try:
            key = base64.urlsafe_b64decode(secret + "=" * (-len(secret) % 4))
        except (binascii.Error, ValueError) as exc:
            raise ValueError("the personal-data key is not base64url") from exc
        return cls(key)

    def seal(self, plaintext: str, *, field: str = "") -> str:
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, plaintext.encode(), field.encode())
        return ".".join((self._PREFIX, _b64(nonce), _b64(sealed)))

    def open(self, sealed: str, *, field: str = "") -> str:
        try:
            prefix, nonce, body = sealed.split(".")
            if prefix != self._PREFIX:
                raise ValueError(f"unknown sealing version {prefix!r}")
            return self._aead.decrypt(_unb64(nonce), _unb64(body), field.encode()).decode()
        except (InvalidTag, ValueError, binascii.Error) as exc:
            raise ValueError("this value was not sealed with this key") from exc


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class VerificationJwt:
    """Sign-up verification tokens: HS256 JWTs with their own derived key and audience
    (neither a bearer nor an admission token passes for one), bound to the applicant
    and the address the mail went to."""

    _ALGORITHM = "HS256"
    _AUDIENCE = "rushgate:verify-email"

    def __init__(self, secret: str, clock: Clock, ttl: timedelta) -> None:
        self._key = hmac.new(secret.encode(), b"rushgate email verification", "sha256").digest()
        self._clock = clock
        self._ttl = ttl

    def issue(self, applicant_pk: int, email: str) -> str:
        body: dict[str, object] = {
            "sub": str(applicant_pk),
            "email": email,
            "aud": self._AUDIENCE,
            "exp": int((self._clock.now() + self._ttl).timestamp()),
        }
        return jwt.encode(body, self._key, algorithm=self._ALGORITHM)

    def verify(self, token: str) -> tuple[int, str]:
        try:
            body = jwt.decode(
                token,
                self._key,
                algorithms=[self._ALGORITHM],
                audience=self._AUDIENCE,
                options={"require": ["sub", "exp", "aud", "email"], "verify_exp": False},
            )
            if self._clock.now().timestamp() >= int(body["exp"]):
                raise jwt.ExpiredSignatureError("expired")
            return int(body["sub"]), str(body["email"])
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            raise InvalidRequest(
                "this verification link is invalid or expired", field="token"
            ) from exc
