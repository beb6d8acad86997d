"""Chat notifications: unhandled errors and critical events posted to Discord or Slack
through their incoming webhooks.

Policy, so that a chat channel stays readable during an incident and learns nothing it
should not:

* **Never in the caller's way.** :meth:`ChatNotifier.notify` only puts the message on a
  bounded queue (:data:`QUEUE_SIZE`); one daemon thread with its own ``httpx.Client``
  posts it. A slow, failing or rate-limiting webhook delays nothing but that thread, and
  its failures are logged at WARNING on this module's logger, which
  :class:`ChatLogHandler` ignores (as it ignores everything the delivery thread logs), so
  a broken webhook never produces a chat message about itself.
* **Deduplicated.** One fingerprint (an exception's type and place, or an event's logger
  and template) is posted at most once per ``dedupe_seconds`` (10 min); the next post for
  it says how many more there were.
* **Rate-limited.** At most ``max_per_minute`` posts in any rolling minute over all
  fingerprints; what that holds back (and what a full queue drops) is counted and told in
  the next post that goes out.
* **No personal data.** For an exception the message names its type, the innermost frame
  of rushgate's own code (``module:function:line``), the logger, service, node and the
  request's id, route template and method — never the exception's text or the log
  message's arguments, which may hold an email address or a name. Events logged with
  ``extra={"notify": True}`` are written by the project itself and go out as formatted.
* **Nobody pinged.** Values we do not control are put in code spans; Discord is told to
  parse no mentions and ``@everyone``/``@here`` are defused besides; Slack's control
  characters (``& < >``) are escaped, so ``<!channel>`` stays text.
* **The URL is the password.** It is not in :class:`Webhook`'s repr, not in our log
  lines, and httpx's own request log line has it replaced.

Fork-safety: the delivery thread belongs to the process that made the notifier; make one
in each worker process (after the fork) and :meth:`~ChatNotifier.close` it at exit.
"""

from __future__ import annotations

import contextlib
import email.utils
import logging
import queue
import re
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Final, Literal

import httpx

WebhookKind = Literal["discord", "slack"]

#: Messages waiting for the delivery thread; more are dropped (and counted as held back).
QUEUE_SIZE: Final = 100
#: Longest wait a 429's ``Retry-After`` gets before the one retry; a longer one drops.
MAX_RETRY_AFTER: Final = 30.0
#: Longest message text each service accepts (Discord: content; Slack: text).
DISCORD_LIMIT: Final = 2000
SLACK_LIMIT: Final = 3000

_RATE_WINDOW: Final = 60.0
# Past this many fingerprints, those outside the dedupe window are forgotten. Entries are
# made only for messages sent, so the rate limit keeps the live ones few.
_MAX_FINGERPRINTS: Final = 1000
# Values put in code spans (routes, logger names) are cut to this many characters.
_MAX_VALUE: Final = 200
# The root package: frames of its modules are "the project's own code".
_PROJECT: Final = __name__.split(".", 1)[0]
# Record attributes (or context variables) that locate a request; none is personal data.
_REQUEST_FIELDS: Final = ("request_id", "route", "method")

# Delivery problems go here. ChatLogHandler ignores this logger: no feedback loop.
_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Webhook:
    """One incoming webhook of a chat service."""

    kind: WebhookKind
    # Whoever has the URL can post to the channel: a secret, kept out of repr and logs.
    url: str = field(repr=False)

    def __post_init__(self) -> None:
        if self.kind not in ("discord", "slack"):
            raise ValueError(f"unknown chat webhook kind {self.kind!r}")
        if not self.url.startswith(("https://", "http://")):
            # The message must not quote the URL: it is the secret.
            raise ValueError(f"the {self.kind} webhook URL is not an http(s) URL")


@dataclass(frozen=True, slots=True)
class _Message:
    title: str
    notes: tuple[str, ...]
    lines: tuple[str, ...]


@dataclass(slots=True)
class _Seen:
    sent_at: float
    repeats: int = 0


class ChatNotifier:
    """Posts short messages to chat webhooks from a background thread, deduplicated per
    fingerprint and rate-limited overall (see the module's docstring)."""

    def __init__(
        self,
        webhooks: Sequence[Webhook],
        *,
        service: str,
        node: str,
        max_per_minute: int = 6,
        dedupe_seconds: float = 600.0,
        timeout_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not webhooks:
            raise ValueError("a chat notifier needs at least one webhook")
        if max_per_minute < 1:
            raise ValueError("max_per_minute must be at least 1")
        if dedupe_seconds < 0 or timeout_seconds <= 0:
            raise ValueError("dedupe_seconds must be >= 0 and timeout_seconds > 0")
        self._webhooks = tuple(webhooks)
        self._service = service
        self._node = node
        self._max_per_minute = max_per_minute
        self._dedupe_seconds = dedupe_seconds
        self._timeout = timeout_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._sent: deque[float] = deque()  # when each post of the rolling minute was queued
        self._seen: dict[str, _Seen] = {}
        self._held_back = 0
        self._closed = False
        self._deadline: float | None = None  # time.monotonic() by which close() must be done
        self._abandon = threading.Event()  # close() ran out of time: drop the rest, stop waiting
        # None asks the delivery thread to stop once what is before it is sent.
        self._queue: queue.Queue[_Message | None] = queue.Queue(QUEUE_SIZE)
        self._hide_urls = _HideWebhookUrls(self._webhooks, self._delivers_on)
        logging.getLogger("httpx").addFilter(self._hide_urls)
        self._thread = threading.Thread(target=self._run, name="rushgate-chat", daemon=True)
        self._thread.start()

    def notify(self, fingerprint: str, title: str, lines: Sequence[str] = ()) -> bool:
        """Queue a message: ``True`` when queued, ``False`` when suppressed (a repeat within
        the dedupe window, over the rate limit, queue full, closed). Never blocks on the
        network and never raises: it runs inside logging calls, in any thread.

        ``title`` and ``lines`` are Markdown the caller writes; mentions in them are
        defused, but values from users belong in code spans all the same."""
        try:
            if isinstance(lines, str):
                lines = (lines,)
            return self._offer(fingerprint, title, tuple(lines), self._clock())
        except Exception:
            # A bug here must not become the caller's error (nor recurse: this logger is
            # ignored by ChatLogHandler).
            _log.warning("chat notifier: could not queue a message", exc_info=True)
            return False

    def close(self, timeout: float = 5.0) -> None:
        """Send what is queued, then stop the delivery thread; give up after ``timeout``
        seconds (a hanging webhook), dropping what is left."""
        deadline = time.monotonic() + max(timeout, 0.0)
        with self._lock:
            first = not self._closed
            self._closed = True
            if self._deadline is None or deadline < self._deadline:
                self._deadline = deadline
        if not first and self._abandon.is_set():
            return  # an earlier close() already gave up on a stuck request
        marker = 0
        if first:
            try:
                self._queue.put(None, timeout=max(deadline - time.monotonic(), 0.0))
                marker = 1
            except queue.Full:
                self._abandon.set()
        self._thread.join(max(deadline - time.monotonic(), 0.0))
        if self._thread.is_alive():
            # Stuck in a request: it drops the rest when that ends (the thread is a daemon;
            # it also removes the httpx filter itself, which must outlive its last request).
            self._abandon.set()
            _log.warning(
                "chat notifier: stopped before delivering %d queued message(s)",
                max(self._queue.qsize() - marker, 0),
            )

    # --- the caller's side ------------------------------------------------------------

    def _offer(self, fingerprint: str, title: str, lines: tuple[str, ...], now: float) -> bool:
        with self._lock:
            if self._closed:
                return False
            seen = self._seen.get(fingerprint)
            if seen is not None and now - seen.sent_at < self._dedupe_seconds:
                seen.repeats += 1
                return False
            while self._sent and now - self._sent[0] >= _RATE_WINDOW:
                self._sent.popleft()
            if len(self._sent) >= self._max_per_minute:
                self._held_back += 1
                return False
            notes: list[str] = []
            if seen is not None and seen.repeats:
                notes.append(
                    f"({seen.repeats} more like this in the last {_duration(now - seen.sent_at)})"
                )
            if self._held_back:
                n = self._held_back
                were = "message was" if n == 1 else "messages were"
                notes.append(f"{n} other {were} held back (rate limit)")
            try:
                self._queue.put_nowait(_Message(title, tuple(notes), lines))
            except queue.Full:
                self._held_back += 1
                return False
            self._sent.append(now)
            self._seen[fingerprint] = _Seen(now)
            self._held_back = 0
            if len(self._seen) > _MAX_FINGERPRINTS:
                self._forget(now)
            return True

    def _forget(self, now: float) -> None:
        for key, entry in list(self._seen.items()):
            if now - entry.sent_at >= self._dedupe_seconds:
                del self._seen[key]
                # Their repeats will never be told "more like this": tell them as held back.
                self._held_back += entry.repeats

    # --- the delivery thread ----------------------------------------------------------

    def _delivers_on(self, thread: int | None) -> bool:
        return thread is not None and thread == self._thread.ident

    def _run(self) -> None:
        try:
            with httpx.Client(
                timeout=self._timeout,
                follow_redirects=False,
                headers={"user-agent": f"{self._service}-chat-notifier"},
            ) as client:
                while not self._abandon.is_set():
                    message = self._queue.get()
                    if message is None:
                        break
                    for number, hook in enumerate(self._webhooks, 1):
                        if self._abandon.is_set():
                            break
                        try:
                            self._deliver(client, number, hook, message)
                        except Exception as exc:
                            # Only the type: an httpx error's text may carry the URL.
                            _log.warning(
                                "chat notifier: posting to %s webhook #%d failed (%s)",
                                hook.kind,
                                number,
                                type(exc).__name__,
                            )
        finally:
            logging.getLogger("httpx").removeFilter(self._hide_urls)

    def _request_timeout(self) -> float | None:
        """The timeout for the next request, ``None`` when close() has no time left."""
        if self._abandon.is_set():
            return None
        deadline = self._deadline
        if deadline is None:
            return self._timeout
        left = deadline - time.monotonic()
        return min(self._timeout, left) if left > 0 else None

    def _deliver(self, client: httpx.Client, number: int, hook: Webhook, message: _Message) -> None:
        payload = _payload(hook.kind, self._render(hook.kind, message))
        name = f"{hook.kind} webhook #{number}"
        for attempt in (1, 2):
            timeout = self._request_timeout()
            if timeout is None:
                return
            try:
                response = client.post(hook.url, json=payload, timeout=timeout)
            except httpx.HTTPError as exc:
                _log.warning(
                    "chat notifier: %s failed (%s); the message is dropped",
                    name,
                    type(exc).__name__,
                )
                return
            if response.is_success:
                return
            if response.status_code == 429 and attempt == 1:
                delay = _retry_after(response)
                if delay <= MAX_RETRY_AFTER:
                    # An Event's wait, not sleep: close() cuts it short.
                    if self._abandon.wait(delay):
                        return
                    continue
                _log.warning(
                    "chat notifier: %s is rate-limited for %.0f s; the message is dropped",
                    name,
                    delay,
                )
                return
            _log.warning(
                "chat notifier: %s answered %d; the message is dropped",
                name,
                response.status_code,
            )
            return

    def _render(self, kind: WebhookKind, message: _Message) -> str:
        # The counts come before the detail lines, so that truncation cuts the details.
        if kind == "discord":
            head = f"**{self._service}** on {_code(self._node)}: {message.title}"
            text = "\n".join((head, *message.notes, *message.lines))
            return _truncate(_defuse_discord(text), DISCORD_LIMIT)
        head = f"*{self._service}* on {_code(self._node)}: {message.title}"
        text = "\n".join((head, *message.notes, *message.lines))
        return _truncate(_escape_slack(text), SLACK_LIMIT)


class ChatLogHandler(logging.Handler):
    """Turns log records into chat messages: ERROR (or ``level``) and above with
    ``exc_info`` (unhandled errors), anything at CRITICAL, and WARNING and above logged
    with ``extra={"notify": True}`` (critical events). Everything else is ignored, as are
    the notifier's own records."""

    def __init__(self, notifier: ChatNotifier, level: int = logging.ERROR) -> None:
        # The handler's own level must let notify=True warnings through; ``level`` is the
        # threshold for exception records.
        super().__init__(min(level, logging.WARNING))
        self._notifier = notifier
        self._error_level = level

    def filter(self, record: logging.LogRecord) -> bool:
        # Here rather than in emit: filter runs before handle() takes the handler's lock,
        # so the delivery thread's own warnings never wait on it (logging.shutdown holds
        # that lock while close() waits for the delivery thread).
        if _is_own(record.name) or self._notifier._delivers_on(record.thread):
            return False
        return bool(super().filter(record))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            described = self._describe(record)
            if described is not None:
                self._notifier.notify(*described)
        except Exception:
            self.handleError(record)

    def close(self) -> None:
        """Close the notifier too: the handler owns it, and logging closes every handler
        at exit (``logging.shutdown``), which flushes what is queued. Closing twice is
        harmless."""
        try:
            self._notifier.close()
        finally:
            super().close()

    def _describe(self, record: logging.LogRecord) -> tuple[str, str, tuple[str, ...]] | None:
        if not self.filter(record):  # emit called directly
            return None
        # A structlog logger hands the stdlib its event dict as the record's message.
        fields: Mapping[str, Any] = record.msg if isinstance(record.msg, Mapping) else {}
        notify = getattr(record, "notify", False) is True or fields.get("notify") is True
        exc = _exception_of(record, fields)
        if exc is not None and record.levelno >= min(self._error_level, logging.CRITICAL):
            return _describe_exception(record, fields, exc)
        if record.levelno >= logging.CRITICAL or (notify and record.levelno >= logging.WARNING):
            return _describe_event(record, fields, trusted=notify or _is_project(record.name))
        return None


# --- what a record says -----------------------------------------------------------------


def _describe_exception(
    record: logging.LogRecord, fields: Mapping[str, Any], exc: BaseException
) -> tuple[str, str, tuple[str, ...]]:
    kind = _type_name(type(exc))
    location = _innermost_location(exc.__traceback__)
    context = _request_context(record, fields)
    where = " ".join(context[k] for k in ("method", "route") if k in context)
    fingerprint = f"exception|{kind}|{location}|{where}"
    title = f"{_code(kind)} at {_code(location)}"
    lines = [f"{record.levelname} logged by {_code(record.name)}"]
    if where:
        lines.append(f"route {_code(where)}")
    if "request_id" in context:
        lines.append(f"request {_code(context['request_id'])}")
    causes = _causes(exc)
    if causes:
        lines.append("caused by " + " ← ".join(_code(c) for c in causes))
    return fingerprint, title, tuple(lines)


def _describe_event(
    record: logging.LogRecord, fields: Mapping[str, Any], *, trusted: bool
) -> tuple[str, str, tuple[str, ...]]:
    template = str(fields.get("event", "")) if fields else str(record.msg)
    text = template
    if trusted and not fields:
        try:
            text = record.getMessage()
        except Exception:  # bad arguments: the template is still worth sending
            text = template
    # Somebody else's CRITICAL may quote data in its arguments: it goes out unformatted.
    fingerprint = f"event|{record.name}|{template}"
    lines = [f"{record.levelname} logged by {_code(record.name)}"]
    context = _request_context(record, fields)
    where = " ".join(context[k] for k in ("method", "route") if k in context)
    if where:
        lines.append(f"route {_code(where)}")
    if "request_id" in context:
        lines.append(f"request {_code(context['request_id'])}")
    exc = _exception_of(record, fields)
    if exc is not None:
        lines.append(
            f"exception {_code(_type_name(type(exc)))} at "
            f"{_code(_innermost_location(exc.__traceback__))}"
        )
    return fingerprint, text, tuple(lines)


def _exception_of(record: logging.LogRecord, fields: Mapping[str, Any]) -> BaseException | None:
    if record.exc_info and record.exc_info[1] is not None:
        return record.exc_info[1]
    # structlog keeps exc_info in the event dict (or has already turned it into the
    # "exception" text); the handler runs in the logging call, where sys.exc_info() is it.
    marker = fields.get("exc_info") if fields else None
    if isinstance(marker, BaseException):
        return marker
    if isinstance(marker, tuple) and len(marker) == 3 and isinstance(marker[1], BaseException):
        return marker[1]
    if marker or (fields and "exception" in fields):
        return sys.exc_info()[1]
    return None


def _request_context(record: logging.LogRecord, fields: Mapping[str, Any]) -> dict[str, str]:
    contextual = _context_variables()
    found: dict[str, str] = {}
    for name in _REQUEST_FIELDS:
        value = getattr(record, name, None)
        if value is None:
            value = fields.get(name) if fields else None
        if value is None:
            value = contextual.get(name)
        if value is not None:
            found[name] = str(value)
    return found


def _context_variables() -> dict[str, Any]:
    """What the logging setup keeps in context variables: structlog's bound values and the
    request id the middleware sets. Both are optional here, hence the guarded imports."""
    values: dict[str, Any] = {}
    try:
        from structlog.contextvars import get_contextvars
    except ImportError:
        pass
    else:
        values.update(get_contextvars())
    try:
        from rushgate.observability.logging import request_id
    except ImportError:
        pass
    else:
        current = request_id.get()
        if current is not None:
            values.setdefault("request_id", current)
    return values


def _innermost_location(tb: TracebackType | None) -> str:
    """``module:function:line`` of the innermost frame of rushgate's code (the innermost
    frame of all when none is). Only names and numbers: no locals, no source."""
    project: str | None = None
    last: str | None = None
    while tb is not None:
        frame = tb.tb_frame
        module = str(frame.f_globals.get("__name__", "?"))
        last = f"{module}:{frame.f_code.co_qualname}:{tb.tb_lineno}"
        if _is_project(module):
            project = last
        tb = tb.tb_next
    return project or last or "unknown location"


def _causes(exc: BaseException, limit: int = 3) -> list[str]:
    """The types of the exceptions behind ``exc`` (``raise … from``, or during handling)."""
    found: list[str] = []
    current: BaseException | None = exc
    while current is not None and len(found) < limit:
        current = current.__cause__ or (
            None if current.__suppress_context__ else current.__context__
        )
        if current is not None:
            found.append(_type_name(type(current)))
    return found


def _type_name(cls: type[BaseException]) -> str:
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


def _is_project(module: str) -> bool:
    return module == _PROJECT or module.startswith(_PROJECT + ".")


def _is_own(logger: str) -> bool:
    return logger == _log.name or logger.startswith(_log.name + ".")


# --- Markdown and payloads -------------------------------------------------------------


def _code(value: str) -> str:
    """``value`` in a code span: no Markdown, links or mentions inside it. A code span
    cannot escape a backtick, so one becomes a look-alike; a newline (a forged line of
    the message) becomes a space."""
    text = value.replace("`", "ˋ").replace("\r", " ").replace("\n", " ")
    if len(text) > _MAX_VALUE:
        text = text[: _MAX_VALUE - 1] + "…"
    return f"`{text or ' '}`"


def _defuse_discord(text: str) -> str:
    # allowed_mentions already stops the ping; the zero-width space also stops it from
    # reading as one.
    return text.replace("@everyone", "@\u200beveryone").replace("@here", "@\u200bhere")


def _escape_slack(text: str) -> str:
    # Slack's own rule: these three are its control characters (<!channel>, <@U…>, links).
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


_PARTIAL_ENTITY = re.compile(r"&[a-z]{0,3}$")


def _truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    # Not half an escaped "&amp;" at the cut.
    return _PARTIAL_ENTITY.sub("", text[: limit - 1]) + "…"


def _payload(kind: WebhookKind, text: str) -> dict[str, Any]:
    if kind == "discord":
        return {"content": text, "username": "rushgate", "allowed_mentions": {"parse": []}}
    return {"text": text}


def _retry_after(response: httpx.Response) -> float:
    """Seconds a 429 asks us to wait: ``Retry-After`` in seconds or as a date, else
    Discord's JSON ``retry_after``, else one second."""
    header = response.headers.get("retry-after", "").strip()
    if header:
        try:
            return max(float(header), 0.0)
        except ValueError:
            pass
        try:
            when = email.utils.parsedate_to_datetime(header)
        except (TypeError, ValueError):
            pass
        else:
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            return max((when - datetime.now(UTC)).total_seconds(), 0.0)
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("retry_after"), int | float):
        return max(float(body["retry_after"]), 0.0)
    return 1.0


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(round(seconds), 1)} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    return f"{round(seconds / 3600)} h"


class _HideWebhookUrls(logging.Filter):
    """httpx logs every request's URL at INFO ("HTTP Request: POST https://…"); for a
    webhook that is its secret. This filter on the ``httpx`` logger replaces it."""

    def __init__(self, webhooks: Sequence[Webhook], delivers_on: Callable[[int | None], bool]):
        super().__init__()
        secrets: set[str] = set()
        for hook in webhooks:
            secrets.add(hook.url)
            with contextlib.suppress(httpx.InvalidURL):
                secrets.add(str(httpx.URL(hook.url)))  # as httpx prints it (normalised)
        self._secrets = tuple(secrets)
        self._delivers_on = delivers_on

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and record.args:
            ours = self._delivers_on(record.thread)
            record.args = tuple(self._hide(arg, ours) for arg in record.args)
        return True

    def _hide(self, arg: object, ours: bool) -> object:
        if isinstance(arg, httpx.URL | str):
            text = str(arg)
            if (ours and isinstance(arg, httpx.URL)) or any(s in text for s in self._secrets):
                host = arg.host if isinstance(arg, httpx.URL) else "…"
                return f"<chat webhook on {host}>"
        return arg
