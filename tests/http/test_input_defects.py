"""Input a new user might send that once made a 500 or was stored as something else:
dates out of range once in UTC, times with offsets or as numbers, NUL characters, emails
differing only by case, bulk requests without a cap. Every case is refused with a 4xx
problem on SQLite and PostgreSQL alike, and nothing is written."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from rushgate.adapters.security import Argon2Hasher
from rushgate.adapters.sql.tables import sections, students, terms
from rushgate.composition import Container
from rushgate.http.routes.admin import MAX_BULK_ITEMS
from tests.admissions_seed import add_application
from tests.http.admissions_api import Admissions, personal_json, round_json
from tests.http.api import (
    PASSWORD,
    TERM,
    Api,
    assert_problem,
    meeting_json,
    section_json,
    student_json,
    term_json,
)
from tests.http.board_api import Board

NUL = "\x00"


async def count(container: Container, table: Any) -> int:
    async with container.storage.primary_reads.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())


def error_types(problem: dict[str, Any]) -> set[str]:
    return {e["type"] for e in problem["errors"]}


# --- 1. dates that overflow once converted to UTC -----------------------------------


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"opens_at": "0001-01-01T00:00:00+05:00"}, id="opens-before-year-1-utc"),
        pytest.param({"closes_at": "9999-12-31T23:59:59-01:00"}, id="closes-after-9999-utc"),
        pytest.param({"class_year_opens_at": {"4": "0001-01-01T00:00:00+05:00"}}, id="class-year"),
    ],
)
async def test_term_dates_out_of_range_in_utc(
    api: Api, container: Container, changes: dict[str, Any]
) -> None:
    problem = assert_problem(await api.create_term({**term_json(), **changes}), 422)
    assert problem["code"] == "validation_error"
    assert error_types(problem) == {"datetime_range"}
    assert await count(container, terms) == 0


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"opens_at": "0001-01-01T00:00:00+05:00"}, id="opens"),
        pytest.param({"closes_at": "9999-12-31T23:59:59-01:00"}, id="closes"),
    ],
)
async def test_round_dates_out_of_range_in_utc(
    api: Api, container: Container, changes: dict[str, Any]
) -> None:
    adm = Admissions(api, container)
    problem = assert_problem(await adm.create_round({**round_json(), **changes}), 422)
    assert problem["code"] == "validation_error"
    assert error_types(problem) == {"datetime_range"}
    r = await api.client.get(
        f"/api/v1/admissions/{round_json()['code']}", headers=await api.admin()
    )
    assert_problem(r, 404, "not_found")


async def test_the_utc_extremes_themselves_are_fine(api: Api) -> None:
    body = {
        **term_json(),
        "opens_at": "0001-01-01T00:00:00Z",
        "closes_at": "9999-12-31T23:59:59Z",
    }
    r = await api.create_term(body)
    assert r.status_code == 201, r.text
    assert (r.json()["opens_at"], r.json()["closes_at"]) == (
        "0001-01-01T00:00:00Z",
        "9999-12-31T23:59:59Z",
    )


@pytest.mark.parametrize(
    "value",
    [0, 1_770_000_000, 1.5, "1770000000", True, "2026-02-10", "10:00", "2026-02-10T10:00:00"],
)
async def test_a_datetime_is_iso_text_with_an_offset(
    api: Api, container: Container, value: object
) -> None:
    """Pydantic alone reads numbers (and digit strings) as Unix time."""
    problem = assert_problem(await api.create_term({**term_json(), "opens_at": value}), 422)
    assert problem["code"] == "validation_error"
    adm = Admissions(api, container)
    problem = assert_problem(await adm.create_round({**round_json(), "opens_at": value}), 422)
    assert problem["code"] == "validation_error"
    assert await count(container, terms) == 0


# --- 2 and 3. meeting times: no offsets, no numbers ---------------------------------


@pytest.fixture
async def term(api: Api) -> Api:
    assert (await api.create_term(term_json())).status_code == 201
    return api


@pytest.mark.parametrize(
    ("start", "end"),
    [
        pytest.param("09:00+05:00", "10:00", id="offset-on-start"),
        pytest.param("09:00", "10:00Z", id="utc-on-end"),
        pytest.param("09:00+05:00", "10:00+05:00", id="offset-on-both"),
        pytest.param(900, "10:00", id="int"),
        pytest.param("900", "10:00", id="digits"),
        pytest.param(32400.0, "10:00", id="float"),
        pytest.param(True, "10:00", id="bool"),
        pytest.param("09:00:00.5", "10:00", id="fraction"),
        pytest.param("9:00", "10:00", id="one-digit-hour"),
        pytest.param("24:00", "25:00", id="past-midnight"),
        pytest.param(None, "10:00", id="null"),
    ],
)
async def test_meeting_times_are_naive_hh_mm(
    term: Api, container: Container, start: object, end: object
) -> None:
    section = {**section_json("CS101-01"), "meetings": [{"day": "MON", "start": start, "end": end}]}
    r = await term.create_sections([section])
    problem = assert_problem(r, 422, "validation_error")
    assert all(e["loc"][:3] == ["body", 0, "meetings"] for e in problem["errors"]), problem
    assert await count(container, sections) == 0


async def test_meeting_times_with_seconds_are_fine(term: Api) -> None:
    meetings = [meeting_json("MON", "09:00:00", "10:15:00")]
    assert (
        await term.create_sections([section_json("CS101-01", meetings=meetings)])
    ).status_code == 201
    [section] = (await term.sections()).values()
    assert section["meetings"] == [{"day": "MON", "start": "09:00", "end": "10:15"}]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("credits", True),
        ("credits", "3"),
        ("credits", 3.0),
        ("capacity", False),
        ("waitlist_capacity", "2"),
    ],
)
async def test_section_numbers_are_whole_json_numbers(
    term: Api, container: Container, field: str, value: object
) -> None:
    """Lax ints took ``true`` as 1; the admissions schemas were strict already."""
    r = await term.create_sections([{**section_json("CS101-01"), field: value}])
    assert_problem(r, 422, "validation_error")
    assert await count(container, sections) == 0


@pytest.mark.parametrize(
    ("field", "value"), [("class_year", True), ("max_credits", "18"), ("class_year", 2.0)]
)
async def test_student_numbers_are_whole_json_numbers(
    api: Api, container: Container, field: str, value: object
) -> None:
    assert_problem(
        await api.create_students([{**student_json("s1"), field: value}]), 422, "validation_error"
    )
    assert await count(container, students) == 0


@pytest.mark.parametrize(
    "room",
    [{"enabled": "yes"}, {"enabled": 1}, {"enabled": "false"}, {"admit_per_second": True}],
)
async def test_waiting_room_settings_are_strict(
    api: Api, container: Container, room: dict[str, Any]
) -> None:
    """``"false"`` used to read as False and ``"yes"`` as True."""
    r = await api.create_term({**term_json(), "waiting_room": room})
    assert_problem(r, 422, "validation_error")
    assert await count(container, terms) == 0


# --- 4. NUL characters, anywhere ----------------------------------------------------


@pytest.fixture
async def everyone(api: Api, container: Container, hasher: Argon2Hasher) -> Board:
    """A term with a section, the Q&A board's round (applicants kim and lee, student
    s1), and kim's draft application."""
    board = await Board.seeded(api, container, hasher)
    assert (await api.create_term(term_json())).status_code == 201
    assert (await api.create_sections([section_json("CS101-01")])).status_code == 201
    await add_application(container.storage, await board.applicant_pk("kim"))
    return board


def _with(body: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**body, **changes}


ROUND = "2027-hs"  # the Board's round
SIGN_UP = {"email": "new@example.test", "password": "applicant-pass-1", "name": "새 지원자"}

# (who, method, path, JSON body): each holds one NUL, in a field or a nested one.
NUL_BODIES = [
    pytest.param(
        "anon",
        "POST",
        "/auth/token",
        {"username": f"s1{NUL}", "password": "x"},
        id="login-username",
    ),
    pytest.param(
        "anon",
        "POST",
        "/auth/token",
        {"username": "s1", "password": f"{PASSWORD}{NUL}"},
        id="login-password",
    ),
    pytest.param(
        "admin", "POST", "/admin/terms", _with(term_json("t2"), name=f"a{NUL}b"), id="term-name"
    ),
    pytest.param(
        "admin",
        "POST",
        f"/admin/terms/{TERM}/sections",
        [section_json("A-01", title=f"x{NUL}")],
        id="section-title",
    ),
    pytest.param(
        "admin",
        "POST",
        f"/admin/terms/{TERM}/sections",
        [section_json("A-01", meetings=[meeting_json(f"MON{NUL}")])],
        id="meeting-day",
    ),
    pytest.param(
        "admin", "POST", "/admin/students", [student_json("n1", name=f"x{NUL}y")], id="student-name"
    ),
    pytest.param(
        "admin",
        "POST",
        "/admin/students",
        [student_json("n1", email=f"n1{NUL}@x.test")],
        id="student-email",
    ),
    pytest.param(
        "admin",
        "POST",
        "/admin/students",
        [_with(student_json("n1"), password=f"{PASSWORD}{NUL}")],
        id="student-password",
    ),
    pytest.param(
        "admin", "POST", "/admin/admissions", round_json("r2", name=f"x{NUL}"), id="round-name"
    ),
    pytest.param(
        "admin",
        "POST",
        "/admin/admissions",
        round_json("r2", required_documents=[f"x{NUL}"]),
        id="round-document",
    ),
    pytest.param(
        "admin",
        "POST",
        "/admin/admissions",
        round_json("r2", receipt_prefix=f"A{NUL}"),
        id="round-prefix",
    ),
    pytest.param(
        "admin",
        "POST",
        "/admin/admissions",
        round_json("r2", tracks=[{"code": "g", "name": f"x{NUL}"}]),
        id="track-name",
    ),
    pytest.param(
        "anon",
        "POST",
        "/applicants",
        _with(SIGN_UP, email=f"new{NUL}@example.test"),
        id="sign-up-email",
    ),
    pytest.param("anon", "POST", "/applicants", _with(SIGN_UP, name=f"x{NUL}"), id="sign-up-name"),
    pytest.param(
        "anon",
        "POST",
        "/applicants",
        _with(SIGN_UP, password=f"applicant-pass-1{NUL}"),
        id="sign-up-password",
    ),
    pytest.param("anon", "POST", "/applicants/verify", {"token": f"a{NUL}"}, id="verify-token"),
    pytest.param(
        "kim", "PUT", f"/admissions/{ROUND}/application", {"statement": f"x{NUL}"}, id="statement"
    ),
    pytest.param(
        "kim",
        "PUT",
        f"/admissions/{ROUND}/application",
        {"personal": personal_json(address=f"x{NUL}")},
        id="personal",
    ),
    pytest.param(
        "kim",
        "POST",
        f"/admissions/{ROUND}/questions",
        {"title": f"t{NUL}", "body": "b"},
        id="question-title",
    ),
    pytest.param(
        "kim",
        "POST",
        f"/admissions/{ROUND}/questions",
        {"title": "t", "body": f"b{NUL}"},
        id="question-body",
    ),
    pytest.param(
        "admin",
        "POST",
        f"/admin/admissions/{ROUND}/faq",
        {"question": "q", "answer": f"a{NUL}"},
        id="faq",
    ),
    pytest.param(
        "admin",
        "POST",
        f"/admin/admissions/{ROUND}/waitlist-admissions",
        {"receipt_numbers": [f"2027-A-000001{NUL}"]},
        id="waitlist",
    ),
]


@pytest.mark.parametrize(("who", "method", "path", "body"), NUL_BODIES)
async def test_nul_in_a_body_is_refused(
    everyone: Board, who: str, method: str, path: str, body: Any
) -> None:
    """PostgreSQL text cannot hold NUL (the insert failed: a 500); SQLite stored it."""
    before = await count(everyone.container, students), await count(everyone.container, terms)
    r = await everyone.request(who, method, path, json=body)
    problem = assert_problem(r, 422, "validation_error")
    assert error_types(problem) == {"string_nul"}, problem
    after = await count(everyone.container, students), await count(everyone.container, terms)
    assert after == before


async def test_nul_in_an_answer_is_refused(everyone: Board) -> None:
    asked = await everyone.ask("kim")
    assert asked.status_code == 201, asked.text
    r = await everyone.answer(asked.json()["id"], f"a{NUL}")
    assert error_types(assert_problem(r, 422, "validation_error")) == {"string_nul"}


NUL_PARAMS = [
    pytest.param("s1", "GET", f"/terms/a{NUL}b/sections", id="catalog-term"),
    pytest.param("s1", "POST", f"/queue/a{NUL}b/join", id="queue-term"),
    pytest.param("s1", "DELETE", f"/terms/{TERM}/enrollments/x{NUL}", id="drop-section"),
    pytest.param(
        "admin", "GET", f"/admin/terms/{TERM}/sections/x{NUL}/roster", id="roster-section"
    ),
    pytest.param("kim", "GET", f"/admissions/{ROUND}{NUL}", id="round"),
    pytest.param("kim", "GET", f"/admissions/{ROUND}{NUL}/questions", id="questions-round"),
    pytest.param(
        "kim", "GET", f"/admissions/{ROUND}/questions?cursor=a{NUL}", id="questions-cursor"
    ),
    pytest.param(
        "admin",
        "GET",
        f"/admin/admissions/{ROUND}/applications?track=g{NUL}",
        id="applications-track",
    ),
    pytest.param(
        "admin",
        "GET",
        f"/admin/admissions/{ROUND}/applications.csv?track=g{NUL}",
        id="export-track",
    ),
    pytest.param(
        "admin",
        "GET",
        f"/admin/admissions/{ROUND}/applications/2027-A-000001{NUL}/documents",
        id="receipt",
    ),
    pytest.param("anon", "GET", f"/applicants/verify?token=a{NUL}", id="verify-link"),
]


@pytest.mark.parametrize(("who", "method", "path"), NUL_PARAMS)
async def test_nul_in_a_path_or_query_parameter_is_refused(
    everyone: Board, who: str, method: str, path: str
) -> None:
    """These reach a query: on PostgreSQL a NUL there was a 500."""
    r = await everyone.request(who, method, path.replace(NUL, "%00"))
    problem = assert_problem(r, 422, "validation_error")
    assert error_types(problem) == {"string_nul"}, problem


async def test_nul_in_an_upload_form_field_is_refused(everyone: Board) -> None:
    r = await everyone.request(
        "kim",
        "POST",
        f"/admissions/{ROUND}/application/documents",
        data={"kind": f"transcript{NUL}"},
        files={"file": ("a.pdf", b"%PDF-1.4\n%\xe2\xe3\n", "application/pdf")},
    )
    problem = assert_problem(r, 422, "validation_failed")
    assert problem["errors"] == [{"field": "kind", "message": "must not contain NUL (U+0000)"}]


async def test_deeply_nested_bodies_are_refused_not_a_500(term: Api) -> None:
    """The NUL check walks nested values without recursion."""
    deep: Any = "x"
    for _ in range(900):
        deep = [deep]
    r = await term.create_sections([section_json("A-01", meetings=deep)])
    assert_problem(r, 422, "validation_error")


def _object_schemas(doc: dict[str, Any], schema: dict[str, Any]) -> list[tuple[str, Any]]:
    """Every object schema reachable from ``schema``, by name (``$ref``s resolved)."""
    found: list[tuple[str, Any]] = []
    seen: set[str] = set()
    pending: list[tuple[str, Any]] = [("body", schema)]
    while pending:
        name, item = pending.pop()
        if isinstance(item, list):
            pending += [(name, i) for i in item]
        elif isinstance(item, dict):
            ref = item.get("$ref")
            if isinstance(ref, str):
                if ref not in seen:
                    seen.add(ref)
                    ref_name = ref.rsplit("/", 1)[1]
                    pending.append((ref_name, doc["components"]["schemas"][ref_name]))
                continue
            if item.get("type") == "object" and "properties" in item:
                found.append((name, item))
            pending += [(name, v) for v in item.values() if isinstance(v, dict | list)]
    return found


async def test_every_json_request_body_refuses_unknown_fields(client: httpx.AsyncClient) -> None:
    """No mass assignment: every request model (nested ones too) has extra="forbid"."""
    doc = (await client.get("/openapi.json")).json()
    models: list[tuple[str, Any]] = []
    for operations in doc["paths"].values():
        for operation in operations.values():
            content = operation.get("requestBody", {}).get("content", {})
            if "application/json" in content:
                models += _object_schemas(doc, content["application/json"]["schema"])
    names = {name for name, _ in models}
    assert {"TermCreate", "SectionCreate", "MeetingIn", "SignUp", "QuestionIn"} <= names
    assert [
        name for name, schema in models if schema.get("additionalProperties") is not False
    ] == []


# --- 5. emails are one account whatever their case ----------------------------------


async def test_student_emails_are_unique_whatever_their_case(
    api: Api, container: Container
) -> None:
    assert (await api.create_students([student_json("s1", email="S1@X.EDU")])).status_code == 201
    r = await api.create_students([student_json("s2", email="s1@x.edu")])
    assert assert_problem(r, 409, "conflict")["existing"] == ["s1@x.edu"]
    r = await api.create_students([student_json("s3", email="s1@X.edu")])
    assert_problem(r, 409, "conflict")
    assert await count(container, students) == 1
    async with container.storage.primary_reads.connect() as conn:
        stored = (await conn.execute(select(students.c.email))).scalars().all()
    assert stored == ["s1@x.edu"], "stored lower-cased"


async def test_an_admin_named_by_email_logs_in_whatever_the_case(
    api: Api, container: Container
) -> None:
    assert await container.registry.ensure_admin("Registrar@Uni.EDU", "registrar-password")
    assert not await container.registry.ensure_admin("registrar@uni.edu", "other-password")
    for typed in ("Registrar@Uni.EDU", "registrar@uni.edu", "REGISTRAR@UNI.EDU"):
        assert (await api.login(typed, "registrar-password")).status_code == 200, typed
    # One namespace of addresses: an applicant cannot take it in another spelling.
    adm = Admissions(api, container)
    assert_problem(await adm.sign_up("REGISTRAR@uni.edu"), 409, "conflict")


async def test_an_applicant_logs_in_whatever_the_case(api: Api, container: Container) -> None:
    adm = Admissions(api, container)
    assert (await adm.sign_up("Kim.Ha@Example.TEST")).status_code == 201
    assert_problem(await adm.sign_up("kim.ha@example.test"), 409, "conflict")
    for typed in ("kim.ha@example.test", "KIM.HA@EXAMPLE.TEST"):
        assert (await api.login(typed, "applicant-pass-1")).status_code == 200, typed


# --- 6. bulk requests are capped -----------------------------------------------------


async def test_a_sections_batch_over_the_cap_writes_nothing(
    term: Api, container: Container
) -> None:
    batch = [section_json(f"C{n:05d}-01") for n in range(MAX_BULK_ITEMS + 1)]
    problem = assert_problem(await term.create_sections(batch), 422, "validation_error")
    assert error_types(problem) == {"too_long"}
    assert await count(container, sections) == 0
    assert (await term.create_sections(batch[:MAX_BULK_ITEMS])).status_code == 201
    assert await count(container, sections) == MAX_BULK_ITEMS


async def test_a_students_batch_over_the_cap_writes_nothing(api: Api, container: Container) -> None:
    batch = [student_json(f"s{n:05d}") for n in range(MAX_BULK_ITEMS + 1)]
    problem = assert_problem(await api.create_students(batch), 422, "validation_error")
    assert error_types(problem) == {"too_long"}
    assert await count(container, students) == 0


async def test_the_caps_are_documented(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    for path in ("/api/v1/admin/terms/{term}/sections", "/api/v1/admin/students"):
        operation = paths[path]["post"]
        schema = operation["requestBody"]["content"]["application/json"]["schema"]
        assert schema["maxItems"] == MAX_BULK_ITEMS
        assert "1,000" in operation["description"]
        assert str(MAX_BULK_ITEMS) in operation["responses"]["422"]["description"]
