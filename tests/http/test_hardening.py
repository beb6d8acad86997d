"""What every response carries, and how an error that escaped every handler is answered,
as a client sees it over a real connection to a real server."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI, Response

from rushgate.adapters.security import Argon2Hasher
from rushgate.adapters.sql.engine import SqlStorage
from rushgate.config import Settings
from rushgate.domain.clock import SystemClock
from rushgate.http.app import create_app
from rushgate.services.registry import RegistryService
from tests.inprocess_server import serving
from tests.support import SECRET, sqlite_database


def _with_admin(url: str) -> str:
    async def create() -> None:
        storage = SqlStorage.from_urls(url, None, SystemClock(), pool_size=1)
        try:
            await RegistryService(storage, Argon2Hasher("low")).ensure_admin(
                "admin", "admin-password"
            )
        finally:
            await storage.close()

    asyncio.run(create())
    return url


def _app(tmp_path: Path, **overrides: object) -> FastAPI:
    settings = Settings(
        database_url=_with_admin(sqlite_database(tmp_path)),
        secret_key=SECRET,  # type: ignore[arg-type]
        password_hash_cost="low",
        data_dir=tmp_path / "data",
        **overrides,  # type: ignore[arg-type]
    )
    app = create_app(settings)

    async def fails() -> None:
        raise RuntimeError("a bug nobody handled")

    async def cached() -> Response:
        return Response("{}", headers={"Cache-Control": "public, max-age=5"})

    app.add_api_route("/test/fails", fails)
    app.add_api_route("/test/cached", cached)
    return app


@pytest.fixture
def base_url(tmp_path: Path) -> Iterator[str]:
    with serving(_app(tmp_path)) as url:
        yield url


def _exchange(sock: socket.socket, path: str) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 request on an open connection, and its whole response."""
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"the server closed the connection after {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    length = int(headers["content-length"])
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection mid-body"
        body += chunk
    return int(status_line.split()[1]), headers, body


def test_an_escaped_error_is_a_problem_and_the_connection_stays_usable(base_url: str) -> None:
    port = int(base_url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        status, headers, body = _exchange(sock, "/test/fails")
        assert status == 500
        assert headers["content-type"] == "application/problem+json"
        problem = json.loads(body)
        assert problem["code"] == "internal_error"
        assert "a bug nobody handled" not in body.decode()  # internals stay in the log
        assert headers.get("connection") != "close"
        # The same connection serves the next request (it was reset before).
        status, _, body = _exchange(sock, "/healthz")
        assert status == 200, body
        status, _, _ = _exchange(sock, "/test/fails")
        assert status == 500


def test_escaped_errors_are_counted_as_500(base_url: str) -> None:
    with httpx.Client(base_url=base_url) as client:

        def count() -> float:
            for line in client.get("/metrics").text.splitlines():
                if line.startswith("rushgate_http_requests_total{") and (
                    'route="/test/fails"' in line and 'status="500"' in line
                ):
                    return float(line.rsplit(" ", 1)[1])
            return 0.0

        before = count()
        assert client.get("/test/fails").status_code == 500
        assert count() == before + 1


def test_security_headers_on_every_response(base_url: str) -> None:
    with httpx.Client(base_url=base_url) as client:
        responses = {
            "ok": client.get("/healthz"),
            "not found": client.get("/api/v1/no/such/thing"),
            "page not found": client.get("/no/such/page"),
            "refused": client.post("/api/v1/auth/token", json={"username": "x"}),
            "failed": client.get("/test/fails"),
        }
    for what, response in responses.items():
        headers = response.headers
        assert "server" not in headers, what
        assert headers["x-content-type-options"] == "nosniff", what
        assert headers["x-frame-options"] == "DENY", what
        # Pages name only their own origin (their forms need it); the API, nothing.
        page = what in ("page not found", "failed")  # /test/fails is outside /api/ too
        referrer = "same-origin" if page else "no-referrer"
        assert headers["referrer-policy"] == referrer, what
        assert "frame-ancestors 'none'" in headers["content-security-policy"], what
        # The API may load nothing; the web pages only this site's own files.
        policy = headers["content-security-policy"]
        expected = "default-src 'self'" if page else "default-src 'none'"
        assert expected in policy, what
        assert "unsafe-inline" not in policy, what
        assert headers["cache-control"] == "no-store", what
        assert len(headers["x-request-id"]) >= 8, what
        # Plain HTTP site: HSTS would be ignored, and is not sent.
        assert "strict-transport-security" not in headers, what


def test_the_token_response_is_never_cached(base_url: str) -> None:
    with httpx.Client(base_url=base_url) as client:
        response = client.post(
            "/api/v1/auth/token", json={"username": "admin", "password": "admin-password"}
        )
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"


def test_the_api_docs_may_load_their_scripts(base_url: str) -> None:
    with httpx.Client(base_url=base_url) as client:
        response = client.get("/docs")
    assert response.status_code == 200
    policy = response.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy
    assert "default-src 'none'" not in policy


def test_hsts_when_the_site_is_served_over_https(tmp_path: Path) -> None:
    with (
        serving(_app(tmp_path, public_url="https://enroll.example.edu")) as url,
        httpx.Client(base_url=url) as client,
    ):
        response = client.get("/healthz")
    assert response.headers["strict-transport-security"].startswith("max-age=")


def test_a_route_that_sets_its_own_cache_policy_keeps_it(base_url: str) -> None:
    with httpx.Client(base_url=base_url) as client:
        response = client.get("/test/cached")
    assert response.headers.get_list("cache-control") == ["public, max-age=5"]
