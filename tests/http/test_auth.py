"""Tokens, 401s and 403s."""

from __future__ import annotations

from datetime import timedelta

import httpx
import jwt
import pytest

from rushgate.domain.clock import FixedClock
from tests.http.api import ADMIN, Api, assert_problem, bearer, term_json
from tests.support import SECRET


async def test_token(api: Api) -> None:
    r = await api.login(*ADMIN)
    assert r.status_code == 200
    body = r.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 4 * 3600
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["role"] == "admin"


@pytest.mark.parametrize("username", ["admin", "nobody"])
async def test_wrong_password_or_unknown_user(api: Api, username: str) -> None:
    r = await api.login(username, "wrong-password")
    body = assert_problem(r, 401, "invalid_credentials")
    assert r.headers["www-authenticate"] == "Bearer"
    # The same answer either way: no hint which usernames exist.
    assert body["detail"] == "wrong username or password"


@pytest.mark.parametrize(
    "body",
    [
        {"username": "admin"},
        {"username": "admin", "password": ""},
        {"username": "", "password": "x"},
    ],
)
async def test_token_request_validation(api: Api, body: dict[str, str]) -> None:
    assert_problem(await api.client.post("/api/v1/auth/token", json=body), 422, "validation_error")


PROTECTED = [
    ("GET", "/api/v1/terms"),
    ("POST", "/api/v1/terms/2026-spring/enrollments"),
    ("DELETE", "/api/v1/terms/2026-spring/enrollments/CS101-01"),
    ("GET", "/api/v1/terms/2026-spring/enrollments/me"),
    ("POST", "/api/v1/admin/terms"),
    ("POST", "/api/v1/admin/students"),
    ("GET", "/api/v1/admin/terms/2026-spring/sections/CS101-01/roster"),
]


@pytest.mark.parametrize(("method", "path"), PROTECTED)
async def test_missing_token(client: httpx.AsyncClient, method: str, path: str) -> None:
    json = {"section_id": "CS101-01"} if method == "POST" else None
    r = await client.request(method, path, json=json)
    assert_problem(r, 401, "unauthorized")
    assert r.headers["www-authenticate"] == "Bearer"


async def test_other_scheme_is_unauthorized(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/v1/terms", headers={"Authorization": "Basic YWRtaW46eA=="})
    assert_problem(r, 401, "unauthorized")


def forge(claims: dict[str, object], secret: str = "another-secret-that-is-long-enough-000") -> str:
    return jwt.encode(claims, secret, algorithm="HS256")


async def test_bad_tokens(api: Api) -> None:
    token = (await api.login(*ADMIN)).json()["access_token"]
    claims = jwt.decode(token, options={"verify_signature": False})
    bad = {
        "garbage": "not-a-jwt",
        "forged": forge(claims),
        "tampered": token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB"),
        "no-aud": forge({k: v for k, v in claims.items() if k != "aud"}, SECRET),
        "wrong-aud": forge({**claims, "aud": "someone-else"}, SECRET),
        "alg-none": jwt.encode(claims, None, algorithm="none"),
        "bad-sub": forge({**claims, "sub": "abc"}, SECRET),
    }
    for name, value in bad.items():
        r = await api.client.get("/api/v1/terms", headers=bearer(value))
        assert_problem(r, 401, "invalid_credentials")
        assert r.headers["www-authenticate"] == "Bearer", name
    # The real one still works.
    assert (await api.client.get("/api/v1/terms", headers=bearer(token))).status_code == 200


async def test_expired_token(api: Api, clock: FixedClock) -> None:
    headers = await api.admin()
    assert (await api.client.get("/api/v1/terms", headers=headers)).status_code == 200
    clock.set(clock.now() + timedelta(hours=4))
    r = await api.client.get("/api/v1/terms", headers=headers)
    assert_problem(r, 401, "invalid_credentials")


async def test_student_cannot_use_admin_endpoints(seeded: Api) -> None:
    client, student = seeded.client, await seeded.headers("s1")
    calls = [
        client.post("/api/v1/admin/terms", json=term_json("x"), headers=student),
        client.post("/api/v1/admin/terms/2026-spring/sections", json=[], headers=student),
        client.post("/api/v1/admin/students", json=[], headers=student),
        client.get("/api/v1/admin/terms/2026-spring/sections/CS101-01/roster", headers=student),
    ]
    for call in calls:
        assert_problem(await call, 403, "forbidden")
    assert [t["code"] for t in (await client.get("/api/v1/terms", headers=student)).json()] == [
        "2026-spring"
    ]


async def test_admin_cannot_enroll(seeded: Api) -> None:
    client, admin = seeded.client, await seeded.admin()
    base = "/api/v1/terms/2026-spring/enrollments"
    assert_problem(
        await client.post(base, json={"section_id": "CS101-01"}, headers=admin), 403, "forbidden"
    )
    assert_problem(await client.delete(f"{base}/CS101-01", headers=admin), 403, "forbidden")
    assert_problem(await client.get(f"{base}/me", headers=admin), 403, "forbidden")
    assert (await seeded.sections())["CS101-01"]["enrolled"] == 0


async def test_student_logs_in_with_own_password(seeded: Api) -> None:
    assert_problem(await seeded.login("s1", "admin-password"), 401, "invalid_credentials")
    r = await seeded.login("s1", "password-123")
    claims = jwt.decode(r.json()["access_token"], options={"verify_signature": False})
    assert (claims["role"], claims["name"]) == ("student", "s1")


async def test_student_role_without_student_id_is_forbidden(seeded: Api) -> None:
    token = (await seeded.login("s1", "password-123")).json()["access_token"]
    claims = jwt.decode(token, options={"verify_signature": False})
    del claims["sid"]
    r = await seeded.client.get(
        "/api/v1/terms/2026-spring/enrollments/me", headers=bearer(forge(claims, SECRET))
    )
    assert_problem(r, 403, "forbidden")
