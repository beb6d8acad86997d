"""``Mailer`` over SMTP (aiosmtplib), configured by one URL.

``smtp://user:pass@host:587?starttls=1``: ``smtp`` upgrades with STARTTLS when the server
offers it (``starttls=1`` requires it, ``starttls=0`` never tries), ``smtps`` speaks TLS
from the first byte (port 465); ``timeout`` (seconds, default 30) bounds each SMTP
command. User and password, when given, log in.

One connection is kept open between mails (the relay sends them one after another) and
opened again when the server has closed it.
"""

from __future__ import annotations

import asyncio
import string
import time
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib

from rushgate.services.ports.mail import Mail, MailRejected, MailUnavailable

# Characters of an RFC 5322 ``dot-atom`` but "=", which escapes everything else.
_ATEXT = frozenset(string.ascii_letters + string.digits + "!#$%&'*+-/?^_`{|}~")
# A kept connection idle this long is closed rather than reused: servers drop idle
# clients after a while, and finding out costs a timeout.
_MAX_IDLE_SECONDS = 60.0


def message_id(dedupe_key: str) -> str:
    """The Message-ID of every copy of a mail: ``<{dedupe_key}@rushgate>``, with what a
    message id may not hold (``:``, spaces, a leading dot, …) escaped as ``=XX``, so
    distinct keys stay distinct ids."""
    out: list[str] = []
    last = len(dedupe_key) - 1
    for i, char in enumerate(dedupe_key):
        # A dot only between other characters, never two in a row (RFC 5322 dot-atom).
        if char in _ATEXT or (char == "." and 0 < i < last and out[-1][-1] != "."):
            out.append(char)
        else:
            out.extend(f"={byte:02X}" for byte in char.encode())
    return f"<{''.join(out)}@rushgate>"


def build_message(mail: Mail, sender: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = mail.to
    message["Subject"] = mail.subject
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = message_id(mail.dedupe_key)
    message["X-Rushgate-Dedupe"] = mail.dedupe_key
    # base64 rather than raw 8-bit text: no reliance on the server's 8BITMIME.
    message.set_content(mail.text, cte="7bit" if mail.text.isascii() else "base64")
    if mail.html is not None:
        message.add_alternative(
            mail.html, subtype="html", cte="7bit" if mail.html.isascii() else "base64"
        )
    return message


@dataclass(frozen=True, slots=True)
class SmtpConfig:
    hostname: str
    port: int | None
    username: str | None
    password: str | None
    use_tls: bool
    start_tls: bool | None  # None: when the server offers it
    timeout: float

    @classmethod
    def from_url(cls, url: str) -> SmtpConfig:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps"):
            raise ValueError("the SMTP URL must start with smtp:// or smtps://")
        if not parts.hostname:
            raise ValueError("the SMTP URL names no host")
        query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        start_tls: bool | None = None
        if "starttls" in query:
            start_tls = query["starttls"].lower() in ("1", "true", "yes")
        use_tls = parts.scheme == "smtps"
        if use_tls and start_tls:
            raise ValueError("smtps:// is TLS already; starttls=1 does not go with it")
        return cls(
            hostname=parts.hostname,
            port=parts.port,
            username=None if parts.username is None else unquote(parts.username),
            password=None if parts.password is None else unquote(parts.password),
            use_tls=use_tls,
            start_tls=False if use_tls else start_tls,
            timeout=float(query.get("timeout", "30")),
        )


def _refused(code: int, what: str) -> Exception:
    """A server's no: permanent (5xx) or try again later (4xx, or anything else)."""
    if 500 <= code < 600:
        return MailRejected(f"{code} {what}")
    return MailUnavailable(f"{code} {what}")


class SmtpMailer:
    """``Mailer`` over SMTP. 5xx answers to this mail (recipient, content) reject it; an
    unreachable server, timeouts, 4xx answers and failures of the session itself
    (greeting, STARTTLS, login, the sender address: configuration, the same for every
    mail) are unavailability, retried later."""

    def __init__(self, config: SmtpConfig, sender: str) -> None:
        self._config = config
        self._sender = sender
        self._client: aiosmtplib.SMTP | None = None
        self._used_at = 0.0
        self._lock = asyncio.Lock()

    @classmethod
    def from_url(cls, url: str, sender: str) -> SmtpMailer:
        return cls(SmtpConfig.from_url(url), sender)

    async def send(self, mail: Mail) -> None:
        message = build_message(mail, self._sender)
        async with self._lock:
            try:
                await self._send(message)
            except aiosmtplib.SMTPRecipientsRefused as exc:
                # One recipient per mail: its refusal is the answer.
                if not exc.recipients:
                    raise MailUnavailable("recipients refused") from exc
                first = exc.recipients[0]
                raise _refused(first.code, f"recipient refused: {first.message}") from exc
            except (aiosmtplib.SMTPRecipientRefused, aiosmtplib.SMTPDataError) as exc:
                raise _refused(exc.code, exc.message) from exc
            except aiosmtplib.SMTPResponseException as exc:  # greeting, login, sender, …
                raise MailUnavailable(f"{exc.code} {exc.message}") from exc
            except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
                raise MailUnavailable(f"{type(exc).__name__}: {exc}") from exc
            finally:
                self._used_at = time.monotonic()

    async def _send(self, message: EmailMessage) -> None:
        client = self._client
        if client is not None and (
            not client.is_connected or time.monotonic() - self._used_at > _MAX_IDLE_SECONDS
        ):
            self._drop()
            client = None
        reused = client is not None
        try:
            if client is None:
                client = self._client = await self._connect()
            await client.send_message(message)
        except aiosmtplib.SMTPServerDisconnected:
            self._drop()
            if not reused:
                raise
            # The server closed the kept connection while it was idle: once more, fresh.
            client = self._client = await self._connect()
            try:
                await client.send_message(message)
            except BaseException:
                self._drop()
                raise
        except BaseException:
            # Whatever state the session is in, the next mail starts a new one.
            self._drop()
            raise

    async def _connect(self) -> aiosmtplib.SMTP:
        config = self._config
        client = aiosmtplib.SMTP(
            hostname=config.hostname,
            port=config.port,
            username=config.username,
            password=config.password,
            use_tls=config.use_tls,
            start_tls=config.start_tls,
            timeout=config.timeout,
        )
        await client.connect()
        return client

    def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None and client.is_connected:
            client.close()

    async def close(self) -> None:
        async with self._lock:
            client, self._client = self._client, None
            if client is not None and client.is_connected:
                try:  # a polite QUIT, but shutdown does not wait on a slow server
                    async with asyncio.timeout(min(self._config.timeout, 2.0)):
                        await client.quit()
                except (aiosmtplib.SMTPException, OSError, TimeoutError):
                    client.close()
