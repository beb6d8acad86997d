"""Logging in: passwords in, signed tokens out."""

from __future__ import annotations

import asyncio

from rushgate.domain.errors import InvalidCredentials
from rushgate.services.ports.auth import PasswordHasher, Principal, TokenSigner
from rushgate.services.ports.storage import Storage


class AuthService:
    def __init__(self, storage: Storage, hasher: PasswordHasher, signer: TokenSigner) -> None:
        self._storage = storage
        self._hasher = hasher
        self._signer = signer

    async def login(self, username: str, password: str) -> tuple[str, int]:
        reads = self._storage.reads(fresh=True)
        account = await reads.account(username)
        if account is None and username != username.lower():
            # Applicants sign up by email, stored lower-cased: S1@X.EDU is s1@x.edu.
            account = await reads.account(username.lower())
        if account is None:
            # Verify anyway, so the response time does not tell which usernames exist.
            await asyncio.to_thread(self._hasher.dummy_verify)
            raise InvalidCredentials("wrong username or password")
        # argon2 is deliberately slow: keep it off the event loop.
        if not await asyncio.to_thread(self._hasher.verify, account.password_hash, password):
            raise InvalidCredentials("wrong username or password")
        return self._signer.issue(
            Principal(
                user_pk=account.user_pk,
                username=account.username,
                role=account.role,
                student_pk=account.student_pk,
            )
        )

    def authenticate(self, token: str) -> Principal:
        return self._signer.verify(token)
