"""Who may log in and how a caller proves who they are."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Account:
    """A login: an admin or a student (``student_pk`` set)."""

    user_pk: int
    username: str
    password_hash: str
    role: str
    student_pk: int | None


class PasswordHasher(Protocol):
    def hash(self, password: str) -> str: ...

    def verify(self, password_hash: str, password: str) -> bool: ...

    def dummy_verify(self) -> None:
        """Spend the time a real verification would, for unknown usernames."""
        ...


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling, as proven by a token."""

    user_pk: int
    username: str
    role: str
    student_pk: int | None


class TokenSigner(Protocol):
    def issue(self, principal: Principal) -> tuple[str, int]:
        """A signed token and its lifetime in seconds."""
        ...

    def verify(self, token: str) -> Principal:
        """Raises ``InvalidCredentials`` when the token is forged, expired or malformed."""
        ...
