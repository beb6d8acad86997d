"""The outbox relay with a real SMTP server (aiosmtpd), on SQLite and PostgreSQL: one
mail per event, retries with backoff, dead letters, and nothing lost when a relay dies
in the middle of a batch (cancelled in-process, or a ``rushgate worker`` SIGKILLed)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from rushgate.adapters.mail.smtp import SmtpMailer, message_id
from rushgate.adapters.sql.engine import SqlStorage
from rushgate.adapters.sql.tables import outbox
from rushgate.domain.clock import FixedClock
from rushgate.services.enrollment import EnrollmentService
from rushgate.services.notifications import Notifier
from rushgate.services.ports.outbox import OutboxMessage, OutboxStats
from rushgate.workers.outbox_relay import OutboxRelay
from tests.mailserver import MailServer, mail_server
from tests.serverproc import ServerConfig
from tests.support import (
    closed_port,
    new_section,
    new_student,
    new_term,
    redis_reachable,
    require_service,
    seed,
)

SENDER = "rushgate <no-reply@rushgate.test>"
TERM = new_term()
LEASE = 60.0


@pytest.fixture
def server() -> Iterator[MailServer]:
    with mail_server() as running:
        yield running


@pytest.fixture
async def students(storage: SqlStorage) -> dict[str, int]:
    """Student pks of s1 and s2, on a term with one seat and a waitlist in CS101-01."""
    return await seed(
        storage,
        term=TERM,
        sections=[new_section("CS101-01", capacity=1, waitlist_capacity=1)],
        students=[new_student("s1"), new_student("s2", email="s2@example.test")],
    )


def relay(storage: SqlStorage, clock: FixedClock, smtp_url: str, **options: Any) -> OutboxRelay:
    return OutboxRelay(
        storage.outbox_relay(),
        storage.contacts(),
        Notifier(),
        SmtpMailer.from_url(smtp_url, SENDER),
        clock,
        **{"lease_seconds": LEASE, **options},
    )


async def rows(storage: SqlStorage) -> list[Any]:
    async with storage.primary_reads.connect() as conn:
        result = await conn.execute(
            select(
                outbox.c.kind,
                outbox.c.dedupe_key,
                outbox.c.state,
                outbox.c.attempts,
                outbox.c.available_at,
                outbox.c.last_error,
            ).order_by(outbox.c.id)
        )
        return list(result)


async def user_pk(storage: SqlStorage, username: str) -> int:
    account = await storage.reads(fresh=True).account(username)
    assert account is not None
    return account.user_pk


async def write(storage: SqlStorage, *messages: OutboxMessage) -> None:
    async with storage.unit_of_work() as uow:
        for m in messages:
            await uow.outbox.add(m)
        await uow.commit()


def course_message(key: str, user: int, kind: str = "enrollment.enrolled") -> OutboxMessage:
    payload = {"term": TERM.code, "section_id": "CS101-01", "title": "자료구조"}
    return OutboxMessage(kind, key, user, payload)


async def test_every_enrollment_event_is_mailed_once(
    storage: SqlStorage, clock: FixedClock, students: dict[str, int], server: MailServer
) -> None:
    service = EnrollmentService(storage, clock)
    for student in ("s1", "s2"):
        await service.enroll(
            student_pk=students[student], term_code=TERM.code, section_id="CS101-01"
        )
    await service.drop(student_pk=students["s1"], term_code=TERM.code, section_id="CS101-01")
    worker = relay(storage, clock, server.url)
    assert await worker.run_once() == 4
    assert await worker.run_once() == 0
    await worker.close()

    events = await rows(storage)
    assert [(r.kind, r.state, r.attempts) for r in events] == [
        ("enrollment.enrolled", "delivered", 1),
        ("enrollment.waitlisted", "delivered", 1),
        ("enrollment.dropped", "delivered", 1),
        ("enrollment.promoted", "delivered", 1),
    ]
    title = "[수강신청] Title of CS101-01 (CS101-01)"
    assert [(m["To"], m["Subject"]) for m in server.received] == [
        ("s1@example.test", f"{title} 신청 완료"),
        ("s2@example.test", f"{title} 대기 등록"),
        ("s1@example.test", f"{title} 취소 완료"),
        ("s2@example.test", f"{title} 대기에서 수강 확정"),
    ]
    keys = [r.dedupe_key for r in events]
    assert [m["X-Rushgate-Dedupe"] for m in server.received] == keys
    assert [m["Message-ID"] for m in server.received] == [message_id(k) for k in keys]
    assert all(m["From"] == SENDER for m in server.received)
    assert await storage.outbox_relay().stats(now=clock.now()) == OutboxStats(0, 0, None)


@pytest.mark.parametrize("outage", ["451 reply", "connection refused"])
async def test_an_unavailable_server_means_retries_with_backoff_then_a_dead_letter(
    storage: SqlStorage,
    clock: FixedClock,
    students: dict[str, int],
    server: MailServer,
    outage: str,
) -> None:
    if outage == "451 reply":
        server.rcpt_reply = "451 4.3.0 mailbox busy, try again later"
        url = server.url
    else:
        url = f"smtp://127.0.0.1:{closed_port()}?timeout=2"
    await write(storage, course_message("k1", await user_pk(storage, "s1")))
    worker = relay(storage, clock, url, max_attempts=3)
    waits = []
    for attempt in (1, 2):
        tried_at = clock.now()
        assert await worker.run_once() == 1
        [row] = await rows(storage)
        assert (row.state, row.attempts) == ("pending", attempt)
        assert ("451" if outage == "451 reply" else "MailUnavailable") in row.last_error
        wait = (row.available_at - tried_at).total_seconds()
        full = 5.0 * 2 ** (attempt - 1)  # 5 s, then 10 s: half of it fixed, half jitter
        assert full / 2 <= wait <= full
        waits.append(wait)
        assert await worker.run_once() == 0, "not before the backoff is over"
        clock.set(row.available_at)
    assert waits[1] > waits[0]
    assert await worker.run_once() == 1
    [row] = await rows(storage)
    assert (row.state, row.attempts) == ("dead", 3)
    assert row.last_error.startswith("gave up after 3 attempts")
    server.rcpt_reply = None
    clock.set(clock.now() + timedelta(days=1))
    assert await worker.run_once() == 0, "dead stays dead"
    await worker.close()
    assert server.received == []
    assert await storage.outbox_relay().stats(now=clock.now()) == OutboxStats(0, 1, None)


async def test_the_server_coming_back_delivers_what_waited(
    storage: SqlStorage, clock: FixedClock, students: dict[str, int], server: MailServer
) -> None:
    server.rcpt_reply = "421 4.3.2 shutting down"
    await write(storage, course_message("k1", await user_pk(storage, "s1")))
    worker = relay(storage, clock, server.url)
    await worker.run_once()
    server.rcpt_reply = None
    clock.set(clock.now() + timedelta(seconds=5))
    assert await worker.run_once() == 1
    await worker.close()
    assert [(r.state, r.attempts) for r in await rows(storage)] == [("delivered", 2)]
    assert server.message_ids() == ["<k1@rushgate>"]


async def test_a_permanent_refusal_is_a_dead_letter_at_once(
    storage: SqlStorage, clock: FixedClock, students: dict[str, int], server: MailServer
) -> None:
    server.rcpt_reply = "550 5.1.1 no such user"
    await write(storage, course_message("k1", await user_pk(storage, "s1")))
    worker = relay(storage, clock, server.url)
    assert await worker.run_once() == 1
    [row] = await rows(storage)
    assert (row.state, row.attempts) == ("dead", 1)
    assert "550" in row.last_error
    clock.set(clock.now() + timedelta(hours=2))
    assert await worker.run_once() == 0
    await worker.close()


async def test_messages_that_cannot_be_mails(
    storage: SqlStorage, clock: FixedClock, students: dict[str, int], server: MailServer
) -> None:
    """An unknown kind is a dead letter at once; a user without an address (an admin whose
    login is not one) is dropped as delivered. The others still go out."""
    async with storage.unit_of_work() as uow:
        await uow.registry.add_admin("admin", "x")
        await uow.commit()
    s1 = await user_pk(storage, "s1")
    await write(
        storage,
        course_message("k1", s1, kind="enrollment.teleported"),
        course_message("k2", await user_pk(storage, "admin")),
        course_message("k3", s1),
    )
    worker = relay(storage, clock, server.url)
    assert await worker.run_once() == 3
    await worker.close()
    assert [(r.dedupe_key, r.state) for r in await rows(storage)] == [
        ("k1", "dead"),
        ("k2", "delivered"),
        ("k3", "delivered"),
    ]
    assert "enrollment.teleported" in (await rows(storage))[0].last_error
    assert server.message_ids() == ["<k3@rushgate>"]


def assert_each_mailed_at_least_once(server: MailServer, keys: list[str]) -> Counter[str]:
    """Every key has a mail; every copy of one is the same mail (same Message-ID)."""
    by_key = Counter(str(m["X-Rushgate-Dedupe"]) for m in server.received)
    assert set(by_key) == set(keys)
    for m in server.received:
        assert m["Message-ID"] == message_id(str(m["X-Rushgate-Dedupe"]))
    return by_key


async def held(server: MailServer, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not server.held.is_set():
        assert time.monotonic() < deadline, "the mail server never saw the mail to hold"
        await asyncio.sleep(0.01)


async def test_a_relay_cancelled_between_send_and_record_loses_nothing(
    storage: SqlStorage, clock: FixedClock, students: dict[str, int], server: MailServer
) -> None:
    s1 = await user_pk(storage, "s1")
    keys = [f"k{n}" for n in range(6)]
    await write(storage, *(course_message(k, s1) for k in keys))
    server.hold_at = 3  # k2 is received, but its 250 is held back
    first = relay(storage, clock, server.url)
    task = asyncio.create_task(first.run_once())
    await held(server, 10)
    task.cancel()  # the node shuts down (or crashes) before the delivery is recorded
    with pytest.raises(asyncio.CancelledError):
        await task
    server.release.set()

    # What it sent was recorded; the three never tried were given back at once.
    assert [r.state for r in await rows(storage)] == ["delivered"] * 2 + ["pending"] * 4
    second = relay(storage, clock, server.url)
    assert await second.run_once() == 3
    assert await second.run_once() == 0, "the mail in flight waits for its lease to end"
    clock.set(clock.now() + timedelta(seconds=LEASE))
    assert await second.run_once() == 1
    await second.close()
    assert [(r.state, r.attempts) for r in await rows(storage)] == [
        ("delivered", 1),
        ("delivered", 1),
        ("delivered", 2),
        *[("delivered", 1)] * 3,
    ]
    assert assert_each_mailed_at_least_once(server, keys) == Counter(
        {"k0": 1, "k1": 1, "k2": 2, "k3": 1, "k4": 1, "k5": 1}
    )


@pytest.mark.redis
async def test_a_killed_worker_loses_nothing(
    storage: SqlStorage,
    clock: FixedClock,
    students: dict[str, int],
    server: MailServer,
    database_url: str,
    tmp_path: Path,
) -> None:
    """A real ``rushgate worker`` is SIGKILLed while a mail is on the wire: once its lease
    is over a new relay delivers everything it had claimed; what the dead one sent but
    had not recorded goes out again, as the same mails."""
    reason = await redis_reachable()
    if reason is not None:
        require_service("Redis", reason)
    clock.set(datetime.now(UTC))  # the worker runs on the real clock
    s1 = await user_pk(storage, "s1")
    keys = [f"k{n}" for n in range(6)]
    await write(storage, *(course_message(k, s1) for k in keys))
    server.hold_at = 4  # k0..k2 went out, k3 is on the wire
    config = ServerConfig(
        log_dir=tmp_path, database_url=database_url, extra_env={"RUSHGATE_SMTP_URL": server.url}
    )
    log = (tmp_path / "worker.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "rushgate.cli", "worker"],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=config.environ(tmp_path / "data"),
        cwd=tmp_path,
        start_new_session=True,
    )
    try:
        await held(server, 60)
        os.killpg(proc.pid, signal.SIGKILL)
        await asyncio.to_thread(proc.wait, 10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        log.close()
    server.release.set()
    # Killed before it recorded anything: all six are still pending, leased to it.
    assert [r.state for r in await rows(storage)] == ["pending"] * 6
    assert len(server.received) == 4

    # Everything the dead worker claimed is leased to it until its lease is over.
    successor = relay(storage, clock, server.url)
    assert await successor.run_once() == 0
    clock.set(datetime.now(UTC) + timedelta(seconds=LEASE + 1))
    assert await successor.run_once() == 6
    await successor.close()
    assert [r.state for r in await rows(storage)] == ["delivered"] * 6
    # Sent again, as the same mails: at least once, never a different Message-ID.
    assert assert_each_mailed_at_least_once(server, keys) == Counter(
        {"k0": 2, "k1": 2, "k2": 2, "k3": 2, "k4": 1, "k5": 1}
    )


async def test_the_running_relay_deletes_delivered_mail_once_past_the_retention(
    storage: SqlStorage, clock: FixedClock, server: MailServer, students: dict[str, int]
) -> None:
    s1 = await user_pk(storage, "s1")
    await write(storage, course_message("sent-long-ago", s1))
    worker = relay(
        storage, clock, server.url, retention=timedelta(days=14), purge_every_seconds=0.05
    )
    await worker.run_once()
    await write(storage, course_message("sent-today", s1))
    clock.set(clock.now() + timedelta(days=15))
    await worker.run_once()
    assert [r.dedupe_key for r in await rows(storage)] == ["sent-long-ago", "sent-today"]

    running = asyncio.create_task(worker.run())
    try:
        for _ in range(100):
            if len(await rows(storage)) == 1:
                break
            await asyncio.sleep(0.05)
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
        await worker.close()
    [left] = await rows(storage)
    assert (left.dedupe_key, left.state) == ("sent-today", "delivered")
    assert len(server.received) == 2  # deleting never sends again
