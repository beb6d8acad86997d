"""SIGTERM on a real node: readiness fails at once, SSE streams end so their clients
reconnect elsewhere, requests are still served during the drain, then a clean exit."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.serverproc import DEFAULT_ADMIN, ServerConfig, ServerProcess
from tests.support import redis_reachable, require_service

pytestmark = [pytest.mark.slow, pytest.mark.redis]

DRAIN_SECONDS = 2.0


async def token(http: httpx.AsyncClient, username: str, password: str) -> dict[str, str]:
    r = await http.post("/api/v1/auth/token", json={"username": username, "password": password})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


async def test_sigterm_fails_readiness_ends_streams_and_exits_cleanly(tmp_path: Path) -> None:
    reason = await redis_reachable()
    if reason is not None:
        require_service("Redis", reason)
    config = ServerConfig(
        log_dir=tmp_path,
        workers=1,
        extra_env={"RUSHGATE_SHUTDOWN_DRAIN_SECONDS": str(DRAIN_SECONDS)},
    )
    server = await ServerProcess(config).astart()
    try:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as http:
            admin = await token(http, *DEFAULT_ADMIN)
            now = datetime.now(UTC)
            term = {
                "code": "drain",
                "name": "Drain",
                "opens_at": (now - timedelta(minutes=1)).isoformat(),
                "closes_at": (now + timedelta(hours=1)).isoformat(),
                "waiting_room": {"enabled": True, "admit_per_second": 1, "max_active": 1},
            }
            assert (await http.post("/api/v1/admin/terms", json=term, headers=admin)).is_success
            students = [
                {
                    "student_id": f"d{n}",
                    "name": f"D {n}",
                    "email": f"d{n}@drain.test",
                    "password": "drain-password",
                    "class_year": 1,
                    "max_credits": 20,
                }
                for n in (1, 2)
            ]
            r = await http.post("/api/v1/admin/students", json=students, headers=admin)
            assert r.status_code == 201, r.text
            first = await token(http, "d1", "drain-password")
            second = await token(http, "d2", "drain-password")
            assert (await http.post("/api/v1/queue/drain/join", headers=first)).is_success
            joined = await http.post("/api/v1/queue/drain/join", headers=second)
            assert joined.json()["state"] == "waiting"  # at most one admitted at a time

            async with http.stream(
                "GET", "/api/v1/queue/drain/stream", headers=second, timeout=None
            ) as stream:
                lines = stream.aiter_lines()
                while not (await asyncio.wait_for(anext(lines), 5)).startswith("data: "):
                    pass  # the first status event: the stream is live
                pid = server.pid
                assert pid is not None
                signalled = time.monotonic()
                os.kill(pid, signal.SIGTERM)
                await asyncio.sleep(0.2)
                ready = await http.get("/readyz")
                assert ready.status_code == 503
                assert ready.json()["code"] == "draining"
                # still serving while draining, but no connection is kept for reuse
                during = await http.get("/healthz")
                assert during.status_code == 200
                assert during.headers["connection"] == "close"
                status = await http.get("/api/v1/queue/drain/status", headers=second)
                assert status.status_code == 200
                async with asyncio.timeout(3):
                    async for _ in lines:
                        pass  # the stream ends by itself
                ended = time.monotonic() - signalled
        deadline = time.monotonic() + DRAIN_SECONDS + 10
        while server.returncode is None and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        # uvicorn re-raises the SIGTERM it deferred once shutdown is complete.
        log = server.log_path.read_text()
        assert server.returncode in (0, -signal.SIGTERM), log[-2000:]
        assert "Application shutdown complete" in log
        assert ended < DRAIN_SECONDS  # streams do not wait for the drain to end
    finally:
        await server.astop()
