"""Admin endpoints: terms, bulk sections and students (all-or-nothing), rosters."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from tests.http.api import (
    TERM,
    Api,
    assert_problem,
    meeting_json,
    section_json,
    student_json,
    term_json,
)
from tests.support import T0


async def test_create_term(api: Api) -> None:
    seniors = T0 - timedelta(hours=1)
    r = await api.create_term(
        term_json(by_year={4: seniors}, waiting_room={"enabled": True, "admit_per_second": 50})
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["code"] == TERM
    assert body["class_year_opens_at"] == {"4": "2026-02-10T09:00:00Z"}
    assert body["waiting_room"] == {
        "enabled": True,
        "admit_per_second": 50,
        "max_active": 500,
        "admission_ttl_seconds": 600,
    }
    listed = (await api.client.get("/api/v1/terms", headers=await api.admin())).json()
    assert listed == [body]


async def test_term_times_are_normalized_to_utc(api: Api) -> None:
    body = term_json()
    body["opens_at"] = "2026-02-10T11:00:00+01:00"
    r = await api.create_term(body)
    assert r.status_code == 201, r.text
    assert r.json()["opens_at"] == "2026-02-10T10:00:00Z"


async def test_duplicate_term_is_conflict(api: Api) -> None:
    assert (await api.create_term()).status_code == 201
    assert_problem(await api.create_term(term_json(hours=2)), 409, "conflict")


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        pytest.param(term_json(hours=-1), 422, "invalid_request", id="closes-before-opens"),
        pytest.param(term_json(hours=0), 422, "invalid_request", id="closes-when-opens"),
        pytest.param(
            term_json(by_year={4: T0 + timedelta(hours=7)}),
            422,
            "invalid_request",
            id="class-year-after-close",
        ),
        pytest.param(
            {**term_json(), "opens_at": "2026-02-10T10:00:00"},
            422,
            "validation_error",
            id="naive-datetime",
        ),
        pytest.param(
            {**term_json(), "class_year_opens_at": {"0": T0.isoformat()}},
            422,
            "validation_error",
            id="class-year-zero",
        ),
        pytest.param({**term_json(), "code": "bad code!"}, 422, "validation_error", id="code"),
        pytest.param({**term_json(), "name": "   "}, 422, "validation_error", id="blank-name"),
        pytest.param({**term_json(), "extra": 1}, 422, "validation_error", id="unknown-field"),
        pytest.param(
            {**term_json(), "waiting_room": {"admit_per_second": 0}},
            422,
            "validation_error",
            id="admit-rate",
        ),
    ],
)
async def test_invalid_terms(api: Api, body: dict[str, Any], status: int, code: str) -> None:
    assert_problem(await api.create_term(body), status, code)
    assert (await api.client.get("/api/v1/terms", headers=await api.admin())).json() == []


async def test_create_sections(api: Api) -> None:
    await api.create_term()
    r = await api.create_sections([section_json("A-01"), section_json("B-01", meetings=[])])
    assert r.status_code == 201
    assert r.json() == {"created": 2}
    sections = await api.sections()
    assert sections["A-01"]["meetings"] == [meeting_json()]
    assert sections["B-01"]["meetings"] == []
    assert sections["A-01"]["seats_left"] == 40


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(section_json("C-01", capacity=-1), id="negative-capacity"),
        pytest.param(section_json("C-01", meetings=[meeting_json(end="08:00")]), id="meeting"),
        pytest.param(section_json("C-01", meetings=[meeting_json(day="XYZ")]), id="day"),
        pytest.param(section_json("C-01", credits=31), id="credits"),
        pytest.param(section_json("C 01"), id="id"),
        pytest.param({"section_id": "C-01"}, id="missing-fields"),
        pytest.param(section_json("C-01", color="red"), id="unknown-field"),
        pytest.param("C-01", id="not-an-object"),
    ],
)
async def test_sections_batch_with_one_invalid_item_writes_nothing(api: Api, bad: Any) -> None:
    await api.create_term()
    r = await api.create_sections([section_json("A-01"), bad, section_json("B-01")])
    body = assert_problem(r, 422, "validation_error")
    assert body["errors"]
    assert await api.sections() == {}


async def test_sections_conflicts_write_nothing(api: Api) -> None:
    await api.create_term()
    await api.create_sections([section_json("A-01")])
    r = await api.create_sections([section_json("B-01"), section_json("A-01")])
    body = assert_problem(r, 409, "conflict")
    assert body["existing"] == ["A-01"]
    r = await api.create_sections([section_json("C-01"), section_json("C-01")])
    assert assert_problem(r, 409, "conflict")["duplicates"] == ["C-01"]
    assert list(await api.sections()) == ["A-01"]


async def test_sections_edge_cases(api: Api) -> None:
    assert_problem(await api.create_sections([section_json()], term="nope"), 404, "not_found")
    await api.create_term()
    assert_problem(await api.create_sections([]), 422, "validation_error")
    assert_problem(await api.create_sections({"section_id": "A-01"}), 422, "validation_error")  # type: ignore[arg-type]


async def test_create_students(api: Api) -> None:
    r = await api.create_students([student_json("s1"), student_json("s2")])
    assert r.status_code == 201
    assert r.json() == {"created": 2}
    assert (await api.login("s2", "password-123")).status_code == 200


async def logins(api: Api, *usernames: str) -> set[str]:
    return {u for u in usernames if (await api.login(u, "password-123")).status_code == 200}


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(student_json("s3", email="not-an-email"), id="email"),
        pytest.param({**student_json("s3"), "password": "short"}, id="password"),
        pytest.param(student_json("s3", class_year=0), id="class-year"),
        pytest.param(student_json("s3", max_credits=-1), id="max-credits"),
        pytest.param(student_json("s3", role="admin"), id="unknown-field"),
    ],
)
async def test_students_batch_with_one_invalid_item_writes_nothing(api: Api, bad: Any) -> None:
    r = await api.create_students([student_json("s1"), bad, student_json("s2")])
    assert_problem(r, 422, "validation_error")
    assert await logins(api, "s1", "s2", "s3") == set()


async def test_students_conflicts_write_nothing(api: Api) -> None:
    await api.create_students([student_json("s1")])
    r = await api.create_students([student_json("s2"), student_json("s1", email="new@x.test")])
    assert assert_problem(r, 409, "conflict")["existing"] == ["s1"]
    r = await api.create_students([student_json("s3"), student_json("s3", email="other@x.test")])
    assert assert_problem(r, 409, "conflict")["duplicates"] == ["s3"]
    r = await api.create_students(
        [student_json("s4", email="a@x.test"), student_json("s5", email="A@x.test")]
    )
    assert_problem(r, 409, "conflict")
    r = await api.create_students([student_json("admin")])
    assert_problem(r, 409, "conflict")
    assert await logins(api, "s1", "s2", "s3", "s4", "s5") == {"s1"}


async def test_roster(seeded: Api) -> None:
    for student in ("s2", "s1", "s3"):
        assert (await seeded.enroll(student, "CS101-01")).status_code == 201
    r = await seeded.roster("CS101-01")
    assert r.status_code == 200
    body = r.json()
    assert (body["term"], body["section_id"]) == (TERM, "CS101-01")
    assert [(e["student_id"], e["waitlist_position"]) for e in body["enrolled"]] == [("s2", None)]
    assert [(e["student_id"], e["waitlist_position"]) for e in body["waitlisted"]] == [
        ("s1", 1),
        ("s3", 2),
    ]
    assert body["enrolled"][0]["email"] == "s2@example.test"
    assert_problem(await seeded.roster("NOPE-01"), 404, "not_found")
    assert_problem(await seeded.roster("CS101-01", term="nope"), 404, "not_found")


async def test_concurrent_identical_imports_are_one_success_and_conflicts(api: Api) -> None:
    """The existence checks run before the inserts, so concurrent imports of the same ids
    pass them together and the unique index decides: that must read as 409, not 500."""
    await api.admin()  # one login first, so the requests below race only each other

    async def import_once() -> tuple[int, int, int]:
        term = await api.create_term()
        students = await api.create_students(
            [student_json(f"race{i}", email=f"race{i}@x.test") for i in range(20)]
        )
        sections = await api.create_sections([section_json(f"R{i}") for i in range(20)])
        return term.status_code, students.status_code, sections.status_code

    results = await asyncio.gather(*(import_once() for _ in range(8)))
    for column in zip(*results, strict=True):
        assert sorted(column) == [201] + [409] * 7, results
    assert await logins(api, *(f"race{i}" for i in range(20))) == {f"race{i}" for i in range(20)}
