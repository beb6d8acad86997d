"""Rate limits, client addresses behind trusted proxies, and the country rule, through the
real app over ASGI (the peer address is the ASGI ``client``, as a server would set it).

Budgets are scaled down (``rate_limit_scale``) so a handful of requests exhausts them."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from prometheus_client import REGISTRY

from rushgate.config import Settings
from rushgate.domain.clock import FixedClock
from rushgate.http.app import create_app
from rushgate.http.limits import GUARDED_ROUTES
from rushgate.http.pages import applicant as applicant_pages
from rushgate.http.pages import routes as shared_pages
from tests.adapters.mmdb_writer import write_country_mmdb
from tests.http.api import Api, section_json, student_json, term_json
from tests.inprocess_server import serving
from tests.support import SECRET, T0, closed_port

# Login: 300 at once, 30/s by default; scaled by 0.01: 3 at once, one per 3.3 s.
SCALE = 0.01
OUTSIDER = "203.0.113.7"  # not a trusted proxy, not exempt


def settings_for(sqlite_url: str, tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": sqlite_url,
        "secret_key": SECRET,
        "password_hash_cost": "low",
        "data_dir": tmp_path / "data",
        "rate_limit_scale": SCALE,
        **overrides,
    }
    return Settings(**values)


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[FastAPI]:
    app = create_app(settings, clock=FixedClock(T0 + timedelta(minutes=30)))
    await app.state.container.registry.ensure_admin("admin", "admin-password")
    try:
        yield app
    finally:
        await app.state.container.close()


Peer = Callable[[str], httpx.AsyncClient]


@pytest.fixture
async def app(sqlite_url: str, tmp_path: Path) -> AsyncIterator[FastAPI]:
    async with running(settings_for(sqlite_url, tmp_path)) as app:
        yield app


@pytest.fixture
async def peer(app: FastAPI) -> AsyncIterator[Peer]:
    """``peer(address)``: a client whose connections come from ``address``."""
    clients: list[httpx.AsyncClient] = []

    def make(address: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app, client=(address, 40000))
        client = httpx.AsyncClient(transport=transport, base_url="http://rushgate.test")
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


_attempts = itertools.count()


async def bad_login(client: httpx.AsyncClient, **headers: str) -> int:
    """A failed login, each for another username (so the login guard's per-account
    counts stay out of the way: this budget counts attempts per address)."""
    r = await client.post(
        "/api/v1/auth/token",
        json={"username": f"nobody{next(_attempts)}", "password": "wrong"},
        headers=headers,
    )
    return r.status_code


def counter(name: str, budget: str) -> float:
    return REGISTRY.get_sample_value(name, {"budget": budget}) or 0.0


async def test_login_attempts_are_limited_per_address(peer: Peer) -> None:
    client = peer(OUTSIDER)
    before = counter("rushgate_rate_limited_total", "login")
    assert [await bad_login(client) for _ in range(3)] == [401, 401, 401]
    r = await client.post("/api/v1/auth/token", json={"username": "x", "password": "y"})
    assert r.status_code == 429
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["code"] == "rate_limited"
    assert body["budget"] == "login"
    assert 0 < body["retry_after"] <= 1 / (30 * SCALE)
    assert r.headers["retry-after"] == "4"  # 3.33 s, rounded up
    assert counter("rushgate_rate_limited_total", "login") == before + 1
    # The refusal is counted under its route, not as "unmatched".
    labels = {"route": "/api/v1/auth/token", "method": "POST", "status": "429"}
    assert (REGISTRY.get_sample_value("rushgate_http_requests_total", labels) or 0) >= 1
    # Another address has a budget of its own.
    assert await bad_login(peer("198.51.100.20")) == 401


async def test_a_spoofed_forwarded_for_from_an_untrusted_peer_changes_nothing(
    peer: Peer,
) -> None:
    client = peer(OUTSIDER)
    statuses = [
        await bad_login(client, **{"X-Forwarded-For": f"10.9.8.{n}", "X-Real-IP": f"10.7.{n}.1"})
        for n in range(5)
    ]
    assert statuses == [401, 401, 401, 429, 429]


async def test_through_a_trusted_proxy_the_forwarded_client_is_the_key(peer: Peer) -> None:
    proxy = peer("127.0.0.1")  # the default trusted proxy (nginx on loopback)
    for _ in range(3):
        assert await bad_login(proxy, **{"X-Forwarded-For": OUTSIDER}) == 401
    assert await bad_login(proxy, **{"X-Forwarded-For": OUTSIDER}) == 429
    # The same proxy forwarding another client: a separate budget.
    assert await bad_login(proxy, **{"X-Forwarded-For": "198.51.100.30"}) == 401
    # X-Real-IP alone (nginx sets both) names the client too.
    assert await bad_login(proxy, **{"X-Real-IP": OUTSIDER}) == 429
    # A client-written prefix left of the proxy's entry is never read.
    spoofed = f"1.1.1.1, 2.2.2.2, {OUTSIDER}"
    assert await bad_login(proxy, **{"X-Forwarded-For": spoofed}) == 429


async def test_the_loopback_is_exempt_by_default(peer: Peer) -> None:
    local = peer("127.0.0.1")
    assert {await bad_login(local) for _ in range(10)} == {401}


async def test_sign_up_is_limited_per_address(peer: Peer) -> None:
    client = peer(OUTSIDER)

    async def sign_up(n: int) -> int:
        r = await client.post(
            "/api/v1/applicants",
            json={"email": f"a{n}@example.test", "password": "password-123", "name": "A"},
        )
        return r.status_code

    assert [await sign_up(n) for n in range(2)] == [201, 429]  # burst 100 x 0.01 = 1


@pytest.fixture
async def seeded(peer: Peer) -> Api:
    api = Api(peer("127.0.0.1"))
    assert (await api.create_term(term_json())).status_code == 201
    sections = [section_json(f"S{n}-01", capacity=5, meetings=[]) for n in range(1, 5)]
    assert (await api.create_sections(sections)).status_code == 201
    students = [student_json("s1"), student_json("s2")]
    assert (await api.create_students(students)).status_code == 201
    return api


async def test_enroll_is_limited_per_account_whatever_the_address(seeded: Api, peer: Peer) -> None:
    headers = await seeded.headers("s1")
    path = "/api/v1/terms/2026-spring/enrollments"
    first = await peer("198.51.100.1").post(path, json={"section_id": "S1-01"}, headers=headers)
    assert first.status_code == 201, first.text
    # Account budget: 20 x 0.01 -> 1 at once. From another address, the same account.
    second = await peer("198.51.100.2").post(path, json={"section_id": "S2-01"}, headers=headers)
    assert second.status_code == 429
    assert "account" in second.json()["detail"]
    drop = await peer("198.51.100.3").delete(f"{path}/S1-01", headers=headers)
    assert drop.status_code == 429  # drop spends the same budget
    # From an exempt address (this machine's own tools) no budget applies.
    local = await peer("127.0.0.1").post(path, json={"section_id": "S3-01"}, headers=headers)
    assert local.status_code == 201, local.text
    # Another student from the first address is not affected.
    other = await peer("198.51.100.1").post(
        path, json={"section_id": "S2-01"}, headers=await seeded.headers("s2")
    )
    assert other.status_code == 201, other.text


async def test_a_forged_token_spends_no_account_budget(seeded: Api, peer: Peer) -> None:
    headers = await seeded.headers("s1")
    real = headers["Authorization"]
    forged = {"Authorization": real[:-4] + ("AAAA" if not real.endswith("AAAA") else "BBBB")}
    path = "/api/v1/terms/2026-spring/enrollments"
    for n in range(3):
        client = peer(f"198.51.100.{10 + n}")
        r = await client.post(path, json={"section_id": "S1-01"}, headers=forged)
        assert r.status_code == 401
    # s1's own budget is untouched by the forgeries.
    r = await peer("198.51.100.20").post(path, json={"section_id": "S1-01"}, headers=headers)
    assert r.status_code == 201, r.text


async def test_every_guarded_template_is_a_real_route(app: FastAPI) -> None:
    routes = {
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        for method in operations
    }
    # The page forms guarded like their API routes: login, sign-up, asking a question.
    pages = {
        (method, route.path)
        for router in (shared_pages.router, applicant_pages.router)
        for route in router.routes
        if isinstance(route, APIRoute)
        for method in route.methods
    }
    assert ("POST", "/login") in pages
    assert set(GUARDED_ROUTES) <= routes | pages


async def test_rate_limits_can_be_switched_off(sqlite_url: str, tmp_path: Path) -> None:
    async with running(settings_for(sqlite_url, tmp_path, rate_limits=False)) as app:
        transport = httpx.ASGITransport(app=app, client=(OUTSIDER, 1))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            assert {await bad_login(client) for _ in range(10)} == {401}


async def test_a_redis_outage_fails_open(sqlite_url: str, tmp_path: Path) -> None:
    settings = settings_for(sqlite_url, tmp_path, redis_url=f"redis://127.0.0.1:{closed_port()}/0")
    before = counter("rushgate_rate_limit_fail_open_total", "login")
    async with running(settings) as app:
        transport = httpx.ASGITransport(app=app, client=(OUTSIDER, 1))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            r = await client.post(
                "/api/v1/auth/token", json={"username": "admin", "password": "admin-password"}
            )
            assert r.status_code == 200, r.text
            assert {await bad_login(client) for _ in range(5)} == {401}  # never 429
    assert counter("rushgate_rate_limit_fail_open_total", "login") == before + 6


# --- country rule ------------------------------------------------------------------------


@pytest.fixture
async def korea_only(sqlite_url: str, tmp_path: Path) -> AsyncIterator[FastAPI]:
    async with running(settings_for(sqlite_url, tmp_path, allowed_countries="kr")) as app:
        yield app


def client_of(app: FastAPI, address: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(address, 1))
    return httpx.AsyncClient(transport=transport, base_url="http://t")


async def test_the_country_header_is_believed_only_from_a_trusted_proxy(
    korea_only: FastAPI,
) -> None:
    async with client_of(korea_only, OUTSIDER) as direct:
        r = await direct.post(
            "/api/v1/auth/token",
            json={"username": "nobody", "password": "x"},
            headers={"CF-IPCountry": "KR"},
        )
        assert r.status_code == 403
        assert r.json()["code"] == "country_not_allowed"
        assert "unknown country" in r.json()["detail"]
        assert "KR" in r.json()["detail"]
    async with client_of(korea_only, "127.0.0.1") as proxy:
        via = {"X-Forwarded-For": OUTSIDER}
        assert await bad_login(proxy, **via, **{"CF-IPCountry": "KR"}) == 401  # let in
        r = await proxy.post(
            "/api/v1/auth/token",
            json={"username": "nobody", "password": "x"},
            headers={**via, "CF-IPCountry": "US"},
        )
        assert r.status_code == 403
        assert r.json()["country"] == "US"
        for unknown in ("XX", "T1", "", "Korea"):
            assert await bad_login(proxy, **via, **{"CF-IPCountry": unknown}) == 403
        assert await bad_login(proxy, **via) == 403  # no header: unknown, refused
        # Routes the rule does not guard stay open.
        assert (await proxy.get("/healthz")).status_code == 200


async def test_countries_from_a_geoip_database(sqlite_url: str, tmp_path: Path) -> None:
    database = write_country_mmdb(
        tmp_path / "countries.mmdb", {"203.0.113.0/24": "KR", "198.51.100.0/24": "US"}
    )
    settings = settings_for(
        sqlite_url, tmp_path, allowed_countries="KR", geoip_db=database, country_header=""
    )
    async with running(settings) as app:
        async with client_of(app, "203.0.113.50") as korean:
            assert await bad_login(korean) == 401
        async with client_of(app, "198.51.100.50") as american:
            assert await bad_login(american) == 403
        async with client_of(app, "192.0.2.1") as unlisted:
            assert await bad_login(unlisted) == 403
        async with client_of(app, "127.0.0.1") as proxy:
            # Through the proxy, the forwarded address is looked up; a header is ignored
            # here because none is configured.
            assert await bad_login(proxy, **{"X-Forwarded-For": "203.0.113.9"}) == 401
            assert (
                await bad_login(proxy, **{"X-Forwarded-For": "198.51.100.9", "CF-IPCountry": "KR"})
                == 403
            )


def test_settings_refuse_bad_lists(sqlite_url: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="TRUSTED_PROXIES"):
        settings_for(sqlite_url, tmp_path, trusted_proxies="10.0.0.0/8, nginx")
    with pytest.raises(ValueError, match="ALLOWED_COUNTRIES"):
        settings_for(sqlite_url, tmp_path, allowed_countries="KR,Korea")
    with pytest.raises(ValueError, match="GEOIP_DB"):
        settings_for(sqlite_url, tmp_path, geoip_db=tmp_path / "missing.mmdb")
    ok = settings_for(sqlite_url, tmp_path, trusted_proxies="", allowed_countries="kr, jp")
    assert ok.trusted_proxy_networks == ()
    assert ok.allowed_country_codes == {"KR", "JP"}


# --- real sockets: peers on other loopback addresses ---------------------------------------


def test_peer_addresses_over_real_connections(sqlite_url: str, tmp_path: Path) -> None:
    """uvicorn on 127.0.0.1; clients connect from 127.0.0.2 (an outsider) and from
    127.0.0.1 (the trusted proxy). Nothing exempt, so loopback peers are limited too."""
    settings = settings_for(sqlite_url, tmp_path, trusted_proxies="127.0.0.1", rate_limit_exempt="")
    app = create_app(settings, clock=FixedClock(T0 + timedelta(minutes=30)))

    def login(client: httpx.Client, **headers: str) -> int:
        r = client.post(
            "/api/v1/auth/token",
            json={"username": f"nobody{next(_attempts)}", "password": "wrong"},
            headers=headers,
        )
        return r.status_code

    def connected_from(address: str, url: str) -> httpx.Client:
        transport = httpx.HTTPTransport(local_address=address)
        return httpx.Client(base_url=url, transport=transport, timeout=10, trust_env=False)

    with serving(app) as url:
        with connected_from("127.0.0.2", url) as outsider:
            spoofs = [{"X-Forwarded-For": f"198.51.100.{n}"} for n in range(5)]
            assert [login(outsider, **h) for h in spoofs] == [401, 401, 401, 429, 429]
        with connected_from("127.0.0.1", url) as proxy:
            # The proxy forwarding 127.0.0.2: the same, spent, budget.
            assert login(proxy, **{"X-Forwarded-For": "127.0.0.2"}) == 429
            # Forwarding other clients: budgets of their own.
            assert login(proxy, **{"X-Forwarded-For": "198.51.100.1"}) == 401
            assert login(proxy, **{"X-Real-IP": "198.51.100.2"}) == 401
        with connected_from("127.0.0.3", url) as another:
            assert login(another) == 401


async def test_a_session_cookie_names_the_account_too(seeded: Api, peer: Peer) -> None:
    token = (await seeded.headers("s1"))["Authorization"].removeprefix("Bearer ")
    path = "/api/v1/terms/2026-spring/enrollments"
    cookie = {"Cookie": f"theme=dark; rg_session={token}"}
    first = await peer("198.51.100.41").post(path, json={"section_id": "S1-01"}, headers=cookie)
    assert first.status_code != 429  # the route decides (its CSRF rule), budget spent
    second = await peer("198.51.100.42").post(path, json={"section_id": "S1-01"}, headers=cookie)
    assert second.status_code == 429
    assert "account" in second.json()["detail"]


async def test_a_browser_refused_by_the_country_rule_gets_a_page_saying_why(
    korea_only: FastAPI,
) -> None:
    async with client_of(korea_only, "127.0.0.1") as proxy:
        via = {"X-Forwarded-For": OUTSIDER, "CF-IPCountry": "US"}
        page = await proxy.post(
            "/api/v1/auth/token",
            json={"username": "nobody", "password": "x"},
            headers={**via, "Accept": "text/html,application/xhtml+xml,*/*;q=0.8"},
        )
        assert page.status_code == 403
        assert page.headers["content-type"].startswith("text/html")
        assert "<title>" in page.text
        assert "<main>" in page.text
        assert "이 지역에서는 이용할 수 없습니다" in page.text
        assert "open only to connections from KR" in page.text
        assert "appears to come from\nUS" in page.text
        # A script (or API client) asking for JSON still gets the problem.
        problem = await proxy.post(
            "/api/v1/auth/token",
            json={"username": "nobody", "password": "x"},
            headers={**via, "Accept": "application/json"},
        )
        assert problem.headers["content-type"] == "application/problem+json"
        body = problem.json()
        assert (body["code"], body["country"], body["allowed"]) == (
            "country_not_allowed",
            "US",
            ["KR"],
        )
