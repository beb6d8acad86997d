"""The admins' audit log over HTTP: every admin change leaves exactly one entry naming
its admin; nothing else does; only admins read it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from rushgate.composition import Container
from tests.http.admissions_api import ROUND, Admissions, round_json
from tests.http.api import ADMIN, Api, assert_problem, section_json, student_json, term_json

AUDIT = "/api/v1/admin/audit"


async def entries(api: Api, **params: Any) -> list[dict[str, Any]]:
    r = await api.client.get(AUDIT, params=params, headers=await api.admin())
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


class Log:
    """Checks that each step adds exactly the one entry expected."""

    def __init__(self, api: Api, admin_pk: int) -> None:
        self.api = api
        self.admin_pk = admin_pk
        self.seen = 0

    async def one(self, action: str, target: str) -> dict[str, Any]:
        items = await entries(self.api, limit=500)
        assert len(items) == self.seen + 1, [i["action"] for i in items]
        self.seen += 1
        newest = items[0]
        assert (newest["action"], newest["target"]) == (action, target)
        assert (newest["actor_username"], newest["actor_user_id"]) == (ADMIN[0], self.admin_pk)
        assert newest["request_id"]  # ties the entry to the access log line
        assert newest["client_ip"] == "127.0.0.1"
        return newest

    async def none(self) -> None:
        assert len(await entries(self.api, limit=500)) == self.seen


async def test_every_admin_change_leaves_one_entry(api: Api, container: Container) -> None:
    account = await container.storage.reads(fresh=True).account(ADMIN[0])
    assert account is not None
    log = Log(api, account.user_pk)
    await log.none()

    assert (await api.create_term(term_json())).status_code == 201
    await log.one("term.create", "term:2026-spring")
    assert (
        await api.create_sections([section_json("A-1"), section_json("B-1")])
    ).status_code == 201
    entry = await log.one("section.bulk_create", "term:2026-spring")
    assert entry["details"] == {"count": 2, "section_ids": ["A-1", "B-1"]}
    assert (await api.create_students([student_json("s1")])).status_code == 201
    entry = await log.one("student.bulk_create", "students")
    assert entry["details"] == {"count": 1, "student_ids": ["s1"]}
    # No personal data: names, emails and passwords stay out of the log.
    assert "s1@example.test" not in str(entry)
    assert "Student s1" not in str(entry)

    # Refused changes leave nothing.
    assert (await api.create_term(term_json())).status_code == 409
    assert (await api.create_sections([section_json("A-1")])).status_code == 409
    await log.none()

    adm = Admissions(api, container)
    assert (await adm.create_round(round_json())).status_code == 201
    await log.one("admission_round.create", f"round:{ROUND}")

    # What applicants and students do is not an admin change.
    receipt = await adm.submitted("kim@example.test")
    question = await api.client.post(
        f"/api/v1/admissions/{ROUND}/questions",
        json={"title": "전형료", "body": "환불되나요?", "public": True},
        headers=await adm.headers("kim@example.test"),
    )
    assert question.status_code == 201, question.text
    await log.none()

    assert (await adm.set_status(receipt, "waitlisted")).status_code == 200
    entry = await log.one("application.decide", f"application:{ROUND}/{receipt}")
    assert entry["details"] == {"status": "waitlisted", "previous": "submitted"}
    # A retried decision changes nothing, and logs nothing.
    assert (await adm.set_status(receipt, "waitlisted")).status_code == 200
    await log.none()

    r = await api.client.post(
        f"/api/v1/admin/admissions/{ROUND}/waitlist-admissions",
        json={"receipt_numbers": [receipt]},
        headers=await api.admin(),
    )
    assert r.status_code == 200, r.text
    entry = await log.one("application.admit_from_waitlist", f"round:{ROUND}")
    assert entry["details"] == {"receipt_numbers": [receipt]}

    question_id = question.json()["id"]
    r = await api.client.post(
        f"/api/v1/admin/admissions/{ROUND}/questions/{question_id}/answer",
        json={"body": "네, 환불됩니다."},
        headers=await api.admin(),
    )
    assert r.status_code == 200, r.text
    await log.one("question.answer", f"question:{ROUND}/{question_id}")

    r = await api.client.post(
        f"/api/v1/admin/admissions/{ROUND}/faq",
        json={"question": "마감은 언제인가요?", "answer": "공고를 보세요."},
        headers=await api.admin(),
    )
    assert r.status_code == 201, r.text
    await log.one("faq.create", f"faq:{ROUND}/{r.json()['id']}")


async def test_pages_newest_first(api: Api) -> None:
    for n in range(5):
        assert (await api.create_term(term_json(f"term-{n}"))).status_code == 201
    first = await api.client.get(AUDIT, params={"limit": 2}, headers=await api.admin())
    page = first.json()
    assert [i["target"] for i in page["items"]] == ["term:term-4", "term:term-3"]
    ids = [i["id"] for i in page["items"]]
    assert ids == sorted(ids, reverse=True)
    second = await entries(api, limit=2, before=page["next_before"])
    assert [i["target"] for i in second] == ["term:term-2", "term:term-1"]
    last = await api.client.get(
        AUDIT, params={"limit": 2, "before": second[-1]["id"]}, headers=await api.admin()
    )
    assert [i["target"] for i in last.json()["items"]] == ["term:term-0"]
    assert last.json()["next_before"] is None


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 501}, {"before": 0}, {"before": "x"}])
async def test_bad_page_parameters(api: Api, params: dict[str, int | str]) -> None:
    r = await api.client.get(AUDIT, params=params, headers=await api.admin())
    assert_problem(r, 422, "validation_error")


async def test_only_admins_read_the_log(api: Api, container: Container) -> None:
    assert (await api.create_students([student_json("s1")])).status_code == 201
    assert_problem(await api.client.get(AUDIT), 401, "unauthorized")
    student = await api.client.get(AUDIT, headers=await api.headers("s1"))
    assert_problem(student, 403, "forbidden")
    adm = Admissions(api, container)
    applicant = await api.client.get(AUDIT, headers=await adm.applicant("lee@example.test"))
    assert_problem(applicant, 403, "forbidden")


async def test_concurrent_changes_log_exactly_what_committed(api: Api) -> None:
    """Ten admins' requests at once, each code twice: one of each pair commits and is
    logged; the refused twin leaves nothing, even though both were in flight together."""
    headers = await api.admin()
    codes = [f"rush-{n}" for n in range(5)] * 2
    responses = await asyncio.gather(
        *(
            api.client.post("/api/v1/admin/terms", json=term_json(code), headers=headers)
            for code in codes
        )
    )
    assert sorted(r.status_code for r in responses) == [201] * 5 + [409] * 5
    logged = await entries(api, limit=500)
    assert sorted(e["target"] for e in logged) == sorted(f"term:rush-{n}" for n in range(5))
    assert len({e["request_id"] for e in logged}) == 5
