"""Mail leaves through this port: SMTP in production, the console in the embedded demo."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Mail:
    to: str
    subject: str
    text: str
    # Stable per event: the Message-ID of every copy of this mail, so a re-sent one is
    # the same mail and a recipient's client (or a test) can tell.
    dedupe_key: str
    html: str | None = None


class MailRejected(Exception):
    """Permanent: the server refused this mail (bad address, …); retrying cannot help."""


class MailUnavailable(Exception):
    """Transient: the server could not be reached or deferred; retry later."""


class Mailer(Protocol):
    async def send(self, mail: Mail) -> None:
        """Deliver or raise ``MailRejected`` / ``MailUnavailable``."""
        ...

    async def close(self) -> None:
        """Let go of any connection kept open between mails."""
        ...


@dataclass(frozen=True, slots=True)
class Contact:
    """Where a user's mail goes and in which language."""

    email: str
    name: str
    locale: str | None  # "ko" or "en"; None: the deployment's default


class Contacts(Protocol):
    async def contacts(self, user_pks: Collection[int]) -> dict[int, Contact]:
        """Where each user's mail goes, in one look-up for a whole batch of messages.
        Users who are gone or have no address are missing (their messages are dropped)."""
        ...
