"""``GET /metrics`` of the in-process app: the series exist and move with the requests.

Metrics live in the process-wide registry, shared by every app a test run builds: tests
compare a scrape before with one after, never absolute counts."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from rushgate import __version__
from rushgate.composition import Container
from rushgate.domain.clock import FixedClock
from tests.http.api import TERM, Api, assert_problem, section_json
from tests.http.test_queue import STUDENTS, room_json

ENROLL_ROUTE = "/api/v1/terms/{term}/enrollments"


class Scrape:
    def __init__(self, text: str) -> None:
        self.samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                key = (sample.name, frozenset(sample.labels.items()))
                self.samples[key] = sample.value

    def value(self, name: str, **labels: str) -> float:
        """The sample's value, 0 when it is not exported (yet)."""
        return self.samples.get((name, frozenset(labels.items())), 0.0)

    def has(self, name: str) -> bool:
        return any(key[0] == name for key in self.samples)


async def scrape(client: httpx.AsyncClient) -> Scrape:
    response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=")
    return Scrape(response.text)


async def test_enroll_outcomes_and_request_series_move(seeded: Api) -> None:
    client = seeded.client
    await seeded.headers("s1")  # log in before the first scrape
    await seeded.headers("s2")
    before = await scrape(client)
    assert (await seeded.enroll("s1", "ART100-01")).status_code == 201
    assert_problem(await seeded.enroll("s2", "ART100-01"), 409, "section_full")
    after = await scrape(client)

    def moved(name: str, **labels: str) -> float:
        return after.value(name, **labels) - before.value(name, **labels)

    assert moved("rushgate_enroll_outcomes_total", outcome="enrolled") == 1
    assert moved("rushgate_enroll_outcomes_total", outcome="section_full") == 1
    for status in ("201", "409"):
        labels = {"route": ENROLL_ROUTE, "method": "POST", "status": status}
        assert moved("rushgate_http_requests_total", **labels) == 1
    timed = {"route": ENROLL_ROUTE, "method": "POST"}
    assert moved("rushgate_http_request_duration_seconds_count", **timed) == 2
    assert moved("rushgate_http_request_duration_seconds_bucket", **timed, le="+Inf") == 2
    assert moved("rushgate_http_request_duration_seconds_sum", **timed) > 0
    # The raw path never becomes a label.
    assert not any(
        dict(labels).get("route", "").endswith(f"/{TERM}/enrollments")
        for _, labels in after.samples
    )


async def test_a_request_no_route_matched_counts_as_unmatched(client: httpx.AsyncClient) -> None:
    labels = {"route": "unmatched", "method": "GET", "status": "404"}
    before = (await scrape(client)).value("rushgate_http_requests_total", **labels)
    for path in ("/no/such/page", "/api/v1/nothing-here/42"):
        assert (await client.get(path)).status_code == 404
    after = await scrape(client)
    assert after.value("rushgate_http_requests_total", **labels) == before + 2
    assert not any("/no/such/page" in dict(key[1]).values() for key in after.samples)


async def test_a_matched_route_keeps_its_template_on_an_error(client: httpx.AsyncClient) -> None:
    labels = {"route": "/healthz", "method": "POST", "status": "405"}
    before = (await scrape(client)).value("rushgate_http_requests_total", **labels)
    assert (await client.post("/healthz")).status_code == 405
    after = await scrape(client)
    assert after.value("rushgate_http_requests_total", **labels) == before + 1


async def test_node_gauges_and_build_info(client: httpx.AsyncClient) -> None:
    metrics = await scrape(client)
    assert metrics.value("rushgate_build_info", version=__version__) == 1
    for name in (
        "rushgate_outbox_pending",
        "rushgate_outbox_dead",
        "rushgate_outbox_oldest_pending_age_seconds",
        "rushgate_db_pool_in_use",
        "rushgate_db_pool_size",
    ):
        assert metrics.has(name), name
    assert metrics.value("rushgate_db_pool_size") > 0
    assert 0 < metrics.value("rushgate_db_ping_seconds") < 5


async def test_database_statements_are_timed(seeded: Api) -> None:
    client = seeded.client
    await seeded.headers("s1")
    before = await scrape(client)
    assert (await seeded.enroll("s1", "ART100-01")).status_code == 201
    after = await scrape(client)
    count = "rushgate_db_query_duration_seconds_count"
    statements = after.value(count, engine="primary") - before.value(count, engine="primary")
    assert statements >= 2  # an enroll reads and writes
    total = "rushgate_db_query_duration_seconds_sum"
    assert after.value(total, engine="primary") > before.value(total, engine="primary")


async def test_section_gauges_follow_the_seat_hint_rebuild(
    seeded: Api, container: Container
) -> None:
    labels = {"term": TERM, "section": "ART100-01"}
    await container.hint_keeper.rebuild_open_terms()
    metrics = await scrape(seeded.client)
    assert metrics.value("rushgate_section_capacity", **labels) == 1
    assert metrics.value("rushgate_section_enrolled", **labels) == 0
    assert metrics.value("rushgate_section_seats_left", **labels) == 1
    assert (await seeded.enroll("s1", "ART100-01")).status_code == 201
    await container.hint_keeper.rebuild_open_terms()
    metrics = await scrape(seeded.client)
    assert metrics.value("rushgate_section_enrolled", **labels) == 1
    assert metrics.value("rushgate_section_seats_left", **labels) == 0


async def test_queue_gauges_follow_the_admitter(
    api: Api, container: Container, clock: FixedClock
) -> None:
    from datetime import timedelta

    assert (await api.create_term(room_json())).status_code == 201
    assert (await api.create_sections([section_json("BIG-01", capacity=50)])).status_code == 201
    assert (await api.create_students(STUDENTS)).status_code == 201
    for student in ("q1", "q2", "q3", "q4"):
        r = await api.client.post(f"/api/v1/queue/{TERM}/join", headers=await api.headers(student))
        assert r.status_code in (200, 201), r.text
    before = await scrape(api.client)
    clock.set(clock.now() + timedelta(seconds=0.25))
    assert await container.admitter.tick_once()  # 8/s for a quarter second: 2 admitted
    after = await scrape(api.client)
    room = container.room_gauges.rooms()[TERM]
    assert after.value("rushgate_queue_waiting", term=TERM) == room.waiting == 2
    assert after.value("rushgate_queue_active", term=TERM) == room.active
    assert after.value("rushgate_queue_eta_seconds", term=TERM) == room.eta_tail_seconds
    assert after.value("rushgate_queue_paused", term=TERM) == 0
    admitted = "rushgate_queue_admitted_total"
    assert after.value(admitted, term=TERM) - before.value(admitted, term=TERM) == 2


async def test_the_docs_routes_count_under_their_own_path(client: httpx.AsyncClient) -> None:
    labels = {"route": "/openapi.json", "method": "GET", "status": "200"}
    before = (await scrape(client)).value("rushgate_http_requests_total", **labels)
    assert (await client.get("/openapi.json")).status_code == 200
    after = await scrape(client)
    assert after.value("rushgate_http_requests_total", **labels) == before + 1
