"""Admission applications over HTTP on both backends: sign-up and verification, the
application from draft to receipt, deadlines, who may see what, staff decisions."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import timedelta

import pytest
import sqlalchemy as sa

from rushgate.adapters.sql.tables import application_history, applications
from rushgate.composition import Container
from rushgate.domain.clock import FixedClock
from tests.http.admissions_api import (
    CLOSES,
    OPENS,
    ROUND,
    Admissions,
    application_json,
    personal_json,
    round_json,
)
from tests.http.api import Api, assert_problem, student_json


@pytest.fixture
async def adm(api: Api, container: Container) -> Admissions:
    helper = Admissions(api, container)
    r = await helper.create_round()
    assert r.status_code == 201, r.text
    return helper


async def test_a_round_is_created_and_read_back(adm: Admissions) -> None:
    headers = await adm.applicant("reader@example.test")
    body = (await adm.client.get(f"/api/v1/admissions/{ROUND}", headers=headers)).json()
    assert body["receipt_prefix"] == "2027-A"
    assert [t["code"] for t in body["tracks"]] == ["general", "arts"]
    assert_problem(await adm.create_round(), 409, "conflict")
    assert_problem(await adm.client.get("/api/v1/admissions/nope", headers=headers), 404)


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        pytest.param({"closes_at": OPENS.isoformat()}, "invalid_request", id="closes-first"),
        pytest.param({"receipt_prefix": "-bad-"}, "invalid_request", id="bad-prefix"),
        pytest.param({"tracks": []}, "validation_error", id="no-tracks"),
        pytest.param(
            {"tracks": [{"code": "a", "name": "A"}, {"code": "a", "name": "B"}]},
            "invalid_request",
            id="duplicate-track",
        ),
        pytest.param({"opens_at": "2026-02-10T10:00:00"}, "validation_error", id="naive"),
    ],
)
async def test_a_bad_round_is_refused(
    adm: Admissions, changes: dict[str, object], code: str
) -> None:
    r = await adm.create_round(round_json("other", **changes))
    assert_problem(r, 422, code)


async def test_sign_up_is_one_account_per_address_whatever_its_case(adm: Admissions) -> None:
    r = await adm.sign_up("Mixed.Case@Example.Test")
    assert r.status_code == 201, r.text
    assert r.json() == {
        "email": "mixed.case@example.test",
        "name": "지원자",
        "locale": None,
        "verified": False,
        "verification_required": True,
    }
    assert_problem(await adm.sign_up("mixed.case@example.test"), 409, "conflict")
    assert_problem(await adm.sign_up("MIXED.CASE@EXAMPLE.TEST"), 409, "conflict")
    # Logging in works with the address as typed at sign-up.
    assert (await adm.api.login("Mixed.Case@Example.Test", "applicant-pass-1")).status_code == 200


async def test_sign_up_lists_every_bad_field_and_writes_nothing(adm: Admissions) -> None:
    r = await adm.client.post(
        "/api/v1/applicants",
        # A control character the domain refuses (NUL is refused earlier, by the schema).
        json={"email": "not-an-email", "password": "short", "name": "a\x1bb", "locale": "ko"},
    )
    body = assert_problem(r, 422, "validation_failed")
    assert {e["field"] for e in body["errors"]} == {"email", "password", "name"}
    assert await adm.outbox() == []
    assert_problem(await adm.api.login("not-an-email", "short"), 401, "invalid_credentials")


async def test_the_verification_mail_is_written_with_the_account(adm: Admissions) -> None:
    await adm.sign_up("v@example.test")
    [mail] = await adm.outbox("applicant.verify_email")
    assert mail["username"] == "v@example.test"
    assert "token=" in mail["payload"]["verify_url"]
    headers = await adm.headers("v@example.test")
    assert (await adm.client.get("/api/v1/applicants/me", headers=headers)).json()[
        "verified"
    ] is False
    await adm.verify("v@example.test")
    assert (await adm.client.get("/api/v1/applicants/me", headers=headers)).json()[
        "verified"
    ] is True
    await adm.verify("v@example.test")  # a second click is fine


@pytest.mark.parametrize("token", ["", "garbage", "a.b.c"])
async def test_a_forged_verification_token_is_refused(adm: Admissions, token: str) -> None:
    r = await adm.client.post("/api/v1/applicants/verify", json={"token": token})
    assert r.status_code == 422


async def test_a_draft_becomes_a_receipt_once(adm: Admissions) -> None:
    headers = await adm.applicant("a@example.test")
    draft = await adm.save(headers, {"statement": "first words"})
    assert draft.status_code == 201, draft.text
    assert draft.json()["status"] == "draft"
    assert draft.json()["receipt_number"] is None
    assert_problem(await adm.submit(headers), 422, "validation_failed")  # incomplete

    saved = await adm.save(headers)
    assert saved.status_code == 200
    assert saved.json()["version"] == 2
    first = await adm.submit(headers)
    assert first.status_code == 201, first.text
    assert first.json()["receipt_number"] == "2027-A-000001"
    again = await adm.submit(headers)
    assert again.status_code == 200
    assert again.json()["receipt_number"] == "2027-A-000001"

    mine = (await adm.client.get(adm.path(), headers=headers)).json()
    assert mine["status"] == "submitted"
    assert mine["personal"] == {
        **personal_json(),
        "phone": "01012345678",
        "guardian_phone": "01087654321",
    }
    receipt = (await adm.client.get(adm.path("/receipt"), headers=headers)).json()
    assert receipt["receipt_number"] == "2027-A-000001"
    assert receipt["applicant"] == "지원자"
    [mail] = await adm.outbox("application.submitted")
    assert mail["payload"]["receipt_number"] == "2027-A-000001"
    assert mail["username"] == "a@example.test"


async def test_submitting_needs_a_verified_address(adm: Admissions) -> None:
    headers = await adm.applicant("u@example.test", verified=False)
    assert (await adm.save(headers)).status_code == 201
    assert_problem(await adm.submit(headers), 403, "email_unverified")
    await adm.verify("u@example.test")
    assert (await adm.submit(headers)).status_code == 201


async def test_personal_data_is_sealed_at_rest_and_in_the_history(adm: Admissions) -> None:
    headers = await adm.applicant("sealed@example.test")
    await adm.save(headers)
    await adm.submit(headers)
    async with adm.container.storage.primary.connect() as conn:
        stored = (await conn.execute(sa.select(applications.c.personal))).scalar_one()
        history = (await conn.execute(sa.select(application_history.c.snapshot))).scalars().all()
    for text in (str(stored), *map(str, history)):
        for secret in ("01012345678", "01087654321", "2011-03-14"):
            assert secret not in text
    assert stored["name"] == "김하늘"  # only the phones and the birth date are sealed
    assert stored["phone"].startswith("v1.")


async def test_edits_until_the_deadline_are_kept_in_the_history(
    adm: Admissions, clock: FixedClock
) -> None:
    headers = await adm.applicant("late@example.test")
    await adm.save(headers)
    await adm.submit(headers)
    clock.set(CLOSES - timedelta(seconds=1))
    headers = await adm.fresh_headers("late@example.test")
    edited = await adm.save(headers, application_json(track="arts"))
    assert edited.status_code == 200, edited.text
    assert edited.json()["status"] == "submitted"
    assert edited.json()["receipt_number"] == "2027-A-000001"
    clock.set(CLOSES + timedelta(seconds=1))
    headers = await adm.fresh_headers("late@example.test")
    body = assert_problem(await adm.save(headers), 403, "window_closed")
    assert body["closes_at"] == CLOSES.isoformat()
    assert (await adm.client.get(adm.path(), headers=headers)).json()["track"] == "arts"
    history = (await adm.client.get(adm.path("/history"), headers=headers)).json()
    assert [h["action"] for h in history] == ["saved", "submitted", "edited"]
    assert all(h["by_applicant"] for h in history)


async def test_submitting_outside_the_window_is_refused(adm: Admissions, clock: FixedClock) -> None:
    headers = await adm.applicant("early@example.test")
    clock.set(OPENS - timedelta(hours=1))
    headers = await adm.fresh_headers("early@example.test")
    assert (await adm.save(headers)).status_code == 201  # drafts may be prepared early
    assert_problem(await adm.submit(headers), 403, "window_closed")
    clock.set(CLOSES)
    headers = await adm.fresh_headers("early@example.test")
    assert_problem(await adm.submit(headers), 403, "window_closed")


async def test_an_edit_cannot_leave_a_filed_application_incomplete(adm: Admissions) -> None:
    headers = await adm.applicant("keep@example.test")
    await adm.save(headers)
    await adm.submit(headers)
    r = await adm.save(headers, application_json(consent=False, personal=None))
    body = assert_problem(r, 422, "validation_failed")
    assert {e["field"] for e in body["errors"]} == {"personal", "consent"}


async def test_bad_personal_details_are_listed_field_by_field(adm: Admissions) -> None:
    headers = await adm.applicant("bad@example.test")
    body = application_json(
        personal=personal_json(phone="12", birth_date="2030-01-01", address=""), track="nope"
    )
    problem = assert_problem(await adm.save(headers, body), 422, "validation_failed")
    assert {e["field"] for e in problem["errors"]} == {
        "track",
        "personal.phone",
        "personal.birth_date",
        "personal.address",
    }
    assert_problem(await adm.client.get(adm.path(), headers=headers), 404)  # nothing saved


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(application_json(personal=personal_json(phone=1012345678)), id="int-phone"),
        pytest.param(application_json(consent="yes"), id="str-consent"),
        pytest.param(application_json(status="accepted"), id="mass-assignment"),
        pytest.param(application_json(personal={**personal_json(), "ssn": "x"}), id="extra"),
    ],
)
async def test_loose_types_and_unknown_fields_are_refused(
    adm: Admissions, body: dict[str, object]
) -> None:
    headers = await adm.applicant("strict@example.test")
    assert_problem(await adm.save(headers, body), 422)


async def test_withdrawal_is_final(adm: Admissions) -> None:
    headers = await adm.applicant("w@example.test")
    await adm.save(headers)
    await adm.submit(headers)
    r = await adm.client.post(adm.path("/withdraw"), headers=headers)
    assert r.json()["status"] == "withdrawn"
    assert (await adm.client.post(adm.path("/withdraw"), headers=headers)).status_code == 200
    assert_problem(await adm.submit(headers), 409, "invalid_transition")
    assert_problem(await adm.save(headers), 409, "invalid_transition")
    assert len(await adm.outbox("application.withdrawn")) == 1


async def test_applicants_see_only_their_own_application(adm: Admissions, api: Api) -> None:
    owner = await adm.applicant("owner@example.test")
    await adm.save(owner)
    other = await adm.applicant("other@example.test")
    for suffix in ("", "/history", "/receipt"):
        assert_problem(await adm.client.get(adm.path(suffix), headers=other), 404)
    assert_problem(await adm.client.post(adm.path("/withdraw"), headers=other), 404)
    assert (await adm.client.get(adm.path(), headers=owner)).json()["personal"]["name"] == "김하늘"
    # Applicant routes are for applicants; staff routes for staff.
    assert (await api.create_students([student_json("s1")])).status_code == 201
    student = await api.headers("s1")
    assert_problem(await adm.client.get(adm.path(), headers=student), 403, "forbidden")
    assert_problem(await adm.client.get(adm.path()), 401)
    staff = f"/api/v1/admin/admissions/{ROUND}/applications"
    assert_problem(await adm.client.get(staff, headers=owner), 403, "forbidden")
    assert_problem(
        await adm.client.post("/api/v1/admin/admissions", json=round_json("x"), headers=owner),
        403,
    )


async def test_staff_list_filter_and_page_through_applications(adm: Admissions) -> None:
    receipts = [await adm.submitted(f"p{n}@example.test") for n in range(5)]
    draft = await adm.applicant("draft@example.test")
    await adm.save(draft, application_json(track="arts"))
    admin = await adm.api.admin()
    url = f"/api/v1/admin/admissions/{ROUND}/applications"
    seen: list[str | None] = []
    cursor = None
    while True:
        params = {"limit": "2", "status": "submitted", **({"cursor": cursor} if cursor else {})}
        page = (await adm.client.get(url, params=params, headers=admin)).json()
        seen += [item["receipt_number"] for item in page["items"]]
        assert all(item["phone"] == "010-****-5678" for item in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == receipts
    arts = (await adm.client.get(url, params={"track": "arts"}, headers=admin)).json()
    assert [i["email"] for i in arts["items"]] == ["draft@example.test"]
    assert_problem(await adm.client.get(url, params={"cursor": "x"}, headers=admin), 422)


async def test_the_csv_export_has_every_detail_and_no_formulas(adm: Admissions) -> None:
    headers = await adm.applicant("csv@example.test")
    await adm.save(
        headers, application_json(statement="x", personal=personal_json(address="=HYPERLINK(1)"))
    )
    await adm.submit(headers)
    r = await adm.client.get(
        f"/api/v1/admin/admissions/{ROUND}/applications.csv", headers=await adm.api.admin()
    )
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    assert r.content.startswith("\ufeff".encode())
    rows = list(csv.DictReader(io.StringIO(r.text.lstrip("\ufeff"))))
    assert len(rows) == 1
    assert rows[0]["receipt_number"] == "2027-A-000001"
    assert rows[0]["phone"] == "01012345678"
    assert rows[0]["name"] == "김하늘"
    assert rows[0]["address"] == "'=HYPERLINK(1)"
    missing = await adm.client.get(
        "/api/v1/admin/admissions/nope/applications.csv", headers=await adm.api.admin()
    )
    assert_problem(missing, 404)


async def test_staff_decisions_follow_the_rules_and_mail_once(adm: Admissions) -> None:
    receipt = await adm.submitted("d@example.test")
    assert (await adm.set_status(receipt, "under_review")).json()["status"] == "under_review"
    assert (await adm.set_status(receipt, "waitlisted")).json()["status"] == "waitlisted"
    assert (await adm.set_status(receipt, "waitlisted")).status_code == 200  # a retry
    assert len(await adm.outbox("application.status_changed")) == 2
    assert_problem(await adm.set_status(receipt, "under_review"), 409, "invalid_transition")
    assert_problem(await adm.set_status("2027-A-999999", "accepted"), 404)
    r = await adm.client.put(
        f"/api/v1/admin/admissions/{ROUND}/applications/{receipt}/status",
        json={"status": "draft"},
        headers=await adm.api.admin(),
    )
    assert_problem(r, 422)
    history = (
        await adm.client.get(adm.path("/history"), headers=await adm.headers("d@example.test"))
    ).json()
    assert [(h["action"], h["by_applicant"]) for h in history][-2:] == [
        ("status", False),
        ("status", False),
    ]


async def test_waitlist_admissions_are_all_or_none(adm: Admissions) -> None:
    waiting = [await adm.submitted(f"wl{n}@example.test") for n in range(2)]
    reviewing = await adm.submitted("rv@example.test")
    for receipt in waiting:
        await adm.set_status(receipt, "waitlisted")
    url = f"/api/v1/admin/admissions/{ROUND}/waitlist-admissions"
    admin = await adm.api.admin()
    refused = await adm.client.post(
        url, json={"receipt_numbers": [*waiting, reviewing]}, headers=admin
    )
    assert_problem(refused, 409, "invalid_transition")
    accepted = await adm.client.get(
        f"/api/v1/admin/admissions/{ROUND}/applications",
        params={"status": "accepted"},
        headers=admin,
    )
    assert accepted.json()["items"] == [], "nothing of a refused announcement is written"
    admitted = await adm.client.post(url, json={"receipt_numbers": waiting}, headers=admin)
    assert [a["status"] for a in admitted.json()] == ["accepted", "accepted"]
    mails = [
        m
        for m in await adm.outbox("application.status_changed")
        if m["payload"]["status"] == "accepted"
    ]
    assert len(mails) == 2
    assert all(m["payload"]["from_waitlist"] for m in mails)


async def test_a_double_clicked_first_save_makes_one_application(adm: Admissions) -> None:
    headers = await adm.applicant("double@example.test")
    first, second = await asyncio.gather(adm.save(headers), adm.save(headers))
    assert sorted([first.status_code, second.status_code]) == [200, 201]
    assert (await adm.client.get(adm.path(), headers=headers)).json()["version"] == 2
