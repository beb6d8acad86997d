"""The mailers against a real SMTP server (aiosmtpd): what a mail looks like on the wire,
and which answers reject it for good and which only for now."""

from __future__ import annotations

import io

import pytest

from rushgate.adapters.mail.console import ConsoleMailer
from rushgate.adapters.mail.smtp import SmtpConfig, SmtpMailer, message_id
from rushgate.services.ports.mail import Mail, MailRejected, MailUnavailable
from tests.mailserver import mail_server
from tests.support import closed_port

SENDER = "rushgate <no-reply@rushgate.test>"


def mail(key: str = "enrollment.enrolled.1", to: str = "minjun@example.test") -> Mail:
    return Mail(
        to=to,
        subject="[수강신청] 자료구조 (CS101-01) 신청 완료",
        text="김민준 님,\n\n수강신청이 완료되었습니다.",
        dedupe_key=key,
    )


async def test_a_mail_on_the_wire() -> None:
    with mail_server() as server:
        mailer = SmtpMailer.from_url(server.url, SENDER)
        await mailer.send(mail("application:7:v2:application.submitted"))
        await mailer.close()
    [got] = server.received
    assert got["From"] == SENDER
    assert got["To"] == "minjun@example.test"
    assert got["Subject"] == "[수강신청] 자료구조 (CS101-01) 신청 완료"
    assert got["Message-ID"] == "<application=3A7=3Av2=3Aapplication.submitted@rushgate>"
    assert got["X-Rushgate-Dedupe"] == "application:7:v2:application.submitted"
    assert got["Date"] is not None
    assert got.get_content().startswith("김민준 님,\n\n수강신청이 완료되었습니다.")


def test_message_ids_are_valid_and_distinct() -> None:
    assert message_id("enrollment.enrolled.ab12") == "<enrollment.enrolled.ab12@rushgate>"
    assert message_id("a:b") == "<a=3Ab@rushgate>"
    assert message_id("a=3Ab") == "<a=3D3Ab@rushgate>", "an escape is escaped itself"
    assert message_id(".a..b.") == "<=2Ea.=2Eb=2E@rushgate>"
    assert message_id("키") == "<=ED=82=A4@rushgate>"


async def test_one_connection_serves_many_mails_and_survives_the_server_closing_it() -> None:
    with mail_server() as server:
        mailer = SmtpMailer.from_url(server.url, SENDER)
        for n in range(3):
            await mailer.send(mail(f"k{n}"))
        assert server.sessions == 1
    # The server went away and came back on the same port: the kept connection is dead.
    with mail_server(port=server.port) as again:
        await mailer.send(mail("k3"))
        await mailer.close()
    assert again.message_ids() == ["<k3@rushgate>"]


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"rcpt_reply": "550 5.1.1 no such user"}, MailRejected),
        ({"rcpt_reply": "451 4.3.0 try again later"}, MailUnavailable),
        ({"data_reply": "554 5.7.1 message refused"}, MailRejected),
        ({"data_reply": "452 4.3.1 out of storage"}, MailUnavailable),
    ],
)
async def test_permanent_and_transient_refusals(
    options: dict[str, str], error: type[Exception]
) -> None:
    with mail_server(**options) as server:
        mailer = SmtpMailer.from_url(server.url, SENDER)
        with pytest.raises(error):
            await mailer.send(mail())
        # The session is not left half-done: the next mail goes through a fresh one.
        server.rcpt_reply, server.data_reply = None, "250 OK"
        await mailer.send(mail("k2"))
        await mailer.close()
    assert server.message_ids()[-1] == "<k2@rushgate>"


async def test_an_unreachable_server_is_unavailable() -> None:
    mailer = SmtpMailer.from_url(f"smtp://127.0.0.1:{closed_port()}?timeout=2", SENDER)
    with pytest.raises(MailUnavailable):
        await mailer.send(mail())


async def test_login_from_the_url() -> None:
    with mail_server(login=("relay", "p@ss word")) as server:
        good = SmtpMailer.from_url(
            f"smtp://relay:p%40ss%20word@127.0.0.1:{server.port}?starttls=0", SENDER
        )
        await good.send(mail())
        await good.close()
        # A wrong password is the deployment's problem, not the mail's: retried later.
        bad = SmtpMailer.from_url(f"smtp://relay:nope@127.0.0.1:{server.port}", SENDER)
        with pytest.raises(MailUnavailable):
            await bad.send(mail("k2"))
    assert server.message_ids() == ["<enrollment.enrolled.1@rushgate>"]


async def test_starttls_required_but_not_offered_is_unavailable() -> None:
    with mail_server() as server:
        mailer = SmtpMailer.from_url(f"smtp://127.0.0.1:{server.port}?starttls=1", SENDER)
        with pytest.raises(MailUnavailable):
            await mailer.send(mail())
    assert server.received == []


def test_smtp_urls() -> None:
    assert SmtpConfig.from_url("smtp://u:p%2F@mail.example.test:587?starttls=1") == SmtpConfig(
        "mail.example.test", 587, "u", "p/", use_tls=False, start_tls=True, timeout=30.0
    )
    assert SmtpConfig.from_url("smtps://mail.example.test?timeout=5") == SmtpConfig(
        "mail.example.test", None, None, None, use_tls=True, start_tls=False, timeout=5.0
    )
    plain = SmtpConfig.from_url("smtp://127.0.0.1:25")
    assert (plain.start_tls, plain.use_tls) == (None, False), "STARTTLS when offered"
    for bad in ("http://mail.example.test", "smtp://", "smtps://h?starttls=1"):
        with pytest.raises(ValueError, match=r"SMTP URL|smtps"):
            SmtpConfig.from_url(bad)


async def test_the_console_mailer_prints_the_whole_mail() -> None:
    out = io.StringIO()
    await ConsoleMailer(out).send(mail("a:b"))
    printed = out.getvalue()
    for part in ("To: minjun@example.test", "Subject: [수강신청]", "Message-ID: <a=3Ab@rushgate>"):
        assert part in printed
    assert "수강신청이 완료되었습니다." in printed
