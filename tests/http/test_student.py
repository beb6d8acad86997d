"""What a student does over HTTP: catalog, enroll, drop, schedule, idempotent retries."""

from __future__ import annotations

from datetime import timedelta

import pytest

from rushgate.domain.clock import FixedClock
from tests.http.api import TERM, Api, assert_problem
from tests.http.conftest import SENIORS_OPEN
from tests.support import T0


async def test_catalog_seats_left(seeded: Api) -> None:
    assert (await seeded.enroll("s1", "PHYS100-01")).status_code == 201
    r = await seeded.catalog("s2")
    assert r.status_code == 200
    body = r.json()
    assert body["term"] == TERM
    phys = next(s for s in body["sections"] if s["section_id"] == "PHYS100-01")
    assert (phys["capacity"], phys["enrolled"], phys["seats_left"]) == (5, 1, 4)
    assert phys["meetings"] == [{"day": "WED", "start": "09:00", "end": "10:15"}]
    assert [s["section_id"] for s in body["sections"]] == sorted(
        s["section_id"] for s in body["sections"]
    )
    assert_problem(await seeded.catalog("s2", term="nope"), 404, "not_found")


async def test_enroll_and_waitlist(seeded: Api) -> None:
    r = await seeded.enroll("s1", "CS101-01")
    assert r.status_code == 201
    assert r.json() == {"section_id": "CS101-01", "status": "enrolled", "waitlist_position": None}
    assert "idempotent-replayed" not in r.headers
    for student, position in (("s2", 1), ("s3", 2)):
        r = await seeded.enroll(student, "CS101-01")
        assert r.status_code == 201
        assert r.json() == {
            "section_id": "CS101-01",
            "status": "waitlisted",
            "waitlist_position": position,
        }
    assert_problem(await seeded.enroll("s4", "CS101-01"), 409, "waitlist_full")
    section = (await seeded.sections())["CS101-01"]
    assert (section["enrolled"], section["waitlisted"], section["seats_left"]) == (1, 2, 0)


@pytest.mark.parametrize(
    ("setup", "student", "section_id", "code"),
    [
        ([("s1", "ART100-01")], "s2", "ART100-01", "section_full"),
        ([("s1", "CS101-02")], "s1", "CS101-01", "already_enrolled"),
        ([("s1", "CS101-01")], "s1", "MATH200-01", "time_conflict"),
        ([("light", "ART100-01"), ("light", "PHYS100-01")], "light", "CS101-02", "credit_limit"),
    ],
)
async def test_enroll_refusals(
    seeded: Api, setup: list[tuple[str, str]], student: str, section_id: str, code: str
) -> None:
    for who, what in setup:
        assert (await seeded.enroll(who, what)).status_code == 201
    before = await seeded.sections()
    assert_problem(await seeded.enroll(student, section_id), 409, code)
    assert await seeded.sections() == before


async def test_refusal_carries_context(seeded: Api) -> None:
    await seeded.enroll("s1", "CS101-01")
    body = assert_problem(await seeded.enroll("s1", "MATH200-01"), 409, "time_conflict")
    assert body["conflicting_section_id"] == "CS101-01"
    assert body["day"] == "MON"


async def test_unknown_section_or_term(seeded: Api) -> None:
    assert_problem(await seeded.enroll("s1", "NOPE-01"), 404, "not_found")
    assert_problem(await seeded.enroll("s1", "CS101-01", term="nope"), 404, "not_found")


async def test_window_closed(seeded: Api, clock: FixedClock) -> None:
    assert (await seeded.enroll("s1", "PHYS100-01")).status_code == 201
    clock.set(T0 + timedelta(hours=6))
    seeded.forget_tokens()
    body = assert_problem(await seeded.enroll("s2", "PHYS100-01"), 403, "window_closed")
    assert body["closes_at"] == "2026-02-10T16:00:00+00:00"
    assert_problem(await seeded.drop("s1", "PHYS100-01"), 403, "window_closed")
    clock.set(T0 - timedelta(minutes=30))
    seeded.forget_tokens()
    assert_problem(await seeded.enroll("s2", "PHYS100-01"), 403, "window_closed")


async def test_seniors_enroll_early(seeded: Api, clock: FixedClock) -> None:
    clock.set(SENIORS_OPEN + timedelta(minutes=1))
    assert (await seeded.enroll("senior", "ART100-01")).status_code == 201
    assert_problem(await seeded.enroll("s1", "PHYS100-01"), 403, "window_closed")


async def test_idempotency_key_replay(seeded: Api) -> None:
    first = await seeded.enroll("s1", "PHYS100-01", key="req-1")
    assert first.status_code == 201
    assert "idempotent-replayed" not in first.headers
    again = await seeded.enroll("s1", "PHYS100-01", key="req-1")
    assert again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert (await seeded.sections())["PHYS100-01"]["enrolled"] == 1
    body = assert_problem(
        await seeded.enroll("s1", "ART100-01", key="req-1"), 422, "idempotency_key_reused"
    )
    assert "different request" in body["detail"]
    assert (await seeded.sections())["ART100-01"]["enrolled"] == 0


async def test_refused_request_can_be_retried_with_same_key(seeded: Api) -> None:
    await seeded.enroll("s1", "ART100-01")
    assert_problem(await seeded.enroll("s2", "ART100-01", key="k"), 409, "section_full")
    assert (await seeded.drop("s1", "ART100-01")).status_code == 204
    r = await seeded.enroll("s2", "ART100-01", key="k")
    assert r.status_code == 201
    assert "idempotent-replayed" not in r.headers


@pytest.mark.parametrize("key", ["", "x" * 256, "tab\there"])
async def test_invalid_idempotency_key(seeded: Api, key: str) -> None:
    assert_problem(await seeded.enroll("s1", "PHYS100-01", key=key), 400, "invalid_idempotency_key")
    assert (await seeded.sections())["PHYS100-01"]["enrolled"] == 0


async def test_longest_idempotency_key_is_fine(seeded: Api) -> None:
    assert (await seeded.enroll("s1", "PHYS100-01", key="k" * 255)).status_code == 201


async def test_drop_then_drop_again(seeded: Api) -> None:
    await seeded.enroll("s1", "PHYS100-01")
    r = await seeded.drop("s1", "PHYS100-01")
    assert r.status_code == 204
    assert r.content == b""
    assert_problem(await seeded.drop("s1", "PHYS100-01"), 404, "not_found")
    assert_problem(await seeded.drop("s1", "NOPE-01"), 404, "not_found")
    assert_problem(await seeded.drop("s1", "PHYS100-01", term="nope"), 404, "not_found")
    assert (await seeded.sections())["PHYS100-01"]["enrolled"] == 0


async def test_drop_promotes_and_schedule_shows_it(seeded: Api) -> None:
    for student in ("s1", "s2", "s3"):
        await seeded.enroll(student, "CS101-01")
    await seeded.enroll("s2", "PHYS100-01")
    r = await seeded.schedule("s2")
    assert r.status_code == 200
    body = r.json()
    assert body["term"] == TERM
    assert body["enrolled_credits"] == 4  # the waitlisted CS101 does not count yet
    assert [
        (e["section_id"], e["status"], e["waitlist_position"]) for e in body["enrollments"]
    ] == [
        ("CS101-01", "waitlisted", 1),
        ("PHYS100-01", "enrolled", None),
    ]
    assert body["enrollments"][0]["meetings"] == [{"day": "MON", "start": "09:00", "end": "10:15"}]
    assert (await seeded.drop("s1", "CS101-01")).status_code == 204
    body = (await seeded.schedule("s2")).json()
    assert body["enrolled_credits"] == 7
    assert body["enrollments"][0]["status"] == "enrolled"
    s3 = (await seeded.schedule("s3")).json()["enrollments"]
    assert [(e["section_id"], e["waitlist_position"]) for e in s3] == [("CS101-01", 1)]
    assert (await seeded.schedule("s1")).json()["enrollments"] == []


async def test_schedule_of_unknown_term(seeded: Api) -> None:
    assert_problem(await seeded.schedule("s1", term="nope"), 404, "not_found")


async def test_students_only_touch_their_own_places(seeded: Api) -> None:
    assert (await seeded.enroll("s1", "ART100-01")).status_code == 201
    assert_problem(await seeded.drop("s2", "ART100-01"), 404, "not_found")
    assert [e["section_id"] for e in (await seeded.schedule("s1")).json()["enrollments"]] == [
        "ART100-01"
    ]
    assert (await seeded.schedule("s2")).json()["enrollments"] == []
    assert (await seeded.sections())["ART100-01"]["enrolled"] == 1
    # Keys are per student too: s2's "k" is not s1's "k".
    await seeded.enroll("s1", "PHYS100-01", key="k")
    r = await seeded.enroll("s2", "CS101-02", key="k")
    assert r.status_code == 201
    assert r.json()["section_id"] == "CS101-02"
