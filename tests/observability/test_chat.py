"""Chat notifications against a real webhook server on a loopback port: payload shapes,
no personal data, deduplication, the rate limit, 429s, hanging and failing webhooks, and
the webhook URL kept secret."""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog

from rushgate.composition import configure_process
from rushgate.config import Settings
from rushgate.http.app import create_app
from rushgate.observability import logging as logs
from rushgate.observability.chat import (
    DISCORD_LIMIT,
    SLACK_LIMIT,
    ChatLogHandler,
    ChatNotifier,
    Webhook,
    WebhookKind,
)
from rushgate.services.ports.documents import check_storage_key
from tests.inprocess_server import serving
from tests.support import SECRET as TEST_SECRET
from tests.support import sqlite_database

# In every webhook path: whatever leaks the URL leaks this.
SECRET = "s3cr3t-t0ken-9f2c"
CHAT_LOGGER = "rushgate.observability.chat"


@dataclass
class Request:
    path: str
    body: dict[str, Any]
    content_type: str
    at: float


@dataclass
class FakeWebhook:
    """A chat service's webhook endpoint: records every POST (``requests``, in order) and
    answers ``answers`` one by one, then ``status``. With ``hang`` set, each answer waits
    until ``release`` is set (or ``hang`` seconds): a webhook that does not answer."""

    status: int = 204
    answers: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    hang: float = 0.0
    release: threading.Event = field(default_factory=threading.Event)
    requests: list[Request] = field(default_factory=list)
    arrived: threading.Condition = field(default_factory=threading.Condition)
    base_url: str = ""

    def url(self, kind: str) -> str:
        return f"{self.base_url}/api/webhooks/{kind}/{SECRET}"

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Request]:
        with self.arrived:
            ok = self.arrived.wait_for(lambda: len(self.requests) >= count, timeout)
        assert ok, f"{len(self.requests)} of {count} requests arrived"
        return list(self.requests)

    def bodies(self) -> list[dict[str, Any]]:
        return [r.body for r in self.requests]

    def _take(self, request: Request) -> tuple[int, dict[str, str]]:
        with self.arrived:
            self.requests.append(request)
            self.arrived.notify_all()
            return self.answers.pop(0) if self.answers else (self.status, {})


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        fake = self.server.fake
        body = json.loads(self.rfile.read(int(self.headers.get("content-length", "0"))))
        status, headers = fake._take(
            Request(self.path, body, self.headers.get("content-type", ""), time.monotonic())
        )
        if fake.hang:
            fake.release.wait(fake.hang)
        try:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("content-length", "0")
            self.end_headers()
        except OSError:
            pass  # the client gave up waiting

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet (and the path holds the secret)


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a hanging answer must not hold up shutdown

    def __init__(self, fake: FakeWebhook) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.fake = fake


@pytest.fixture
def webhook() -> Iterator[FakeWebhook]:
    fake = FakeWebhook()
    server = _Server(fake)
    fake.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield fake
    finally:
        fake.release.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


class Clock:
    """The notifier's clock, moved by hand: windows pass without waiting."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


MakeNotifier = Callable[..., ChatNotifier]


@pytest.fixture
def make_notifier(webhook: FakeWebhook, clock: Clock) -> Iterator[MakeNotifier]:
    made: list[ChatNotifier] = []

    def make(*kinds: WebhookKind, **options: Any) -> ChatNotifier:
        hooks = [Webhook(kind, webhook.url(kind)) for kind in kinds or ("discord",)]
        options.setdefault("clock", clock)
        notifier = ChatNotifier(hooks, service="rushgate", node="web-1", **options)
        made.append(notifier)
        return notifier

    yield make
    for notifier in made:
        notifier.close(timeout=5)


class Records(logging.Handler):
    """Every record logged anywhere while installed (root at DEBUG)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.warned = threading.Event()  # the notifier logged a delivery problem

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        if record.name == CHAT_LOGGER:
            self.warned.set()

    def text(self) -> str:
        return "\n".join(
            f"{r.name} {r.getMessage()} {r.args!r} {r.__dict__!r}" for r in self.records
        )

    def chat(self) -> list[str]:
        return [r.getMessage() for r in self.records if r.name == CHAT_LOGGER]


@pytest.fixture
def records() -> Iterator[Records]:
    root = logging.getLogger()
    level = root.level
    handler = Records()
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield handler
    root.removeHandler(handler)
    root.setLevel(level)


@pytest.fixture
def attach() -> Iterator[Callable[[ChatNotifier], logging.Logger]]:
    """A project logger with a ChatLogHandler of the given notifier on it."""
    logger = logging.getLogger("rushgate.test.chat")
    attached: list[logging.Handler] = []

    def attach(notifier: ChatNotifier, level: int = logging.ERROR) -> logging.Logger:
        handler = ChatLogHandler(notifier, level)
        logger.addHandler(handler)
        attached.append(handler)
        return logger

    level = logger.level
    logger.setLevel(logging.DEBUG)
    yield attach
    for handler in attached:
        logger.removeHandler(handler)
    logger.setLevel(level)


def _enroll(student: str) -> None:
    raise ValueError(f"student {student}")


def _content(body: dict[str, Any]) -> str:
    return str(body.get("content", body.get("text")))


# --- payloads --------------------------------------------------------------------------


def test_discord_and_slack_get_their_own_payloads(
    webhook: FakeWebhook, make_notifier: MakeNotifier
) -> None:
    notifier = make_notifier("discord", "slack")
    assert notifier.notify("f1", "the admitter is stuck", ["queue `2026-spring`"])
    notifier.close()
    discord, slack = webhook.requests
    assert discord.path.startswith("/api/webhooks/discord/")
    assert slack.path.startswith("/api/webhooks/slack/")
    assert discord.content_type == slack.content_type == "application/json"
    assert discord.body == {
        "content": "**rushgate** on `web-1`: the admitter is stuck\nqueue `2026-spring`",
        "username": "rushgate",
        "allowed_mentions": {"parse": []},
    }
    assert slack.body == {
        "text": "*rushgate* on `web-1`: the admitter is stuck\nqueue `2026-spring`"
    }


def test_long_messages_are_cut_to_each_services_limit(
    webhook: FakeWebhook, make_notifier: MakeNotifier
) -> None:
    notifier = make_notifier("discord", "slack")
    notifier.notify("long", "a long one", ["<&> " * 2000])
    notifier.close()
    discord, slack = (_content(b) for b in webhook.bodies())
    assert len(discord) == DISCORD_LIMIT
    assert len(slack) <= SLACK_LIMIT
    assert discord.endswith("…")
    assert slack.endswith("…")
    assert re.search(r"&[a-z]{0,3}…$", slack) is None  # no half an escape at the cut


# --- what an exception record says -----------------------------------------------------


def test_an_exception_is_told_by_type_and_place_never_by_its_message(
    webhook: FakeWebhook, make_notifier: MakeNotifier, attach: Any
) -> None:
    log = attach(make_notifier("discord", "slack"))
    try:
        _enroll("s1@x.edu")
    except ValueError:
        log.exception("enrolling %s failed", "s2@x.edu", extra={"route": "/api/v1/enroll"})
    try:
        check_storage_key("s3@x.edu")  # rushgate's own code, called from here
    except ValueError:
        log.exception("storing the upload of %s failed", "s4@x.edu")
    bodies = [_content(r.body) for r in webhook.wait_for(4)]
    for text in bodies:
        for address in ("s1@x.edu", "s2@x.edu", "s3@x.edu", "s4@x.edu"):
            assert address not in text
        assert "student" not in text  # no word of the exception's message
        assert "`ValueError`" in text
        assert "`rushgate.test.chat`" in text
        assert "`web-1`" in text
        assert "rushgate" in text
    # No frame of rushgate's code: the innermost frame of all.
    assert re.search(r"`tests\.observability\.test_chat:_enroll:\d+`", bodies[0])
    assert "route `/api/v1/enroll`" in bodies[0]
    # The innermost frame of rushgate's code, not the test that called it.
    assert re.search(r"`rushgate\.services\.ports\.documents:check_storage_key:\d+`", bodies[2])


def test_the_request_is_named_from_record_attributes_and_context_variables(
    webhook: FakeWebhook, make_notifier: MakeNotifier, attach: Any
) -> None:
    log = attach(make_notifier())
    token = logs.request_id.set("req-12345678")
    structlog.contextvars.bind_contextvars(route="/api/v1/sections/{id}")
    try:
        try:
            raise KeyError("kim.minji@example.ac.kr")
        except KeyError:
            log.error("lookup failed", exc_info=True, extra={"method": "GET"})
    finally:
        structlog.contextvars.clear_contextvars()
        logs.request_id.reset(token)
    (request,) = webhook.wait_for(1)
    text = _content(request.body)
    assert "`KeyError`" in text
    assert "route `GET /api/v1/sections/{id}`" in text
    assert "request `req-12345678`" in text
    assert "kim.minji" not in text


def test_chained_exceptions_name_their_causes_by_type(
    webhook: FakeWebhook, make_notifier: MakeNotifier, attach: Any
) -> None:
    log = attach(make_notifier())
    try:
        try:
            raise ConnectionRefusedError("db.internal:5432 for lee@x.edu")
        except ConnectionRefusedError as exc:
            raise RuntimeError("cannot enroll lee@x.edu") from exc
    except RuntimeError:
        log.exception("failed")
    text = _content(webhook.wait_for(1)[0].body)
    assert "`RuntimeError`" in text
    assert "caused by `ConnectionRefusedError`" in text
    assert "lee@x.edu" not in text
    assert "5432" not in text


def test_user_controlled_values_cannot_ping_anyone(
    webhook: FakeWebhook, make_notifier: MakeNotifier, attach: Any
) -> None:
    log = attach(make_notifier("discord", "slack"))
    route = "/x/@everyone <!channel> <@U123> `@here`\nfake line"
    try:
        raise ValueError("x")
    except ValueError:
        log.exception("failed", extra={"route": route, "method": "POST"})
    discord, slack = webhook.wait_for(2)
    content = _content(discord.body)
    assert discord.body["allowed_mentions"] == {"parse": []}
    assert "@everyone" not in content
    assert "@here" not in content
    assert "\nfake line" not in content  # a route cannot forge a line of the message
    text = _content(slack.body)
    assert "<!channel>" not in text
    assert "<@U123>" not in text
    assert "&lt;!channel&gt;" in text


# --- which records are told ------------------------------------------------------------


def test_only_errors_with_tracebacks_critical_records_and_notify_events_are_told(
    webhook: FakeWebhook, make_notifier: MakeNotifier, attach: Any
) -> None:
    notifier = make_notifier(max_per_minute=60)
    log = attach(notifier)
    log.error("an error without a traceback")
    log.warning("a plain warning")
    log.info("an event at INFO", extra={"notify": True})
    try:
        raise ValueError("x")
    except ValueError:
        log.warning("a handled error", exc_info=True)
    log.warning("room %s paused", "2026-spring", extra={"notify": True})
    log.warning("room %s paused", "2026-fall", extra={"notify": True})  # same template
    log.critical("out of %s", "disk")
    notifier.close()
    texts = [_content(b) for b in webhook.bodies()]
    assert len(texts) == 2, texts
    assert "room 2026-spring paused" in texts[0]
    assert "WARNING logged by `rushgate.test.chat`" in texts[0]
    assert "out of disk" in texts[1]


def test_structlog_records_are_told_too(webhook: FakeWebhook, make_notifier: MakeNotifier) -> None:
    import io

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    logs.configure(fmt="json", level="info", node="web-1", stream=io.StringIO())
    handler = ChatLogHandler(make_notifier(max_per_minute=60))
    root.addHandler(handler)
    try:
        log = logs.get("rushgate.test.structlog")
        try:
            raise ValueError("park@x.edu")
        except ValueError:
            log.exception("tick failed", applicant="park@x.edu")
        log.warning("room paused", room="2026-spring", notify=True)
        log.warning("not told")
        requests = webhook.wait_for(2)
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        structlog.reset_defaults()
    failure, event = (_content(r.body) for r in requests)
    assert "`ValueError`" in failure
    assert re.search(r"`tests\.observability\.test_chat:[\w.<>]+:\d+`", failure)
    assert "park@x.edu" not in failure
    assert "room paused" in event


# --- deduplication and the rate limit --------------------------------------------------


def test_repeats_within_the_window_are_counted_and_told_with_the_next_one(
    webhook: FakeWebhook, make_notifier: MakeNotifier, attach: Any, clock: Clock
) -> None:
    notifier = make_notifier(dedupe_seconds=600)
    log = attach(notifier)
    for _ in range(10):
        try:
            _enroll("s1@x.edu")
        except ValueError:
            log.exception("failed")
        clock.advance(1)
    webhook.wait_for(1)
    clock.advance(600)
    for _ in range(2):  # the first after the window goes out, the second is a repeat again
        try:
            _enroll("s1@x.edu")
        except ValueError:
            log.exception("failed")
    notifier.close()
    sent = [_content(b) for b in webhook.bodies()]
    assert len(sent) == 2
    assert "more like this" not in sent[0]
    assert "(9 more like this in the last 10 min)" in sent[1]


def test_notify_reports_what_it_suppressed(make_notifier: MakeNotifier, clock: Clock) -> None:
    notifier = make_notifier(dedupe_seconds=600)
    assert notifier.notify("same", "one")
    assert not notifier.notify("same", "again")
    clock.advance(600)
    assert notifier.notify("same", "after the window")


def test_over_the_rate_limit_messages_are_held_back_and_counted(
    webhook: FakeWebhook, make_notifier: MakeNotifier, clock: Clock
) -> None:
    notifier = make_notifier(max_per_minute=5)
    accepted = [notifier.notify(f"fingerprint-{i}", f"message {i}") for i in range(20)]
    assert accepted == [True] * 5 + [False] * 15
    clock.advance(59)
    assert not notifier.notify("later", "still within the minute")
    clock.advance(1)
    assert notifier.notify("later", "a minute later")
    notifier.close()
    sent = [_content(b) for b in webhook.bodies()]
    assert len(sent) == 6
    assert all("held back" not in text for text in sent[:5])
    assert "16 other messages were held back (rate limit)" in sent[5]


def test_the_rate_limit_holds_across_threads(make_notifier: MakeNotifier) -> None:
    notifier = make_notifier(max_per_minute=5)
    results: list[bool] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def flood(worker: int) -> None:
        start.wait()
        for i in range(50):
            ok = notifier.notify(f"{worker}-{i}", "x")
            with lock:
                results.append(ok)

    threads = [threading.Thread(target=flood, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(results) == 400
    assert results.count(True) == 5


def test_notify_never_raises(make_notifier: MakeNotifier, records: Records) -> None:
    def broken() -> float:
        raise RuntimeError("clock broke")

    notifier = make_notifier(clock=broken)
    assert notifier.notify("f", "t") is False
    assert any("could not queue" in m for m in records.chat())


# --- the webhook's answers -------------------------------------------------------------


def test_a_429_is_waited_out_and_retried_once(
    webhook: FakeWebhook, make_notifier: MakeNotifier, records: Records
) -> None:
    webhook.answers = [(429, {"Retry-After": "1"})]
    notifier = make_notifier("slack")
    notifier.notify("f", "rate-limited once")
    first, second = webhook.wait_for(2)
    notifier.close()
    assert len(webhook.requests) == 2
    assert first.body == second.body
    assert second.at - first.at >= 0.9
    assert records.chat() == []  # delivered: nothing to complain about


def test_a_429_asking_too_long_a_wait_drops_the_message(
    webhook: FakeWebhook, make_notifier: MakeNotifier, records: Records
) -> None:
    webhook.answers = [(429, {"Retry-After": "3600"})]
    notifier = make_notifier()
    notifier.notify("f", "rate-limited for an hour")
    assert records.warned.wait(5)
    notifier.close()
    assert len(webhook.requests) == 1
    assert records.chat() == [
        "chat notifier: discord webhook #1 is rate-limited for 3600 s; the message is dropped"
    ]


def test_a_hanging_webhook_blocks_neither_notify_nor_close(
    webhook: FakeWebhook, make_notifier: MakeNotifier, records: Records
) -> None:
    webhook.hang = 30
    notifier = make_notifier(timeout_seconds=5)
    started = time.perf_counter()
    assert notifier.notify("first", "goes out, never answered")
    assert time.perf_counter() - started < 0.05
    webhook.wait_for(1)  # the delivery thread now waits for an answer
    started = time.perf_counter()
    assert notifier.notify("second", "queued behind it")
    assert time.perf_counter() - started < 0.05
    started = time.perf_counter()
    notifier.close(timeout=0.3)
    assert time.perf_counter() - started < 0.3 + 0.2
    assert "chat notifier: stopped before delivering 1 queued message(s)" in records.chat()
    webhook.release.set()  # the request ends; the thread drops the rest and stops
    notifier._thread.join(5)
    assert not notifier._thread.is_alive()
    assert len(webhook.requests) == 1
    assert notifier.notify("third", "after close") is False


def test_a_webhook_that_times_out_is_logged_and_dropped(
    webhook: FakeWebhook, make_notifier: MakeNotifier, records: Records
) -> None:
    webhook.hang = 30
    notifier = make_notifier(timeout_seconds=0.2)
    notifier.notify("f", "never answered")
    assert records.warned.wait(5)
    assert records.chat() == [
        "chat notifier: discord webhook #1 failed (ReadTimeout); the message is dropped"
    ]
    webhook.release.set()
    notifier.close()


def test_a_failing_webhook_causes_no_chat_message_about_itself(
    webhook: FakeWebhook, make_notifier: MakeNotifier, records: Records
) -> None:
    webhook.status = 500
    notifier = make_notifier(max_per_minute=60, dedupe_seconds=0)
    # On the root logger, at WARNING: it sees the notifier's own warnings and every record.
    handler = ChatLogHandler(notifier, logging.WARNING)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        try:
            raise ValueError("x")
        except ValueError:
            logging.getLogger("rushgate.test.chat").exception("failed")
        assert records.warned.wait(5)
        # What the notifier itself logs, even at CRITICAL, is never told.
        assert not handler.filter(logging.makeLogRecord({"name": CHAT_LOGGER, "levelno": 50}))
        delivering = notifier._thread.ident
        assert not handler.filter(
            logging.makeLogRecord({"name": "httpx", "levelno": 50, "thread": delivering})
        )
        assert handler.filter(logging.makeLogRecord({"name": "rushgate.x", "levelno": 50}))
        notifier.close()
    finally:
        root.removeHandler(handler)
    assert len(webhook.requests) == 1
    assert records.chat() == [
        "chat notifier: discord webhook #1 answered 500; the message is dropped"
    ]


# --- the URL is a secret ---------------------------------------------------------------


def test_the_webhook_url_is_never_shown(
    webhook: FakeWebhook, make_notifier: MakeNotifier, records: Records
) -> None:
    hook = Webhook("discord", webhook.url("discord"))
    assert SECRET not in repr(hook)
    assert SECRET not in str(hook)
    assert SECRET not in repr([hook])
    with pytest.raises(ValueError, match="not an http") as raised:
        Webhook("slack", f"ftp://hooks.example/{SECRET}")
    assert SECRET not in str(raised.value)
    # Delivered, then answered 429 and 500 to the retry: every path logs, none names it.
    webhook.answers = [(204, {}), (429, {"Retry-After": "0"}), (500, {})]
    notifier = make_notifier("discord", timeout_seconds=5)
    for i in range(2):
        notifier.notify(f"f{i}", "x")
    webhook.wait_for(3)
    assert records.warned.wait(5)
    notifier.close()
    assert SECRET not in repr(notifier)
    http_lines = [r.getMessage() for r in records.records if r.name == "httpx"]
    assert len(http_lines) == 3  # httpx logged each request, its URL replaced
    assert all("<chat webhook on 127.0.0.1>" in line for line in http_lines)
    assert SECRET not in records.text()


# --- wired into a serving process -------------------------------------------------------


def test_a_node_with_a_webhook_tells_chat_of_an_unhandled_error(
    webhook: FakeWebhook, tmp_path: Path
) -> None:
    """Settings → configure_process → the root logger's chat handler → the webhook, for an
    error that escaped every handler of a real server; and a second, identical one is
    only counted."""
    settings = Settings(
        database_url=sqlite_database(tmp_path),
        secret_key=TEST_SECRET,  # type: ignore[arg-type]
        password_hash_cost="low",
        data_dir=tmp_path / "data",
        node_name="web-3",
        log_format="json",
        chat_discord_webhook_url=webhook.url("discord"),  # type: ignore[arg-type]
    )
    root = logging.getLogger()
    before = list(root.handlers)
    try:
        configure_process(settings)
        app = create_app(settings)

        async def fails() -> None:
            raise KeyError("applicant kim.minji@example.ac.kr")

        app.add_api_route("/test/fails", fails)
        with serving(app) as url, httpx.Client(base_url=url) as client:
            first = client.get("/test/fails", headers={"X-Request-ID": "d" * 32})
            second = client.get("/test/fails")
        assert (first.status_code, second.status_code) == (500, 500)
        (message,) = webhook.wait_for(1)
        content = message.body["content"]
        assert "KeyError" in content
        assert "d" * 32 in content
        assert "/test/fails" in content
        assert "web-3" in content
        assert "kim.minji" not in content
    finally:
        for handler in list(root.handlers):
            if handler not in before:
                root.removeHandler(handler)
                handler.close()
        root.handlers[:] = before
        structlog.reset_defaults()
    assert len(webhook.requests) == 1  # the second error was deduplicated
