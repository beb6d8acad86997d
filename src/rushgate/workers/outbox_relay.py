"""The outbox relay: delivers outbox messages as mail, at least once.

Every process runs one (each ``rushgate serve`` worker and ``rushgate worker``), with no
cluster lock: a claim leases its messages (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, the
one writer on SQLite), so two relays never hold the same message at once and more relays
just drain a burst faster. A relay that dies mid-batch leaves its messages leased; once
the lease ends the next claim takes them again. A mail that was sent but whose delivery
was not recorded (the one on the wire, and at most nine before it: deliveries are
recorded ten at a time, one statement each) is sent again, as the same mail: same
``Message-ID``, same ``X-Rushgate-Dedupe``. A relay that is cancelled (shutdown) records
what it sent and gives back what it did not try.

What becomes of a message:

- sent: delivered;
- the server refused it for good (``MailRejected``), or it cannot become a mail (no
  template, a payload that lacks a field): dead at once;
- the server could not be reached or deferred it (``MailUnavailable``), a send timed out,
  or anything unexpected: tried again after a backoff (5 s, doubling, jittered, at most
  1 h) until ``max_attempts``, then dead;
- its user has no mail address (an admin whose login is not one): recorded as delivered
  and dropped, with a log line. Nothing can ever deliver it, and a dead letter would ask
  an operator to act where there is nothing to do.

Dead messages stay in the table with their last error; ``OutboxRelayStore.stats`` counts
them (see the operations runbook). Delivered messages are deleted once they are older than
the retention (``RUSHGATE_OUTBOX_RETENTION_DAYS``), a bounded batch at a time, so the table
stays the size of a few weeks' mail. Their ``dedupe_key`` goes with them: the retention must
be longer than anything could write the same event again (an ``Idempotency-Key`` retry
returns the stored result and writes nothing)."""

from __future__ import annotations

import asyncio
import collections
import logging
import random
import time
from datetime import timedelta

from rushgate.domain.clock import Clock
from rushgate.services.notifications import NotificationError, Notifier
from rushgate.services.ports.mail import (
    Contact,
    Contacts,
    Mailer,
    MailRejected,
    MailUnavailable,
)
from rushgate.services.ports.outbox import ClaimedMessage, OutboxRelayStore

log = logging.getLogger("rushgate.outbox")

# After a failed claim (the database is down): wait longer than when merely idle.
_FAILED_CLAIM_PAUSE_SECONDS = 2.0
# Deliveries are recorded this many at a time (one statement), and whatever is left when a
# batch ends or is cancelled: a relay killed outright sends at most these again.
_RECORD_EVERY = 10
# Delivered messages deleted per statement, and statements per purge: short transactions,
# and a backlog of old rows is worked off over several purges rather than in one.
_PURGE_BATCH = 1000
_PURGE_BATCHES = 20


class OutboxRelay:
    def __init__(
        self,
        store: OutboxRelayStore,
        contacts: Contacts,
        notifier: Notifier,
        mailer: Mailer,
        clock: Clock,
        *,
        batch: int = 50,
        lease_seconds: float = 60.0,
        max_attempts: int = 8,
        backoff_base_seconds: float = 5.0,
        backoff_cap_seconds: float = 3600.0,
        idle_seconds: float = 0.5,
        retention: timedelta | None = None,
        purge_every_seconds: float = 600.0,
        rng: random.Random | None = None,
    ) -> None:
        """``retention``: delivered messages older than this are deleted every
        ``purge_every_seconds``; None keeps them."""
        self._store = store
        self._contacts = contacts
        self._notifier = notifier
        self._mailer = mailer
        self._clock = clock
        self._batch = batch
        self._lease = lease_seconds
        self._max_attempts = max_attempts
        self._backoff_base = backoff_base_seconds
        self._backoff_cap = backoff_cap_seconds
        self._idle = idle_seconds
        self._retention = retention
        self._purge_every = purge_every_seconds
        self._next_purge = time.monotonic()
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not secrets  # nosec B311
        # One send may take this long; the batch stops while the lease still covers one.
        self._send_timeout = lease_seconds / 4
        self._mail_down = False

    def backoff(self, attempts: int) -> float:
        """Seconds before the attempt after ``attempts`` failed ones: the base doubled per
        attempt, capped; its second half is random, so messages that failed together
        (an outage) are not all retried in the same second."""
        doublings = min(max(attempts - 1, 0), 40)  # past the cap long before
        full = min(self._backoff_cap, self._backoff_base * 2.0**doublings)
        return full / 2 + self._rng.uniform(0, full / 2)

    async def run_once(self) -> int:
        """Claim one batch and try each message once; how many were claimed."""
        claimed = await self._store.claim(
            limit=self._batch, lease_seconds=self._lease, now=self._clock.now()
        )
        started = time.monotonic()
        untried = collections.deque(claimed)
        done: list[int] = []
        try:
            contacts = await self._contacts.contacts({c.message.user_pk for c in claimed})
            while untried:
                # Past the lease another relay may claim the rest too: give them back.
                if time.monotonic() - started + self._send_timeout > self._lease * 0.9:
                    break
                item = untried.popleft()
                if await self._deliver(item, contacts.get(item.message.user_pk)):
                    done.append(item.id)
                if len(done) >= _RECORD_EVERY:
                    await self._store.delivered(done, now=self._clock.now())
                    done = []
        finally:
            # Also when cancelled (shutdown): what was sent is recorded, what was not tried
            # is given back, so other relays need not wait out the lease. The message
            # being sent at that moment is neither: whether it left is unknown.
            await self._settle(done, list(untried))
        return len(claimed)

    async def purge(self) -> int:
        """Delete delivered messages past the retention, at most a bounded number of
        batches; how many were deleted."""
        if self._retention is None:
            return 0
        before = self._clock.now() - self._retention
        deleted = 0
        for _ in range(_PURGE_BATCHES):
            batch = await self._store.purge_delivered(before=before, limit=_PURGE_BATCH)
            deleted += batch
            if batch < _PURGE_BATCH:
                break
        if deleted:
            log.info("deleted delivered outbox messages", extra={"count": deleted})
        return deleted

    async def run(self) -> None:
        """Deliver until cancelled: a background task of every process. An error never
        ends it; it is logged once per outage."""
        failing: str | None = None
        while True:
            pause = self._idle
            try:
                if time.monotonic() >= self._next_purge:
                    self._next_purge = time.monotonic() + self._purge_every
                    await self.purge()
                claimed = await self.run_once()
                if failing is not None:
                    log.warning("the outbox relay works again")
                failing = None
                if claimed == self._batch:
                    pause = 0.0  # more may be due right now
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if failing != type(exc).__name__:
                    log.exception("the outbox relay failed; it keeps trying")
                failing = type(exc).__name__
                pause = _FAILED_CLAIM_PAUSE_SECONDS
            await asyncio.sleep(pause)

    async def close(self) -> None:
        await self._mailer.close()

    async def _deliver(self, item: ClaimedMessage, contact: Contact | None) -> bool:
        """Try one message; True when it is to be recorded as delivered (the failures
        are recorded here)."""
        message = item.message
        if item.attempts > self._max_attempts:
            # Claimed this often without an outcome: relays died or hung sending it.
            await self._dead(item, f"no outcome after {item.attempts - 1} attempts")
            return False
        if contact is None:
            log.info(
                "outbox message %d (%s) dropped: user %d has no mail address",
                item.id,
                message.kind,
                message.user_pk,
            )
            return True
        try:
            mail = self._notifier.compose(message, contact)
        except NotificationError as exc:
            await self._dead(item, str(exc))
            return False
        try:
            async with asyncio.timeout(self._send_timeout):
                await self._mailer.send(mail)
        except MailRejected as exc:
            await self._dead(item, f"rejected: {exc}")
            return False
        except Exception as exc:  # unavailable, timed out, or a bug: retried either way
            await self._retry_or_dead(item, exc)
            return False
        if self._mail_down:
            log.warning("mail is delivered again")
            self._mail_down = False
        return True

    async def _retry_or_dead(self, item: ClaimedMessage, exc: Exception) -> None:
        error = f"{type(exc).__name__}: {exc}"
        if not isinstance(exc, MailUnavailable | TimeoutError):
            log.error("sending outbox message %d failed unexpectedly", item.id, exc_info=exc)
        if item.attempts >= self._max_attempts:
            await self._dead(item, f"gave up after {item.attempts} attempts: {error}")
            return
        now = self._clock.now()
        retry_at = now + timedelta(seconds=self.backoff(item.attempts))
        await self._store.failed(item.id, error=error, retry_at=retry_at, now=now)
        if not self._mail_down:  # once per outage, not once per message
            log.warning("mail cannot be sent now (%s); retrying with backoff", error)
            self._mail_down = True

    async def _dead(self, item: ClaimedMessage, error: str) -> None:
        # The reason and the key go as fields: the message (what a chat notice repeats)
        # names no person.
        log.error(
            "outbox message %d (%s) is dead",
            item.id,
            item.message.kind,
            extra={"notify": True, "reason": error, "dedupe_key": item.message.dedupe_key},
        )
        await self._store.failed(item.id, error=error, retry_at=None, now=self._clock.now())

    async def _settle(self, done: list[int], untried: list[ClaimedMessage]) -> None:
        try:
            await self._store.delivered(done, now=self._clock.now())
        except Exception:
            log.warning(
                "could not record %d delivered outbox messages; they will be sent again",
                len(done),
                exc_info=True,
            )
        try:
            await self._store.release(untried, now=self._clock.now())
        except Exception:
            log.warning(
                "could not give back %d claimed outbox messages; they are due again when "
                "their lease ends",
                len(untried),
                exc_info=True,
            )
