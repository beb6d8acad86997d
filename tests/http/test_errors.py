"""Bad input is refused with a problem+json 4xx, never a 500; unknown routes and methods too."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from rushgate.adapters.security import JwtSigner
from rushgate.config import Settings
from rushgate.domain.clock import SystemClock
from rushgate.http.app import create_app
from rushgate.services.ports.auth import Principal
from tests.http.api import TERM, Api, assert_not_server_error, assert_problem, section_json
from tests.support import SECRET, closed_port

LIMIT = 256 * 1024  # the `settings` fixture's max_body_bytes
ENROLL = f"/api/v1/terms/{TERM}/enrollments"


@pytest.mark.parametrize(
    "raw",
    [
        b"{",
        b'{"section_id": "CS101-01",}',
        b"\xff\xfe",
        b'{"section_id": "\xe9"}',  # not UTF-8
        b"\xa4-\xd9\x97",
        b"nul\x00l",
        b'{"a": NaN',
    ],
)
async def test_malformed_json(seeded: Api, raw: bytes) -> None:
    headers = {**await seeded.headers("s1"), "Content-Type": "application/json"}
    r = await seeded.client.post(ENROLL, content=raw, headers=headers)
    assert_problem(r, 400, "malformed_json")


async def test_malformed_json_on_login(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/api/v1/auth/token", content=b'{"username": ', headers={"Content-Type": "application/json"}
    )
    assert_problem(r, 400, "malformed_json")


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"section_id": 12},
        {"section_id": None},
        {"section_id": ["CS101-01"]},
        {"section_id": "CS101-01", "extra": True},
        {"section_id": ""},
        {"section_id": "has space"},
        {"section_id": "x" * 65},
        ["CS101-01"],
        "CS101-01",
        None,
        17,
    ],
)
async def test_validation_errors(seeded: Api, body: Any) -> None:
    r = await seeded.client.post(ENROLL, json=body, headers=await seeded.headers("s1"))
    problem = assert_problem(r, 422, "validation_error")
    assert problem["errors"]
    assert all({"loc", "msg", "type"} <= set(e) for e in problem["errors"])
    assert (await seeded.sections())["CS101-01"]["enrolled"] == 0


async def test_no_body_at_all(seeded: Api) -> None:
    r = await seeded.client.post(ENROLL, headers=await seeded.headers("s1"))
    assert_problem(r, 422, "validation_error")


async def test_non_json_content_type(seeded: Api) -> None:
    r = await seeded.client.post(
        ENROLL,
        content=b"section_id=CS101-01",
        headers={**await seeded.headers("s1"), "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert 400 <= r.status_code < 500
    assert_not_server_error(r)


async def test_body_over_limit_with_content_length(seeded: Api) -> None:
    big = [section_json(f"S{n:05d}-01", title="x" * 200) for n in range(1200)]
    r = await seeded.create_sections(big)
    assert int(r.request.headers["content-length"]) > LIMIT
    assert_problem(r, 413, "payload_too_large")
    assert "CS101-01" in await seeded.sections()
    assert len(await seeded.sections()) == 5, "nothing of the refused batch was written"


async def test_body_just_under_limit_is_read(seeded: Api) -> None:
    body = b'{"section_id": "CS101-01"' + b" " * (LIMIT - 40) + b"}"
    assert len(body) <= LIMIT
    headers = {**await seeded.headers("s1"), "Content-Type": "application/json"}
    r = await seeded.client.post(ENROLL, content=body, headers=headers)
    assert r.status_code == 201, r.text


async def test_body_over_limit_when_chunked(seeded: Api) -> None:
    chunk = b" " * 16384

    async def stream() -> AsyncIterator[bytes]:
        yield b'{"section_id": "CS101-01"'
        for _ in range(LIMIT // len(chunk) + 2):
            yield chunk
        yield b"}"

    headers = {**await seeded.headers("s1"), "Content-Type": "application/json"}
    r = await seeded.client.post(ENROLL, content=stream(), headers=headers)
    assert "content-length" not in r.request.headers
    assert r.request.headers["transfer-encoding"] == "chunked"
    assert_problem(r, 413, "payload_too_large")
    assert (await seeded.sections())["CS101-01"]["enrolled"] == 0


async def test_lying_content_length_is_refused(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/api/v1/auth/token",
        content=b"{}",
        headers={"Content-Type": "application/json", "Content-Length": "not-a-number"},
    )
    assert_problem(r, 413, "payload_too_large")


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/nope"), ("GET", "/api/v1/nope"), ("POST", "/api/v1/admin/terms/x/y/z")],
)
async def test_unknown_route(client: httpx.AsyncClient, method: str, path: str) -> None:
    assert_problem(await client.request(method, path), 404, "not_found")


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("GET", "/api/v1/auth/token", "POST"),
        ("PUT", "/api/v1/terms", "GET"),
        ("DELETE", "/healthz", "GET"),
    ],
)
async def test_wrong_method(
    client: httpx.AsyncClient, method: str, path: str, allowed: str
) -> None:
    r = await client.request(method, path)
    assert_problem(r, 405, "method_not_allowed")
    assert allowed in r.headers["allow"]


async def test_openapi_document(client: httpx.AsyncClient) -> None:
    r = await client.get("/openapi.json")
    assert r.status_code == 200
    doc = r.json()
    assert doc["openapi"].startswith("3.")
    assert doc["info"]["title"] == "rushgate"
    paths = doc["paths"]
    assert "post" in paths["/api/v1/terms/{term}/enrollments"]
    assert "delete" in paths["/api/v1/terms/{term}/enrollments/{section_id}"]
    assert "post" in paths["/api/v1/auth/token"]
    assert "post" in paths["/api/v1/admin/students"]
    enroll = paths["/api/v1/terms/{term}/enrollments"]["post"]
    assert {p["name"] for p in enroll["parameters"]} >= {"Idempotency-Key", "X-Admission-Token"}
    either = [{"bearer": []}, {"session": []}]
    assert enroll["security"] == either
    assert paths["/api/v1/queue/{term}/status"]["get"]["security"] == either
    assert "security" not in paths["/api/v1/auth/token"]["post"]
    assert "security" not in paths["/healthz"]["get"]
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    status = paths["/api/v1/queue/{term}/status"]["get"]["responses"]["200"]
    assert status["content"]["application/json"]["schema"]["$ref"].endswith("QueueStatusOut")


JUNK = [
    {"code": "x", "name": "y", "opens_at": "2026-13-45T99:00:00Z", "closes_at": "nope"},
    {"code": "x", "name": "y", "opens_at": "+275760-09-13T00:00:00Z", "closes_at": 10**30},
    {"code": "x" * 10_000, "name": "\u0000", "opens_at": None, "closes_at": []},
    {
        "code": "x",
        "name": "y",
        "opens_at": "2026-02-10T10:00:00Z",
        "closes_at": "2026-02-10T12:00:00Z",
        "class_year_opens_at": {"senior": "x"},
    },
    {
        "code": "x",
        "name": "y",
        "opens_at": "2026-02-10T10:00:00Z",
        "closes_at": "2026-02-10T12:00:00Z",
        "waiting_room": {"admit_per_second": 10**40},
    },
    {
        "code": "x",
        "name": "y",
        "opens_at": "2026-02-10T10:00:00Z",
        "closes_at": "9999-12-31T23:59:59+14:00",
    },
    [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]],
    {"code": "é", "name": "ü"},
]


@pytest.mark.parametrize("body", JUNK)
async def test_junk_terms_never_500(api: Api, body: Any) -> None:
    assert_not_server_error(await api.create_term(body))


@pytest.mark.parametrize(
    "item",
    [
        {**section_json("A-01"), "capacity": 10**20},
        {**section_json("A-01"), "credits": 1.5},
        {**section_json("A-01"), "meetings": [{"day": "MON", "start": "25:00", "end": "26:00"}]},
        {**section_json("A-01"), "meetings": [{"day": "MON", "start": "9", "end": "10"}]},
        {**section_json("A-01"), "meetings": [{"day": "MON", "start": "09:00"}] * 22},
        {**section_json("A-01"), "title": "t" * 100_000},
        {**section_json("A-01"), "section_id": "../../etc"},
    ],
)
async def test_junk_sections_never_500(seeded: Api, item: Any) -> None:
    r = await seeded.create_sections([item])
    assert_not_server_error(r)
    assert r.status_code != 201 or item["section_id"] in await seeded.sections()


async def test_an_unreachable_database_is_a_503_to_retry_never_a_500(tmp_path: Path) -> None:
    """A primary that refuses connections (restarting, failing over): every route that
    needs it answers 503 database_unavailable with Retry-After, so clients wait."""
    settings = Settings(
        database_url=f"postgresql://rushgate@127.0.0.1:{closed_port()}/rushgate",
        secret_key=SECRET,  # type: ignore[arg-type]
        password_hash_cost="low",
        data_dir=tmp_path,
        admin_username=None,
        admin_password=None,
    )
    app = create_app(settings)
    signer = JwtSigner(SECRET, SystemClock(), timedelta(minutes=5))
    token, _ = signer.issue(Principal(1, "s1", "student", 1))
    bearer = {"Authorization": f"Bearer {token}"}
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://rushgate.test") as c:
            answers = [
                await c.post("/api/v1/auth/token", json={"username": "s1", "password": "pw"}),
                await c.get(f"/api/v1/terms/{TERM}/sections", headers=bearer),
                await c.post(ENROLL, json={"section_id": "CS101-01"}, headers=bearer),
                await c.delete(f"{ENROLL}/CS101-01", headers=bearer),
                await c.get(f"{ENROLL}/me", headers=bearer),
            ]
    finally:
        await app.state.container.close()
    for r in answers:
        assert_problem(r, 503, "database_unavailable")
        assert r.headers["retry-after"] == "2"
