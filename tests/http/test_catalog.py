"""The catalog over HTTP: keyset pages, entity tags, 304s, and what may cache it."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from rushgate.config import Settings
from rushgate.domain.clock import FixedClock
from rushgate.http.app import create_app
from tests.http.api import TERM, Api, assert_problem, section_json, term_json

CATALOG = f"/api/v1/terms/{TERM}/sections"


def section_ids(count: int, prefix: str = "C") -> list[str]:
    return [f"{prefix}{n:03d}-01" for n in range(count)]


async def add_sections(api: Api, ids: list[str]) -> None:
    r = await api.create_sections([section_json(i, capacity=3) for i in ids])
    assert r.status_code == 201, r.text


@pytest.fixture
async def term(api: Api) -> Api:
    assert (await api.create_term(term_json())).status_code == 201
    return api


def next_link(response: httpx.Response) -> str | None:
    """The target of the RFC 8288 ``rel="next"`` link, if any."""
    header = response.headers.get("link")
    if header is None:
        return None
    match = re.fullmatch(r'<([^>]*)>; rel="next"', header)
    assert match is not None, header
    return match.group(1)


async def walk(
    client: httpx.AsyncClient,
    limit: int,
    between: Callable[[int], Awaitable[None]] | None = None,
) -> list[list[dict[str, Any]]]:
    """Every page, following the Link header; ``between(n)`` runs after page n."""
    pages: list[list[dict[str, Any]]] = []
    url: str | None = f"{CATALOG}?limit={limit}"
    while url is not None:
        r = await client.get(url)
        assert r.status_code == 200, r.text
        body = r.json()
        pages.append(body["sections"])
        url = next_link(r)
        # The body's cursor and the header agree.
        if body["next"] is None:
            assert url is None
        else:
            assert url is not None
            assert url.endswith(f"after={body['next']}")
            assert body["next"] == body["sections"][-1]["section_id"]
        if between is not None:
            await between(len(pages))
    return pages


# ---- paging ----------------------------------------------------------------------------


async def test_pages_walk_every_section_once_in_order(term: Api) -> None:
    ids = section_ids(23)
    await add_sections(term, ids)
    pages = await walk(term.client, limit=5)
    assert [len(p) for p in pages] == [5, 5, 5, 5, 3]
    assert [s["section_id"] for p in pages for s in p] == ids
    # The fields of the unpaged catalog stay.
    first = pages[0][0]
    assert set(first) == {
        "section_id", "course_code", "title", "credits", "capacity", "enrolled",
        "seats_left", "waitlist_capacity", "waitlisted", "meetings",
    }  # fmt: skip


async def test_a_full_last_page_has_no_next(term: Api) -> None:
    await add_sections(term, section_ids(4))
    r = await term.client.get(f"{CATALOG}?limit=4")
    assert r.json()["next"] is None
    assert "link" not in r.headers
    assert [len(p) for p in await walk(term.client, limit=2)] == [2, 2]


async def test_sections_added_during_the_walk_neither_repeat_nor_hide_others(
    term: Api,
) -> None:
    # Keyset paging: a section added behind the cursor is simply not seen on this walk,
    # one added ahead of it is; none seen before is repeated, none that existed skipped.
    ids = section_ids(20, "M")
    await add_sections(term, ids)
    added_ahead = ["Z900-01", "M0105-01"]  # sorts after M010-01 (and after the cursor)

    async def between(page: int) -> None:
        if page == 1:
            await add_sections(term, ["A000-01", "A001-01"])  # behind the cursor
            await add_sections(term, added_ahead)

    pages = await walk(term.client, limit=6, between=between)
    seen = [s["section_id"] for p in pages for s in p]
    assert len(seen) == len(set(seen)), seen
    # In section_id order (these ids sort alike bytewise and in PostgreSQL's collation).
    assert seen == sorted(seen)
    assert set(ids) <= set(seen)
    assert set(added_ahead) <= set(seen)
    assert not {"A000-01", "A001-01"} & set(seen)


async def test_default_page_size_is_200(term: Api) -> None:
    ids = section_ids(201)
    await add_sections(term, ids)
    first = (await term.client.get(CATALOG)).json()
    assert len(first["sections"]) == 200
    assert first["next"] == ids[199]
    rest = (await term.client.get(f"{CATALOG}?after={first['next']}")).json()
    assert [s["section_id"] for s in rest["sections"]] == ids[200:]
    assert rest["next"] is None


@pytest.mark.parametrize("limit", ["0", "-1", "1001", "ten", "1.5", ""])
async def test_limit_out_of_bounds_is_refused(term: Api, limit: str) -> None:
    assert_problem(await term.client.get(f"{CATALOG}?limit={limit}"), 422, "validation_error")


@pytest.mark.parametrize("limit", [1, 1000])
async def test_limit_bounds_are_accepted(term: Api, limit: int) -> None:
    await add_sections(term, section_ids(2))
    body = (await term.client.get(f"{CATALOG}?limit={limit}")).json()
    assert len(body["sections"]) == min(limit, 2)


@pytest.mark.parametrize(
    "after",
    ["", "a%20b", "x%00", "-leading-dash", "%C3%A9t%C3%A9", "A" * 65, "a/b", "a%27--"],
)
async def test_malformed_cursor_is_refused(term: Api, after: str) -> None:
    r = await term.client.get(f"{CATALOG}?after={after}")
    assert_problem(r, 422, "validation_error")


async def test_a_cursor_of_no_section_still_pages(term: Api) -> None:
    # The cursor is a position, not a reference: a dropped-in id still means "after it".
    await add_sections(term, section_ids(3))
    body = (await term.client.get(f"{CATALOG}?after=C000-00")).json()
    assert [s["section_id"] for s in body["sections"]] == section_ids(3)
    body = (await term.client.get(f"{CATALOG}?after=ZZZ")).json()
    assert body == {"term": TERM, "sections": [], "next": None}


async def test_course_prefix_filters_and_pages(term: Api) -> None:
    ids = [
        *(f"CS{n:03d}-01" for n in range(7)),
        "CSE100-01",
        "cs100-01",  # another case: another course
        "MATH1-01",
        "C_S1-01",  # "_" matches itself only, not any character as in LIKE
    ]
    r = await term.create_sections([section_json(i, course_code=i.split("-")[0]) for i in ids])
    assert r.status_code == 201, r.text
    pages: list[list[str]] = []
    url: str | None = f"{CATALOG}?course=CS&limit=3"
    while url is not None:
        answer = await term.client.get(url)
        assert answer.status_code == 200, answer.text
        pages.append([s["section_id"] for s in answer.json()["sections"]])
        url = next_link(answer)
        assert url is None or "course=CS" in url  # the filter travels with the cursor
    assert pages == [["CS000-01", "CS001-01", "CS002-01"], ["CS003-01", "CS004-01", "CS005-01"],
                     ["CS006-01", "CSE100-01"]]  # fmt: skip
    only = await term.client.get(f"{CATALOG}?course=C_")
    assert [s["section_id"] for s in only.json()["sections"]] == ["C_S1-01"]
    none = await term.client.get(f"{CATALOG}?course=ZZ")
    assert none.json()["sections"] == []
    assert_problem(await term.client.get(f"{CATALOG}?course=%25"), 422, "validation_error")


async def test_unknown_term_is_404_and_not_remembered(api: Api) -> None:
    assert_problem(await api.client.get(CATALOG), 404, "not_found")
    assert (await api.create_term(term_json())).status_code == 201
    assert (await api.client.get(CATALOG)).status_code == 200


async def test_the_catalog_needs_no_login_and_is_the_same_for_everyone(seeded: Api) -> None:
    anonymous = await seeded.client.get(CATALOG)
    student = await seeded.client.get(CATALOG, headers=await seeded.headers("s1"))
    admin = await seeded.client.get(CATALOG, headers=await seeded.admin())
    assert anonymous.status_code == student.status_code == admin.status_code == 200
    assert anonymous.content == student.content == admin.content
    assert anonymous.headers["etag"] == student.headers["etag"] == admin.headers["etag"]
    assert "vary" not in anonymous.headers


# ---- entity tags and caching headers ---------------------------------------------------


async def test_etag_is_stable_and_follows_the_seats(seeded: Api) -> None:
    first = await seeded.client.get(CATALOG)
    again = await seeded.client.get(CATALOG)
    etag = first.headers["etag"]
    assert re.fullmatch(r'"[0-9a-f]{32}"', etag)
    assert again.headers["etag"] == etag
    assert again.content == first.content
    assert first.headers["cache-control"] == "public, max-age=1, stale-while-revalidate=1"

    assert (await seeded.enroll("s1", "PHYS100-01")).status_code == 201
    after_enroll = await seeded.client.get(CATALOG)
    assert after_enroll.headers["etag"] != etag
    phys = next(s for s in after_enroll.json()["sections"] if s["section_id"] == "PHYS100-01")
    assert phys["seats_left"] == 4

    r = await seeded.client.delete(
        f"/api/v1/terms/{TERM}/enrollments/PHYS100-01", headers=await seeded.headers("s1")
    )
    assert r.status_code == 204
    # Back to the same content: back to the same tag (it is a hash of the body).
    assert (await seeded.client.get(CATALOG)).headers["etag"] == etag


async def test_pages_have_tags_of_their_own(term: Api) -> None:
    await add_sections(term, section_ids(4))
    one = await term.client.get(f"{CATALOG}?limit=2")
    two = await term.client.get(f"{CATALOG}?limit=2&after={one.json()['next']}")
    assert one.headers["etag"] != two.headers["etag"]


@pytest.mark.parametrize(
    "header",
    ["{tag}", "W/{tag}", '"other", {tag}', '"other",W/{tag}', "*"],
)
async def test_if_none_match_gets_304_without_a_body(seeded: Api, header: str) -> None:
    etag = (await seeded.client.get(CATALOG)).headers["etag"]
    r = await seeded.client.get(CATALOG, headers={"If-None-Match": header.format(tag=etag)})
    assert r.status_code == 304
    assert r.content == b""
    assert r.headers["etag"] == etag
    assert r.headers["cache-control"].startswith("public, max-age=")


@pytest.mark.parametrize("header", ['"stale"', 'W/"stale"', ""])
async def test_a_tag_no_longer_current_gets_the_page(seeded: Api, header: str) -> None:
    r = await seeded.client.get(CATALOG, headers={"If-None-Match": header})
    assert r.status_code == 200
    assert r.json()["sections"]


async def test_an_old_tag_gets_the_new_page_once_seats_changed(seeded: Api) -> None:
    etag = (await seeded.client.get(CATALOG)).headers["etag"]
    assert (await seeded.enroll("s1", "ART100-01")).status_code == 201
    r = await seeded.client.get(CATALOG, headers={"If-None-Match": etag})
    assert r.status_code == 200
    assert r.headers["etag"] != etag


async def test_next_link_survives_a_304(term: Api) -> None:
    await add_sections(term, section_ids(3))
    first = await term.client.get(f"{CATALOG}?limit=2")
    again = await term.client.get(
        f"{CATALOG}?limit=2", headers={"If-None-Match": first.headers["etag"]}
    )
    assert again.status_code == 304
    assert next_link(again) == next_link(first) == f"{CATALOG}?limit=2&after=C001-01"


# ---- seats a moment old: another node's changes ---------------------------------------


@pytest.fixture
async def other_node(settings: Settings, clock: FixedClock) -> AsyncIterator[httpx.AsyncClient]:
    """A second app process on the same database: its writes do not tell this one."""
    other: FastAPI = create_app(settings, clock=clock)
    transport = httpx.ASGITransport(app=other)
    async with httpx.AsyncClient(transport=transport, base_url="http://node2.test") as client:
        yield client
    await other.state.container.close()


async def test_another_nodes_enrollment_shows_within_the_cache_seconds(
    seeded: Api, other_node: httpx.AsyncClient
) -> None:
    before = await seeded.client.get(CATALOG)
    token = (await seeded.headers("s1"))["Authorization"]
    r = await other_node.post(
        f"/api/v1/terms/{TERM}/enrollments",
        json={"section_id": "PHYS100-01"},
        headers={"Authorization": token},
    )
    assert r.status_code == 201, r.text
    # This node still has its page: the same bytes, a moment old...
    assert (await seeded.client.get(CATALOG)).content == before.content
    # ...for RUSHGATE_CATALOG_CACHE_SECONDS (1 s here) at most.
    await asyncio.sleep(1.1)
    fresh = await seeded.client.get(CATALOG)
    assert fresh.headers["etag"] != before.headers["etag"]
    phys = next(s for s in fresh.json()["sections"] if s["section_id"] == "PHYS100-01")
    assert phys["enrolled"] == 1


async def test_new_sections_show_at_once_on_the_node_that_made_them(term: Api) -> None:
    await add_sections(term, section_ids(1))
    assert len((await term.client.get(CATALOG)).json()["sections"]) == 1
    await add_sections(term, section_ids(2, "D"))
    assert len((await term.client.get(CATALOG)).json()["sections"]) == 3
