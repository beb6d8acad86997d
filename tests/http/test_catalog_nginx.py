"""The catalog through real nginx (the cluster's rendered configuration) in front of a
real app server: nginx keeps the pages the app lets it keep, and only those."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from rushgate.adapters.security import Argon2Hasher
from rushgate.adapters.sql.engine import SqlStorage
from rushgate.cluster.nginx import Upstream
from rushgate.config import Settings
from rushgate.domain.clock import SystemClock
from rushgate.http.app import create_app
from rushgate.services.registry import RegistryService
from tests.deploy.test_nginx import running_nginx
from tests.http.api import PASSWORD, section_json, student_json
from tests.inprocess_server import serving
from tests.support import SECRET, sqlite_database

TERM = "nginx-term"
CATALOG = f"/api/v1/terms/{TERM}/sections"
TIMEOUT = 5.0


@dataclass
class Site:
    app: httpx.Client  # straight to the node
    edge: httpx.Client  # through nginx
    student: dict[str, str]


def _database(tmp_path: Path) -> str:
    url = sqlite_database(tmp_path)

    async def admin() -> None:
        storage = SqlStorage.from_urls(url, None, SystemClock(), pool_size=1)
        try:
            await RegistryService(storage, Argon2Hasher("low")).ensure_admin("admin", "admin-pw")
        finally:
            await storage.close()

    asyncio.run(admin())
    return url


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    settings = Settings(
        database_url=_database(tmp_path),
        secret_key=SECRET,
        password_hash_cost="low",
        data_dir=tmp_path / "data",
    )
    with (
        serving(create_app(settings)) as url,
        running_nginx(
            tmp_path / "nginx", upstreams=[Upstream("127.0.0.1", int(urlsplit(url).port or 0))]
        ) as nginx,
        httpx.Client(base_url=url, timeout=TIMEOUT, trust_env=False) as app,
        nginx.client() as edge,
    ):
        token = app.post(
            "/api/v1/auth/token", json={"username": "admin", "password": "admin-pw"}
        ).json()["access_token"]
        admin = {"Authorization": f"Bearer {token}"}
        now = datetime.now(UTC)
        term = {
            "code": TERM,
            "name": "Through nginx",
            "opens_at": (now - timedelta(hours=1)).isoformat(),
            "closes_at": (now + timedelta(hours=1)).isoformat(),
        }
        assert app.post("/api/v1/admin/terms", json=term, headers=admin).status_code == 201
        sections = [section_json("A100-01", capacity=5), section_json("B100-01", capacity=5)]
        r = app.post(f"/api/v1/admin/terms/{TERM}/sections", json=sections, headers=admin)
        assert r.status_code == 201, r.text
        r = app.post("/api/v1/admin/students", json=[student_json("s1")], headers=admin)
        assert r.status_code == 201, r.text
        login = app.post("/api/v1/auth/token", json={"username": "s1", "password": PASSWORD})
        yield Site(app, edge, {"Authorization": f"Bearer {login.json()['access_token']}"})


def _enrolled(response: httpx.Response, section_id: str) -> int:
    sections = {s["section_id"]: s for s in response.json()["sections"]}
    return int(sections[section_id]["enrolled"])


def test_nginx_serves_the_catalog_from_its_cache_for_max_age(site: Site) -> None:
    first = site.edge.get(CATALOG)
    stored_at = time.monotonic()
    assert first.status_code == 200, first.text
    assert first.headers["x-cache-status"] == "MISS"
    assert first.headers["cache-control"] == "public, max-age=1, stale-while-revalidate=1"
    second = site.edge.get(CATALOG, headers=site.student)  # a login makes no difference
    assert second.headers["x-cache-status"] == "HIT"
    assert second.content == first.content
    assert second.headers["etag"] == first.headers["etag"]

    # nginx answers If-None-Match itself from what it keeps.
    for tag in (first.headers["etag"], "W/" + first.headers["etag"]):
        revalidated = site.edge.get(CATALOG, headers={"If-None-Match": tag})
        assert revalidated.status_code == 304
        assert revalidated.content == b""

    # A seat taken on the node: the node's own page shows it at once, nginx's copy is the
    # one it was allowed to keep (max-age=1) - proof the HIT never reached the node.
    r = site.app.post(
        f"/api/v1/terms/{TERM}/enrollments", json={"section_id": "A100-01"}, headers=site.student
    )
    assert r.status_code == 201, r.text
    assert _enrolled(site.app.get(CATALOG), "A100-01") == 1
    cached = site.edge.get(CATALOG)
    if time.monotonic() - stored_at < 0.9:  # (a slow machine may be past max-age already)
        assert cached.headers["x-cache-status"] == "HIT"
        assert _enrolled(cached, "A100-01") == 0

    # Within a few seconds nginx has the new page (refreshed in the background).
    deadline = time.monotonic() + 5
    statuses = set()
    while True:
        answer = site.edge.get(CATALOG)
        statuses.add(answer.headers["x-cache-status"])
        if _enrolled(answer, "A100-01") == 1:
            break
        assert time.monotonic() < deadline, statuses
        time.sleep(0.2)
    assert statuses & {"STALE", "UPDATING", "EXPIRED", "REVALIDATED", "MISS"}, statuses


def test_nginx_keeps_no_error_and_no_other_route(site: Site) -> None:
    for _ in range(2):
        missing = site.edge.get("/api/v1/terms/no-such-term/sections")
        assert missing.status_code == 404
        assert missing.headers["x-cache-status"] == "MISS"  # no-store: never kept
        bad = site.edge.get(f"{CATALOG}?limit=0")
        assert bad.status_code == 422
        assert bad.headers["x-cache-status"] == "MISS"
    # The student's own schedule is not the catalog's location: no cache at all.
    mine = site.edge.get(f"/api/v1/terms/{TERM}/enrollments/me", headers=site.student)
    assert mine.status_code == 200
    assert "x-cache-status" not in mine.headers
    assert mine.headers["cache-control"] == "no-store"


def test_each_page_is_kept_under_its_own_url(site: Site) -> None:
    one = site.edge.get(f"{CATALOG}?limit=1")
    two = site.edge.get(f"{CATALOG}?limit=1&after=A100-01")
    assert one.headers["x-cache-status"] == two.headers["x-cache-status"] == "MISS"
    assert [s["section_id"] for s in one.json()["sections"]] == ["A100-01"]
    assert [s["section_id"] for s in two.json()["sections"]] == ["B100-01"]
    assert site.edge.get(f"{CATALOG}?limit=1").headers["x-cache-status"] == "HIT"
