"""Object-level authorization (BOLA/IDOR) on every endpoint, taken from the OpenAPI.

Two rules, checked here for every operation the app publishes:

* **Roles.** Each operation is classified in :data:`ACCESS`. A caller without a token
  gets 401; a caller of another role gets 403 ``forbidden``, before anything is looked up
  (so the answer is the same whether the object exists). A new operation that is not
  classified fails :func:`test_every_operation_is_classified`: decide who may call it.
* **Objects.** What belongs to a user (an enrollment, a ticket, an application, its
  documents, receipt and history, a private question) is found through the caller's own
  identity, never through an id or code alone. Someone else's object is answered exactly
  like one that does not exist: 404 ``not_found`` with the same detail (no 403 that would
  confirm it exists), and nothing of it changes.
"""

from __future__ import annotations

import dataclasses
import enum
import re
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from rushgate.adapters.security import Argon2Hasher
from rushgate.composition import Container
from rushgate.domain.admissions import ApplicationStatus
from rushgate.domain.clock import FixedClock
from rushgate.services.ports.admissions import ApplicationRecord
from tests.admissions_seed import (
    APPLICANT_PASSWORD,
    ROUND,
    add_applicant,
    add_application,
    add_round,
    new_round,
)
from tests.http.api import TERM, Api, assert_problem, section_json, term_json
from tests.http.board_api import Board, email


class Access(enum.Enum):
    PUBLIC = "anyone, no token"
    SIGNED_IN = "any role with a token"
    STUDENT = "students only"
    APPLICANT = "applicants only"
    ADMIN = "admins only"
    APPLICANT_OR_ADMIN = "applicants and staff (the Q&A board)"


#: Every operation of the app, and who may call it. Keep it complete: an operation
#: missing here fails the first test below.
ACCESS: dict[tuple[str, str], Access] = {
    # operators (nginx allows /metrics from this machine only)
    ("GET", "/healthz"): Access.PUBLIC,
    ("GET", "/readyz"): Access.PUBLIC,
    ("GET", "/metrics"): Access.PUBLIC,
    # logging in
    ("POST", "/api/v1/auth/token"): Access.PUBLIC,
    ("POST", "/api/v1/auth/session"): Access.PUBLIC,
    ("DELETE", "/api/v1/auth/session"): Access.PUBLIC,
    ("GET", "/api/v1/challenge"): Access.PUBLIC,
    ("POST", "/api/v1/applicants"): Access.PUBLIC,
    ("POST", "/api/v1/applicants/verify"): Access.PUBLIC,
    ("GET", "/api/v1/applicants/verify"): Access.PUBLIC,
    # terms and the catalog (the same for everyone: see the catalog route)
    ("GET", "/api/v1/terms"): Access.SIGNED_IN,
    ("GET", "/api/v1/terms/{term}/sections"): Access.PUBLIC,
    # a student's own enrollments
    ("POST", "/api/v1/terms/{term}/enrollments"): Access.STUDENT,
    ("DELETE", "/api/v1/terms/{term}/enrollments/{section_id}"): Access.STUDENT,
    ("GET", "/api/v1/terms/{term}/enrollments/me"): Access.STUDENT,
    # a student's own ticket
    ("POST", "/api/v1/queue/{term}/join"): Access.STUDENT,
    ("GET", "/api/v1/queue/{term}/status"): Access.STUDENT,
    ("GET", "/api/v1/queue/{term}/stream"): Access.STUDENT,
    ("POST", "/api/v1/queue/{term}/leave"): Access.STUDENT,
    # an applicant's own account, application, receipt, history and documents
    ("GET", "/api/v1/applicants/me"): Access.APPLICANT,
    ("GET", "/api/v1/admissions/{round_code}"): Access.SIGNED_IN,
    ("PUT", "/api/v1/admissions/{round_code}/application"): Access.APPLICANT,
    ("GET", "/api/v1/admissions/{round_code}/application"): Access.APPLICANT,
    ("POST", "/api/v1/admissions/{round_code}/application/submit"): Access.APPLICANT,
    ("POST", "/api/v1/admissions/{round_code}/application/withdraw"): Access.APPLICANT,
    ("GET", "/api/v1/admissions/{round_code}/application/history"): Access.APPLICANT,
    ("GET", "/api/v1/admissions/{round_code}/application/receipt"): Access.APPLICANT,
    ("POST", "/api/v1/admissions/{round_code}/application/documents"): Access.APPLICANT,
    ("GET", "/api/v1/admissions/{round_code}/application/documents"): Access.APPLICANT,
    (
        "GET",
        "/api/v1/admissions/{round_code}/application/documents/{document_id}",
    ): Access.APPLICANT,
    (
        "DELETE",
        "/api/v1/admissions/{round_code}/application/documents/{document_id}",
    ): Access.APPLICANT,
    # the Q&A board: applicants ask, staff answer; the FAQ is readable by any login
    ("POST", "/api/v1/admissions/{round_code}/questions"): Access.APPLICANT,
    ("GET", "/api/v1/admissions/{round_code}/questions"): Access.APPLICANT_OR_ADMIN,
    ("GET", "/api/v1/admissions/{round_code}/questions/{question_id}"): Access.APPLICANT_OR_ADMIN,
    ("GET", "/api/v1/admissions/{round_code}/faq"): Access.SIGNED_IN,
    # staff
    ("POST", "/api/v1/admin/terms"): Access.ADMIN,
    ("PATCH", "/api/v1/admin/terms/{term}"): Access.ADMIN,
    ("POST", "/api/v1/admin/terms/{term}/queue/pause"): Access.ADMIN,
    ("POST", "/api/v1/admin/terms/{term}/queue/resume"): Access.ADMIN,
    ("POST", "/api/v1/admin/terms/{term}/sections"): Access.ADMIN,
    ("POST", "/api/v1/admin/students"): Access.ADMIN,
    ("GET", "/api/v1/admin/terms/{term}/sections/{section_id}/roster"): Access.ADMIN,
    ("GET", "/api/v1/admin/audit"): Access.ADMIN,
    ("POST", "/api/v1/admin/admissions"): Access.ADMIN,
    ("GET", "/api/v1/admin/admissions/{round_code}/applications"): Access.ADMIN,
    ("GET", "/api/v1/admin/admissions/{round_code}/applications.csv"): Access.ADMIN,
    (
        "PUT",
        "/api/v1/admin/admissions/{round_code}/applications/{receipt_number}/status",
    ): Access.ADMIN,
    ("POST", "/api/v1/admin/admissions/{round_code}/waitlist-admissions"): Access.ADMIN,
    (
        "POST",
        "/api/v1/admin/admissions/{round_code}/questions/{question_id}/answer",
    ): Access.ADMIN,
    ("POST", "/api/v1/admin/admissions/{round_code}/faq"): Access.ADMIN,
    (
        "GET",
        "/api/v1/admin/admissions/{round_code}/applications/{receipt_number}/documents",
    ): Access.ADMIN,
    (
        "GET",
        "/api/v1/admin/admissions/{round_code}/applications/{receipt_number}/documents/"
        "{document_id}",
    ): Access.ADMIN,
}

#: Who each caller is: its role, and who may call what.
ROLES = ("anon", "s1", "kim", "admin")
ALLOWED: dict[Access, set[str]] = {
    Access.PUBLIC: set(ROLES),
    Access.SIGNED_IN: {"s1", "kim", "admin"},
    Access.STUDENT: {"s1"},
    Access.APPLICANT: {"kim"},
    Access.ADMIN: {"admin"},
    Access.APPLICANT_OR_ADMIN: {"kim", "admin"},
}
_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


def operations(app: FastAPI) -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, item in app.openapi()["paths"].items()
        for method in item
        if method in _METHODS
    }


def test_every_operation_is_classified(app: FastAPI) -> None:
    published = operations(app)
    unclassified = sorted(published - ACCESS.keys())
    assert not unclassified, (
        "new operations: add each to ACCESS in tests/http/test_bola.py (who may call it?) "
        "and, if it takes an object id or acts on the caller's own object, a test that "
        f"nobody else reaches that object: {unclassified}"
    )
    assert not sorted(ACCESS.keys() - published), "ACCESS lists operations the app lost"


# ---- the world: a term, a waiting-room term, a round, two of each kind of user ---------

ROOM_TERM = "room-term"
OTHER_ROUND = "2027-other"
DOCS = f"/api/v1/admissions/{ROUND}/application/documents"
PDF = b"%PDF-1.7\n" + bytes(range(256)) * 4


class World(Board):
    """Students s1 and s2 in ``TERM`` and ``ROOM_TERM``; applicants kim (a submitted
    application) and lee (none yet) in ``ROUND``; an admin."""

    kims: ApplicationRecord

    async def call(self, who: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {**await self.headers(who), **kwargs.pop("headers", {})}
        return await self.client.request(method, path, headers=headers, **kwargs)

    async def enroll(self, who: str, section_id: str, **headers: str) -> httpx.Response:
        return await self.call(
            who,
            "POST",
            f"/api/v1/terms/{TERM}/enrollments",
            json={"section_id": section_id},
            headers=headers,
        )

    async def schedule(self, who: str, term: str = TERM) -> list[str]:
        r = await self.call(who, "GET", f"/api/v1/terms/{term}/enrollments/me")
        assert r.status_code == 200, r.text
        return [e["section_id"] for e in r.json()["enrollments"]]

    async def roster(self, section_id: str, term: str = TERM) -> list[str]:
        r = await self.call(
            "admin", "GET", f"/api/v1/admin/terms/{term}/sections/{section_id}/roster"
        )
        assert r.status_code == 200, r.text
        return [e["student_id"] for e in r.json()["enrolled"]]


@pytest.fixture
async def world(api: Api, container: Container, hasher: Argon2Hasher) -> World:
    world = World(api, container)
    assert (await api.create_term(term_json())).status_code == 201
    room = term_json(ROOM_TERM, waiting_room={"enabled": True, "admit_per_second": 8})
    assert (await api.create_term(room)).status_code == 201
    sections = [section_json("CS101-01", capacity=5), section_json("ART100-01", capacity=5)]
    for term in (TERM, ROOM_TERM):
        assert (await api.create_sections(sections, term=term)).status_code == 201
    students = [
        {
            "student_id": s,
            "name": s,
            "email": f"{s}@school.test",
            "password": "password-123",
            "class_year": 2,
            "max_credits": 18,
        }
        for s in ("s1", "s2")
    ]
    assert (await api.create_students(students)).status_code == 201
    await add_round(container.storage)
    other_round = dataclasses.replace(new_round(OTHER_ROUND), receipt_prefix="2027-B")
    await add_round(container.storage, other_round)
    password_hash = hasher.hash(APPLICANT_PASSWORD)
    for who in ("kim", "lee"):
        applicant = await add_applicant(container.storage, email(who), password_hash=password_hash)
        world.user_pks[who] = applicant.user_pk
    world.kims = await add_application(
        container.storage, await world.applicant_pk("kim"), status=ApplicationStatus.SUBMITTED
    )
    return world


# ---- roles ------------------------------------------------------------------------------

_FILL = {
    "term": TERM,
    "section_id": "CS101-01",
    "round_code": ROUND,
    "receipt_number": "2027-A-000001",
    "document_id": "1",
    "question_id": "1",
}


def _concrete(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: _FILL[m.group(1)], path)


RESTRICTED = sorted(key for key, access in ACCESS.items() if access is not Access.PUBLIC)


@pytest.mark.parametrize(("method", "path"), RESTRICTED, ids=[f"{m} {p}" for m, p in RESTRICTED])
async def test_each_role_reaches_only_its_operations(world: World, method: str, path: str) -> None:
    allowed = ALLOWED[ACCESS[(method, path)]]
    json: dict[str, Any] | None = {} if method in ("POST", "PUT") else None
    for who in ROLES:
        r = await world.call(who, method, _concrete(path), json=json)
        if who in allowed:
            # Its answer may be anything but a refusal of the caller as such.
            refused = r.status_code == 401 or (
                r.status_code == 403 and r.json().get("code") == "forbidden"
            )
            assert not refused, (who, r.status_code, r.text)
        elif who == "anon":
            assert_problem(r, 401, "unauthorized")
        else:
            assert_problem(r, 403, "forbidden")


# ---- enrollments ------------------------------------------------------------------------


async def test_a_student_cannot_drop_or_see_anothers_enrollment(world: World) -> None:
    assert (await world.enroll("s1", "CS101-01")).status_code == 201
    drop = f"/api/v1/terms/{TERM}/enrollments/CS101-01"
    hidden = await world.call("s2", "DELETE", drop)
    absent = await world.call("s2", "DELETE", f"/api/v1/terms/{TERM}/enrollments/ART100-01")
    assert_problem(hidden, 404, "not_found")
    assert_problem(absent, 404, "not_found")
    assert hidden.json()["detail"] == absent.json()["detail"]
    assert await world.schedule("s1") == ["CS101-01"]
    assert await world.schedule("s2") == []
    assert await world.roster("CS101-01") == ["s1"]


async def test_an_idempotency_key_belongs_to_its_student(world: World) -> None:
    # The same key from another student is that student's own first request: never a
    # replay of someone else's result (which would also tell what they enrolled in).
    first = await world.enroll("s1", "CS101-01", **{"Idempotency-Key": "shared-key"})
    assert first.status_code == 201
    same_section = await world.enroll("s2", "CS101-01", **{"Idempotency-Key": "shared-key"})
    assert same_section.status_code == 201
    assert "idempotent-replayed" not in same_section.headers
    other_section = await world.enroll("s2", "ART100-01", **{"Idempotency-Key": "shared-key"})
    assert_problem(other_section, 422, "idempotency_key_reused")  # s2's own key, reused
    assert sorted(await world.roster("CS101-01")) == ["s1", "s2"]
    assert await world.roster("ART100-01") == []


# ---- the waiting room -------------------------------------------------------------------


async def _admit(world: World, clock: FixedClock, who: str) -> str:
    r = await world.call(who, "POST", f"/api/v1/queue/{ROOM_TERM}/join")
    assert r.status_code == 200, r.text
    for _ in range(8):
        clock.set(clock.now() + timedelta(seconds=0.25))
        await world.container.admitter.tick_once()
        status = (await world.call(who, "GET", f"/api/v1/queue/{ROOM_TERM}/status")).json()
        if status["state"] == "admitted":
            token: str = status["admission_token"]
            return token
    raise AssertionError(f"{who} was never admitted: {status}")


async def test_a_ticket_is_only_its_students(world: World, clock: FixedClock) -> None:
    joined = (await world.call("s1", "POST", f"/api/v1/queue/{ROOM_TERM}/join")).json()
    for path in ("status", "stream"):
        r = await world.call("s2", "GET", f"/api/v1/queue/{ROOM_TERM}/{path}")
        assert_problem(r, 404, "not_in_queue")
    assert_problem(
        await world.call("s2", "POST", f"/api/v1/queue/{ROOM_TERM}/leave"), 404, "not_in_queue"
    )
    after = (await world.call("s1", "GET", f"/api/v1/queue/{ROOM_TERM}/status")).json()
    assert (after["ticket"], after["state"]) == (joined["ticket"], joined["state"])
    other = (await world.call("s2", "POST", f"/api/v1/queue/{ROOM_TERM}/join")).json()
    assert other["ticket"] != joined["ticket"]


async def test_an_admission_token_admits_only_its_student(world: World, clock: FixedClock) -> None:
    token = await _admit(world, clock, "s1")
    path = f"/api/v1/terms/{ROOM_TERM}/enrollments"
    body = {"section_id": "CS101-01"}
    stolen = await world.call("s2", "POST", path, json=body, headers={"X-Admission-Token": token})
    assert_problem(stolen, 403, "not_admitted")
    # ...nor another term: a token is for (student, term).
    elsewhere = await world.call(
        "s1", "POST", f"/api/v1/terms/{TERM}/enrollments", json=body,
        headers={"X-Admission-Token": token},
    )  # fmt: skip
    assert elsewhere.status_code == 201  # TERM has no waiting room: the token is not needed
    own = await world.call("s1", "POST", path, json=body, headers={"X-Admission-Token": token})
    assert own.status_code == 201, own.text
    assert await world.roster("CS101-01", ROOM_TERM) == ["s1"]


# ---- applications -----------------------------------------------------------------------


def _application(suffix: str = "", round_code: str = ROUND) -> str:
    return f"/api/v1/admissions/{round_code}/application{suffix}"


async def test_an_applicant_never_reaches_anothers_application(world: World) -> None:
    kims = (await world.call("kim", "GET", _application())).json()
    receipt = world.kims.receipt_number
    assert receipt is not None
    assert kims["receipt_number"] == receipt
    for method, suffix in (
        ("GET", ""),
        ("GET", "/receipt"),
        ("GET", "/history"),
        ("POST", "/withdraw"),
        ("POST", "/submit"),
        ("GET", "/documents"),
    ):
        r = await world.call("lee", method, _application(suffix))
        assert_problem(r, 404, "not_found")
        assert receipt not in r.text
    # lee's save makes lee's own application; kim's stays as it was.
    saved = await world.call(
        "lee", "PUT", _application(), json={"track": "general", "statement": "lee's own"}
    )
    assert saved.status_code == 201, saved.text
    assert saved.json()["receipt_number"] is None
    assert saved.json()["status"] == "draft"
    assert (await world.call("kim", "GET", _application())).json() == kims


@pytest.mark.parametrize(
    "field",
    [
        {"status": "accepted"},
        {"receipt_number": "2027-A-000001"},
        {"applicant_id": 1},
        {"user_pk": 1},
        {"round": OTHER_ROUND},
    ],
)
async def test_no_ownership_or_status_field_can_be_assigned(
    world: World, field: dict[str, Any]
) -> None:
    body = {"track": "general", "statement": "x", **field}
    assert_problem(await world.call("lee", "PUT", _application(), json=body), 422)
    assert_problem(await world.call("lee", "GET", _application()), 404, "not_found")


async def test_documents_are_reached_through_their_own_application_only(world: World) -> None:
    await add_application(world.container.storage, await world.applicant_pk("lee"))
    up = await world.call(
        "kim", "POST", DOCS, data={"kind": "transcript"},
        files={"file": ("성적.pdf", PDF, "application/pdf")},
    )  # fmt: skip
    assert up.status_code == 201, up.text
    kim_doc = up.json()["id"]
    hidden = await world.call("lee", "GET", f"{DOCS}/{kim_doc}")
    absent = await world.call("lee", "GET", f"{DOCS}/{kim_doc + 1000}")
    assert_problem(hidden, 404, "not_found")
    assert hidden.json()["detail"] == absent.json()["detail"]
    assert_problem(await world.call("lee", "DELETE", f"{DOCS}/{kim_doc}"), 404, "not_found")
    # Another round's path with kim's document id: not kim's application there either.
    other = f"/api/v1/admissions/{OTHER_ROUND}/application/documents/{kim_doc}"
    assert_problem(await world.call("kim", "GET", other), 404, "not_found")
    assert (await world.call("lee", "GET", DOCS)).json() == []
    kept = await world.call("kim", "GET", f"{DOCS}/{kim_doc}")
    assert kept.status_code == 200
    assert kept.content == PDF

    # Staff reach a document through the receipt of the application it belongs to only.
    lees = await add_application(
        world.container.storage,
        await world.applicant_pk("lee"),
        round_code=OTHER_ROUND,
        status=ApplicationStatus.SUBMITTED,
    )
    staff = "/api/v1/admin/admissions/{round}/applications/{receipt}/documents/{doc}"
    assert lees.receipt_number is not None
    assert world.kims.receipt_number is not None
    wrong = staff.format(round=OTHER_ROUND, receipt=lees.receipt_number, doc=kim_doc)
    assert_problem(await world.call("admin", "GET", wrong), 404, "not_found")
    right = staff.format(round=ROUND, receipt=world.kims.receipt_number, doc=kim_doc)
    assert (await world.call("admin", "GET", right)).content == PDF


async def test_staff_change_an_application_only_in_its_round(world: World) -> None:
    receipt = world.kims.receipt_number
    assert receipt is not None
    path = f"/api/v1/admin/admissions/{OTHER_ROUND}/applications/{receipt}/status"
    r = await world.call("admin", "PUT", path, json={"status": "under_review"})
    assert_problem(r, 404, "not_found")
    assert (await world.call("kim", "GET", _application())).json()["status"] == "submitted"


# ---- the Q&A board ----------------------------------------------------------------------


async def test_a_private_question_is_its_askers_and_staffs_only(world: World) -> None:
    private = await world.asked("kim", "내 성적으로 합격 가능할까요?", public=False)
    public = await world.asked("kim", "전형료는 얼마인가요?", public=True)
    hidden = await world.question("lee", private)
    absent = await world.question("lee", private + 1000)
    assert_problem(hidden, 404, "not_found")
    assert hidden.json()["detail"] == absent.json()["detail"]
    assert "합격" not in hidden.text
    assert await world.titles("lee") == ["전형료는 얼마인가요?"]
    seen = (await world.question("lee", public)).json()
    assert seen["mine"] is False
    assert seen["author_name"] is None
    assert (await world.question("kim", private)).json()["mine"] is True
    assert (await world.question("admin", private)).status_code == 200
    # Another round's path with the question's id: not found there.
    assert_problem(await world.question("kim", private, round_code=OTHER_ROUND), 404)
    answered = await world.answer(private, "가능합니다.", round_code=OTHER_ROUND)
    assert_problem(answered, 404, "not_found")
    assert (await world.question("kim", private)).json()["answer"] is None


async def test_an_applicant_cannot_answer_or_write_the_faq(world: World) -> None:
    question = await world.asked("kim", "질문", public=True)
    assert_problem(await world.answer(question, "스스로 답함", who="kim"), 403, "forbidden")
    assert_problem(await world.add_faq("q", "a", who="lee"), 403, "forbidden")
    assert (await world.question("kim", question)).json()["answer"] is None
    assert (await world.faq("kim")).json() == []
