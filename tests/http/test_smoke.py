from __future__ import annotations

import httpx


async def admin_token(client: httpx.AsyncClient) -> str:
    r = await client.post(
        "/api/v1/auth/token", json={"username": "admin", "password": "admin-password"}
    )
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


async def test_health_and_readiness(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    r = await client.get("/readyz")
    assert r.status_code == 200
    assert r.json()["checks"]["database"] == "ok"


async def test_admin_login_and_wrong_password(client: httpx.AsyncClient) -> None:
    assert await admin_token(client)
    r = await client.post("/api/v1/auth/token", json={"username": "admin", "password": "nope"})
    assert r.status_code == 401
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == "invalid_credentials"
