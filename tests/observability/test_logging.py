"""Structured logs: every record one JSON object with the same keys, the request id of the
proxy carried through, and no personal data in the access line."""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog

from rushgate.observability import logging as logs
from tests.serverproc import ServerConfig, ServerProcess


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()


def _lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_stdlib_and_structlog_records_leave_as_the_same_json(restore_logging: None) -> None:
    stream = io.StringIO()
    logs.configure(fmt="json", level="info", node="node-7", stream=stream)
    logging.getLogger("rushgate.test").info("seats %s", "left", extra={"section": "ART100-01"})
    logs.get("rushgate.test").warning("room paused", room="2026-spring")
    logging.getLogger("rushgate.test").debug("below the level")
    token = logs.request_id.set("req-12345678")
    try:
        try:
            raise ValueError("boom")
        except ValueError:
            logging.getLogger("rushgate.test").exception("it failed")
    finally:
        logs.request_id.reset(token)
    first, second, third = _lines(stream.getvalue())
    for record in (first, second, third):
        assert record["service"] == "rushgate"
        assert record["node"] == "node-7"
        assert record["logger"] == "rushgate.test"
        assert record["timestamp"].endswith("Z")
    assert first["event"] == "seats left"
    assert first["level"] == "info"
    assert first["section"] == "ART100-01"
    assert "request_id" not in first  # outside a request
    assert second["event"] == "room paused"
    assert second["room"] == "2026-spring"
    assert second["level"] == "warning"
    assert third["request_id"] == "req-12345678"
    assert third["level"] == "error"
    assert "Traceback (most recent call last)" in third["exception"]
    assert "ValueError: boom" in third["exception"]


def test_a_request_id_from_outside_is_taken_only_when_well_formed() -> None:
    assert logs.accept_request_id(b"0123456789abcdef0123456789abcdef") == (
        "0123456789abcdef0123456789abcdef"
    )
    for hostile in (b"a\nfake log line", b"short", b"x" * 129, "ü".encode() * 10, None):
        made = logs.accept_request_id(hostile)
        assert len(made) == 32, hostile
        assert int(made, 16) >= 0, hostile


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    workdir = tmp_path_factory.mktemp("logging")
    config = ServerConfig(
        log_dir=workdir,
        data_dir=workdir / "data",
        workers=1,
        redis_url=None,
        database_url=None,
        secret_key=None,
        extra_env={"RUSHGATE_LOG_FORMAT": "json", "RUSHGATE_NODE_NAME": "web-1"},
    )
    with ServerProcess(config) as server:
        yield server


def _access_lines(
    node: ServerProcess, request_id: str, timeout: float = 5.0
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        found = [
            line
            for line in _lines(node.log_text())
            if line.get("logger") == logs.ACCESS_LOGGER and line.get("request_id") == request_id
        ]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_the_access_line_carries_the_proxys_request_id(node: ServerProcess) -> None:
    request_id = "f" * 32
    with httpx.Client(base_url=node.base_url) as client:
        response = client.get("/api/v1/terms/demo/sections", headers={"X-Request-ID": request_id})
    assert response.headers["x-request-id"] == request_id
    (line,) = _access_lines(node, request_id)
    assert line["event"] == "request"
    assert line["route"] == "/api/v1/terms/{term}/sections"
    assert line["method"] == "GET"
    assert line["status"] == response.status_code
    assert isinstance(line["duration_ms"], float | int)
    assert line["duration_ms"] >= 0
    assert line["node"] == "web-1"
    assert line["level"] == "info"


def test_without_a_request_id_the_node_makes_one_and_returns_it(node: ServerProcess) -> None:
    with httpx.Client(base_url=node.base_url) as client:
        response = client.get("/healthz", headers={"X-Request-ID": "bad id; DROP"})
    made = response.headers["x-request-id"]
    assert made != "bad id; DROP"
    assert len(made) == 32
    assert _access_lines(node, made)


def test_no_personal_data_reaches_the_log(node: ServerProcess) -> None:
    request_id = "a" * 32
    with httpx.Client(base_url=node.base_url) as client:
        client.post(
            "/api/v1/auth/token?hint=kim.minji@example.ac.kr",
            json={"username": "kim.minji@example.ac.kr", "password": "hunter2-secret"},
            headers={"X-Request-ID": request_id},
        )
    (line,) = _access_lines(node, request_id)
    assert line["status"] == 401
    text = node.log_text()
    assert "kim.minji" not in text
    assert "hunter2" not in text


def test_every_line_is_json(node: ServerProcess, tmp_path: Path) -> None:
    # uvicorn's own records too ("Started server process", "Application startup complete").
    lines = [line for line in node.log_text().splitlines() if line.strip()]
    server_lines = [
        line for line in lines if not line.startswith(("rushgate on", "seeded", "demo "))
    ]
    records = [json.loads(line) for line in server_lines if line.startswith("{")]
    assert any(r["logger"].startswith("uvicorn") for r in records)
    not_json = [line for line in server_lines if not line.startswith("{")]
    assert not not_json, not_json[:5]
