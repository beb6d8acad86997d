"""A real CAPTCHA siteverify endpoint on a loopback port, in its own thread, standing in
for Cloudflare Turnstile or hCaptcha: it accepts the tokens it issued, once each, and
refuses replays, unknown and expired ones the way the providers do. It can be told to
hang, to fail with 500 or to answer something that is not JSON."""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal
from urllib.parse import parse_qs

Mode = Literal["ok", "hang", "error", "garbage"]


@dataclass
class _Token:
    action: str
    hostname: str
    expires_at: float
    used: bool = False


@dataclass
class FakeVerifier:
    kind: Literal["turnstile", "hcaptcha"] = "turnstile"
    secret: str = "fake-secret-key"
    site_key: str = "fake-site-key"
    mode: Mode = "ok"
    # Off: a token passes however often it is presented (to show the service's own
    # single-use memory at work).
    refuse_replays: bool = True
    # Every form it was posted, in order.
    requests: list[dict[str, str]] = field(default_factory=list)
    _tokens: dict[str, _Token] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _release: threading.Event = field(default_factory=threading.Event)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/siteverify"

    def issue(
        self, action: str = "signup", *, hostname: str = "rushgate.test", ttl: float = 300
    ) -> str:
        """A token as the widget would hand the browser after a solved challenge."""
        token = f"fake.{secrets.token_urlsafe(24)}"
        with self._lock:
            self._tokens[token] = _Token(action, hostname, time.monotonic() + ttl)
        return token

    def _verdict(self, form: dict[str, str]) -> dict[str, object]:
        if form.get("secret") != self.secret:
            return {"success": False, "error-codes": ["invalid-input-secret"]}
        if self.kind == "hcaptcha" and form.get("sitekey") not in (None, self.site_key):
            return {"success": False, "error-codes": ["sitekey-secret-mismatch"]}
        with self._lock:
            token = self._tokens.get(form.get("response", ""))
            if token is None:
                return {"success": False, "error-codes": ["invalid-input-response"]}
            if token.expires_at <= time.monotonic() or (token.used and self.refuse_replays):
                return {"success": False, "error-codes": ["timeout-or-duplicate"]}
            token.used = True
        verdict: dict[str, object] = {
            "success": True,
            "error-codes": [],
            "challenge_ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "hostname": token.hostname,
        }
        if self.kind == "turnstile":
            verdict["action"] = token.action
        return verdict

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode("utf-8", "replace")
                form = {k: v[0] for k, v in parse_qs(raw).items()}
                fake.requests.append(form)
                if fake.mode == "hang":
                    fake._release.wait(30)
                    return
                if fake.mode == "error":
                    self._send(500, b"internal error", "text/plain")
                elif fake.mode == "garbage":
                    self._send(200, b"<html>not json</html>", "text/html")
                else:
                    self._send(200, json.dumps(fake._verdict(form)).encode(), "application/json")

            def _send(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return None

        return Handler

    def start(self) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        # A short poll: stopping waits for it.
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        ).start()

    def stop(self) -> None:
        self._release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


@contextmanager
def fake_verifier(
    kind: Literal["turnstile", "hcaptcha"] = "turnstile", **options: object
) -> Iterator[FakeVerifier]:
    fake = FakeVerifier(kind=kind, **options)  # type: ignore[arg-type]
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()
