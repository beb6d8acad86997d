"""Unhandled errors reach Sentry — here a local server that speaks Sentry's envelope
protocol — with what is needed to fix them and without personal data."""

from __future__ import annotations

import gzip
import json
import threading
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import brotli
import httpx
import pytest
import sentry_sdk
from fastapi import FastAPI

from rushgate.config import Settings
from rushgate.http.app import create_app
from rushgate.observability.errors import close_sentry, init_sentry, redact
from tests.inprocess_server import serving
from tests.support import SECRET, sqlite_database


class FakeSentry:
    """Collects the events of every envelope posted to ``/api/<project>/envelope/``."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.raw: list[bytes] = []
        self.arrived = threading.Event()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                encoding = self.headers.get("Content-Encoding", "")
                if encoding == "gzip":
                    body = gzip.decompress(body)
                elif encoding == "deflate":
                    body = zlib.decompress(body)
                elif encoding == "br":
                    body = brotli.decompress(body)
                elif encoding:
                    raise AssertionError(f"unexpected encoding {encoding}")
                owner.raw.append(body)
                lines = body.split(b"\n")
                for header, payload in zip(lines[1::2], lines[2::2], strict=False):
                    if json.loads(header).get("type") == "event":
                        owner.events.append(json.loads(payload))
                        owner.arrived.set()
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def dsn(self) -> str:
        return f"http://publickey@127.0.0.1:{self.server.server_address[1]}/42"

    def __enter__(self) -> FakeSentry:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def sentry() -> Iterator[FakeSentry]:
    with FakeSentry() as fake:
        init_sentry(fake.dsn, release="1.2.3", environment="test", node="web-9")
        try:
            yield fake
        finally:
            close_sentry()
            sentry_sdk.get_global_scope().set_client(None)  # off again for the other tests


def _app(tmp_path: Path) -> FastAPI:
    settings = Settings(
        database_url=sqlite_database(tmp_path),
        secret_key=SECRET,  # type: ignore[arg-type]
        password_hash_cost="low",
        data_dir=tmp_path / "data",
    )
    app = create_app(settings)

    async def fails(email: str) -> None:
        applicant = {"email": email}  # noqa: F841 - a local the report must not carry
        raise LookupError(f"no application for {email}")

    app.add_api_route("/test/fails", fails)
    return app


def test_an_unhandled_error_reaches_sentry_without_personal_data(
    sentry: FakeSentry, tmp_path: Path
) -> None:
    with serving(_app(tmp_path)) as url, httpx.Client(base_url=url) as client:
        response = client.get(
            "/test/fails",
            params={"email": "kim.minji@example.ac.kr"},
            headers={
                "Authorization": "Bearer secret-token-value",
                "Cookie": "session=secret-cookie",
                "X-Forwarded-For": "203.0.113.77",
                "X-Request-ID": "c" * 32,
            },
        )
        assert response.status_code == 500
        sentry_sdk.flush(timeout=5)
    assert sentry.arrived.wait(10), "no event reached the fake Sentry"
    (event,) = [e for e in sentry.events if e.get("exception")]
    (exception,) = event["exception"]["values"]
    assert exception["type"] == "LookupError"
    assert exception["value"] == "no application for [email]"
    frames = exception["stacktrace"]["frames"]
    assert any(frame["function"] == "fails" for frame in frames)
    assert event["release"] == "rushgate@1.2.3"
    assert event["environment"] == "test"
    assert event["server_name"] == "web-9"
    assert event["tags"]["request_id"] == "c" * 32
    everything = b"".join(sentry.raw).decode()
    for private in (
        "kim.minji",
        "secret-token-value",
        "secret-cookie",
        "203.0.113.77",
    ):
        assert private not in everything, private
    assert all("vars" not in frame for frame in frames)  # no local variables


def test_handled_refusals_are_not_errors(sentry: FakeSentry, tmp_path: Path) -> None:
    with serving(_app(tmp_path)) as url, httpx.Client(base_url=url) as client:
        assert client.post("/api/v1/auth/token", json={}).status_code == 422
        assert client.get("/api/v1/terms/nope/sections").status_code in (401, 404)
        sentry_sdk.flush(timeout=5)
    assert not sentry.events


def test_redaction() -> None:
    assert redact("Key (email)=(S1@X.EDU) already exists") == "Key (email)=([email]) already exists"
    assert redact("phone 010-1234-5678, born 2007-03-04") == "phone [number], born [number]"
    assert redact("section 42 of term 7") == "section 42 of term 7"
