"""``/metrics`` of a real ``rushgate serve --workers 2``: one scrape reaches one worker,
yet counts what every worker served, once; a worker that died keeps what it counted and
stops counting in the per-process gauges. And real Prometheus can scrape it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from tests.serverproc import ServerConfig, ServerProcess, free_port
from tests.support import REDIS_URL, require_service

pytestmark = [pytest.mark.slow, pytest.mark.redis]

PROMETHEUS = Path("/usr/bin/prometheus")
HEALTHZ = {"route": "/healthz", "method": "GET", "status": "200"}
# Requests sent at once, each on its own connection: the kernel hands the connections to
# whichever worker accepts first, so both workers get some.
BURST = 40


def _redis_or_skip() -> None:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_timeout=2).ping()
    except redis.RedisError as exc:
        require_service("Redis", repr(exc))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    _redis_or_skip()
    workdir = tmp_path_factory.mktemp("metrics")
    node = ServerProcess(ServerConfig(log_dir=workdir, data_dir=workdir / "data", workers=2))
    node.start()
    try:
        yield node
    finally:
        node.stop()
    assert not list((workdir / "data").glob("metrics-*")), "the metrics directory is left"


def metrics_dir(server: ServerProcess) -> Path:
    data_dir = server.config.data_dir
    assert data_dir is not None
    (found,) = data_dir.glob("metrics-*")
    return found


def healthz_by_worker(server: ServerProcess) -> dict[int, float]:
    """What each worker process's own counter file holds for ``GET /healthz``."""
    counts: dict[int, float] = {}
    for file in metrics_dir(server).glob("counter_*.db"):
        pid = int(file.stem.rpartition("_")[2])
        counts[pid] = 0.0
        for metric in MultiProcessCollector.merge([str(file)], accumulate=True):
            for sample in metric.samples:
                if sample.name == "rushgate_http_requests_total" and sample.labels == HEALTHZ:
                    counts[pid] += sample.value
    return counts


def live_gauge_pids(server: ServerProcess) -> set[int]:
    return {
        int(file.stem.rpartition("_")[2]) for file in metrics_dir(server).glob("gauge_livesum_*.db")
    }


Scraped = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(http: httpx.AsyncClient) -> Scraped:
    r = await http.get("/metrics")
    assert r.status_code == 200, r.text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def value(
    scraped: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return scraped.get((name, frozenset(labels.items())), 0.0)


async def burst(base_url: str) -> int:
    """BURST concurrent ``GET /healthz``, each on a fresh connection."""

    async def one() -> None:
        async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
            assert (await http.get("/healthz")).status_code == 200

    await asyncio.gather(*(one() for _ in range(BURST)))
    return BURST


async def test_one_scrape_counts_every_worker_once_and_survives_a_worker_restart(
    server: ServerProcess,
) -> None:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as http:
        start = value(await scrape(http), "rushgate_http_requests_total", **HEALTHZ)
        sent = 0
        deadline = time.monotonic() + 30
        while len([n for n in healthz_by_worker(server).values() if n > 0]) < 2:
            assert time.monotonic() < deadline, (
                f"one worker served all: {healthz_by_worker(server)}"
            )
            sent += await burst(server.base_url)
        by_worker = healthz_by_worker(server)
        assert len([n for n in by_worker.values() if n > 0]) == 2
        assert sum(by_worker.values()) == start + sent
        # Several scrapes, whichever worker answers: always the sum of both.
        for _ in range(6):
            assert (
                value(await scrape(http), "rushgate_http_requests_total", **HEALTHZ) == start + sent
            )

        # This node coordinates through a real Redis: its round trip is measured.
        assert 0 < value(await scrape(http), "rushgate_redis_ping_seconds") < 5

        # Pool gauges are per process, summed over the live ones.
        pool_before = value(await scrape(http), "rushgate_db_pool_size")
        live_before = live_gauge_pids(server)
        assert len(live_before) == 2
        assert pool_before > 0

        # A worker dies without cleaning up; the server starts another.
        victim = max(by_worker, key=lambda pid: by_worker[pid])
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while True:
            live = live_gauge_pids(server)
            if victim not in live and len(live) == 2:
                break
            assert time.monotonic() < deadline, f"no replacement worker: {live}"
            await asyncio.sleep(0.2)
        (replacement,) = live - live_before
        # Its counts stay (not lost) and are counted once (not doubled).
        assert value(await scrape(http), "rushgate_http_requests_total", **HEALTHZ) == start + sent
        deadline = time.monotonic() + 30
        while healthz_by_worker(server).get(replacement, 0) == 0:
            assert time.monotonic() < deadline, "the replacement worker never served"
            sent += await burst(server.base_url)
        for _ in range(4):
            scraped = await scrape(http)
            assert value(scraped, "rushgate_http_requests_total", **HEALTHZ) == start + sent
            # The dead worker's pool no longer counts.
            assert value(scraped, "rushgate_db_pool_size") == pool_before
        assert sum(healthz_by_worker(server).values()) == start + sent


async def test_real_prometheus_scrapes_the_node(server: ServerProcess, tmp_path: Path) -> None:
    if not PROMETHEUS.exists():
        pytest.skip("prometheus is not installed (/usr/bin/prometheus)")
    target = server.base_url.removeprefix("http://").rstrip("/")
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
        f"scrape_configs:\n  - job_name: rushgate\n    static_configs:\n"
        f"      - targets: ['{target}']\n"
    )
    port = free_port()
    log = (tmp_path / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [
            str(PROMETHEUS),
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        found: list[dict[str, object]] = []
        deadline = time.monotonic() + 30
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as api:
            while not found:
                assert proc.poll() is None, (tmp_path / "prometheus.log").read_text()
                assert time.monotonic() < deadline, (tmp_path / "prometheus.log").read_text()
                await asyncio.sleep(0.5)
                with contextlib.suppress(httpx.TransportError):
                    r = await api.get(
                        "/api/v1/query", params={"query": "rushgate_http_requests_total"}
                    )
                    if r.status_code == 200:
                        found = r.json()["data"]["result"]
            routes = {str(series["metric"]["route"]) for series in found}  # type: ignore[index]
            assert "/metrics" in routes  # its own scrapes, counted by the node
            r = await api.get("/api/v1/query", params={"query": "up"})
            assert [s["value"][1] for s in r.json()["data"]["result"]] == ["1"]
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
