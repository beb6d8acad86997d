"""What a password must be, wherever one is chosen (NIST SP 800-63B's rules, roughly):
long enough, not absurdly long, not the account's own name, and not one already known
from breaches. No composition rules (digits, symbols): they make passwords harder to
remember, not to guess.

Two floors. A password a person chooses for themselves (an applicant's sign-up) must be
at least :attr:`PasswordPolicy.min_length` long (``RUSHGATE_PASSWORD_MIN_LENGTH``). One an
operator sets (students' initial passwords in an import, admin accounts, the bootstrap
admin) needs only :data:`OPERATOR_MIN_LENGTH`: schools hand out initial passwords in
formats of their own, and that is what imports and ``rushgate create-admin`` always
accepted; the other rules apply to them all the same.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from rushgate.domain.errors import ValidationFailed

DEFAULT_MIN_LENGTH = 10
OPERATOR_MIN_LENGTH = 8
# argon2 hashes any length, but time grows with it: an unbounded password is a cheap way
# to make the server spend CPU.
MAX_LENGTH = 1024


class BreachedPasswords(Protocol):
    """Known-breached passwords, by the SHA-1 digest (20 bytes) of their UTF-8 text."""

    def __contains__(self, sha1_digest: object) -> bool: ...


def sha1_digest(password: str) -> bytes:
    # SHA-1 because that is how the breach corpora (Pwned Passwords) are published; it
    # identifies a password in a list, it does not protect one.
    return hashlib.sha1(password.encode(), usedforsecurity=False).digest()


@dataclass(frozen=True, slots=True)
class PasswordProblem:
    reason: str  # too_short, too_long, same_as_identity, breached
    message: str


@dataclass(frozen=True, slots=True)
class PasswordPolicy:
    min_length: int = DEFAULT_MIN_LENGTH
    breached: BreachedPasswords | None = None

    def problem(
        self, password: str, *, identities: Iterable[str] = (), chosen_by_operator: bool = False
    ) -> PasswordProblem | None:
        """The first rule ``password`` breaks, else None. ``identities``: the account's
        username, email and the like, which the password must not be."""
        minimum = (
            min(self.min_length, OPERATOR_MIN_LENGTH) if chosen_by_operator else (self.min_length)
        )
        if len(password) < minimum:
            return PasswordProblem("too_short", f"at least {minimum} characters")
        if len(password) > MAX_LENGTH:
            return PasswordProblem("too_long", f"at most {MAX_LENGTH} characters")
        folded = password.casefold()
        if any(folded == name.casefold() for name in identities if name):
            return PasswordProblem("same_as_identity", "must not be the username or email")
        if self.breached is not None and sha1_digest(password) in self.breached:
            return PasswordProblem(
                "breached", "this password appears in known data breaches; choose another"
            )
        return None

    def check(
        self,
        password: str,
        *,
        field: str = "password",
        identities: Iterable[str] = (),
        chosen_by_operator: bool = False,
    ) -> None:
        """Raise ``ValidationFailed`` naming ``field`` when a rule is broken."""
        found = self.problem(password, identities=identities, chosen_by_operator=chosen_by_operator)
        if found is not None:
            raise ValidationFailed(
                f"the password is not acceptable: {found.message}",
                errors=[password_error(field, found)],
            )


def password_error(field: str, found: PasswordProblem) -> dict[str, str]:
    """One entry of ``ValidationFailed.errors``."""
    return {"field": field, "message": found.message, "reason": found.reason}
