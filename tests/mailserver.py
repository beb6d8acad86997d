"""A real SMTP server for the mail tests: aiosmtpd on a loopback port, in its own thread,
with switches for how it answers (accept, defer with 4xx, refuse with 5xx, hold a mail
before answering, require a login)."""

from __future__ import annotations

import asyncio
import email
import email.policy
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.serverproc import free_port


@dataclass
class MailServer:
    """Every mail it was handed (``received``, in order), whatever it answered after."""

    port: int = field(default_factory=free_port)
    # "451 …" / "550 …": the answer to every RCPT TO instead of accepting it.
    rcpt_reply: str | None = None
    # The answer to DATA once the mail is in.
    data_reply: str = "250 OK"
    # The n-th mail (1-based) is taken in, but its answer waits until ``release`` is set
    # (``held`` tells when it waits): a client stuck between sending and hearing back.
    hold_at: int | None = None
    release: threading.Event = field(default_factory=threading.Event)
    held: threading.Event = field(default_factory=threading.Event)
    login: tuple[str, str] | None = None
    received: list[EmailMessage] = field(default_factory=list)
    sessions: int = 0

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}?starttls=0&timeout=5"

    def message_ids(self) -> list[str]:
        return [str(m["Message-ID"]) for m in self.received]

    # aiosmtpd hooks (run on the server's own loop, in its thread)

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        self.sessions += 1
        session.host_name = hostname
        return responses

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if self.rcpt_reply is not None:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.received.append(parsed)
        if len(self.received) == self.hold_at:
            self.held.set()
            await asyncio.get_running_loop().run_in_executor(None, self.release.wait, 30)
        return self.data_reply

    def _authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and self.login == (
            data.login.decode(),
            data.password.decode(),
        )
        return AuthResult(success=ok, handled=False)


@contextmanager
def mail_server(**options: Any) -> Iterator[MailServer]:
    server = MailServer(**options)
    controller = Controller(
        server,
        hostname="127.0.0.1",
        port=server.port,
        authenticator=server._authenticate,
        auth_require_tls=False,
    )
    controller.start()
    try:
        yield server
    finally:
        server.release.set()  # a held DATA must not keep the server from stopping
        controller.stop()
