"""Apps with a bot challenge configured, reached from chosen client addresses, and a
client that solves what it is asked."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI

from rushgate.adapters.challenge.pow import solve
from rushgate.composition import Container
from rushgate.config import Settings
from rushgate.domain.clock import Clock
from rushgate.http.app import create_app

HEADER = "X-Rushgate-Challenge"
STUDENT_IP = "198.51.100.20"
ATTACKER_IP = "203.0.113.66"


class Node:
    """One app instance (a node) and clients for it from any address."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self._clients: list[httpx.AsyncClient] = []

    @property
    def container(self) -> Container:
        node: Container = self.app.state.container
        return node

    def client(self, ip: str = STUDENT_IP) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=self.app, client=(ip, 50_000))
        client = httpx.AsyncClient(transport=transport, base_url="http://rushgate.test")
        self._clients.append(client)
        return client

    async def close(self) -> None:
        for client in self._clients:
            await client.aclose()
        await self.container.close()


@asynccontextmanager
async def node(settings: Settings, clock: Clock, **changes: Any) -> AsyncIterator[Node]:
    # Validated again (secrets become SecretStr, the challenge settings are checked).
    app = create_app(Settings(**{**settings.model_dump(), **changes}), clock=clock)
    await app.state.container.registry.ensure_admin("admin", "admin-password")
    running = Node(app)
    try:
        yield running
    finally:
        await running.close()


def pow_answer(challenge: dict[str, Any]) -> str:
    """Solve a proof-of-work spec (from GET /api/v1/challenge or a problem body)."""
    assert challenge["kind"] == "pow", challenge
    params = challenge["params"]
    nonce = solve(params["challenge"], params["difficulty"])
    digest = hashlib.sha256(f"{params['challenge']}{nonce}".encode()).digest()
    assert int.from_bytes(digest, "big") >> (256 - params["difficulty"]) == 0
    return f"{params['puzzle']}.{nonce}"


async def fresh_pow(client: httpx.AsyncClient, action: str) -> str:
    r = await client.get("/api/v1/challenge", params={"action": action})
    assert r.status_code == 200, r.text
    return pow_answer(r.json())
