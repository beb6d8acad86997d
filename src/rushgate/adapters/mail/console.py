"""``Mailer`` that prints: the embedded default, where no mail server is configured.

Every mail is written to the console (standard error) in full, so a demo shows what
students and applicants would receive. Not for production: it prints addresses and
links that are meant for their recipients only."""

from __future__ import annotations

import sys
from typing import TextIO

from rushgate.adapters.mail.smtp import message_id
from rushgate.services.ports.mail import Mail


class ConsoleMailer:
    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream

    async def send(self, mail: Mail) -> None:
        stream = self._stream or sys.stderr
        stream.write(
            f"--- mail (not sent: RUSHGATE_SMTP_URL is unset) ---\n"
            f"To: {mail.to}\nSubject: {mail.subject}\nMessage-ID: {message_id(mail.dedupe_key)}"
            f"\n\n{mail.text}\n--- end of mail ---\n"
        )
        stream.flush()

    async def close(self) -> None:
        return None
