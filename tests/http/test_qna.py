"""The admissions Q&A board and FAQ over HTTP: who may do what, who sees what, pages."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from rushgate.adapters.security import Argon2Hasher
from rushgate.adapters.sql.tables import admission_questions
from rushgate.composition import Container
from rushgate.domain.clock import FixedClock
from tests.http.api import Api, assert_problem
from tests.http.board_api import Board


@pytest.fixture
async def board(api: Api, container: Container, hasher: Argon2Hasher) -> Board:
    return await Board.seeded(api, container, hasher)


async def stored_questions(container: Container) -> int:
    async with container.storage.primary_reads.connect() as conn:
        return int(
            (await conn.execute(select(func.count()).select_from(admission_questions))).scalar_one()
        )


async def test_ask(board: Board, clock: FixedClock) -> None:
    r = await board.ask("kim", "  전형료  환불  ", "취소하면\r\n돌려받나요?", public=False)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body == {
        "id": body["id"],
        "title": "전형료 환불",  # one line: blanks folded
        "body": "취소하면\n돌려받나요?",  # line ends normalised
        "public": False,
        "created_at": clock.now().isoformat().replace("+00:00", "Z"),
        "answer": None,
        "mine": True,
        "author_name": None,
    }
    assert isinstance(body["id"], int)
    assert await stored_questions(board.container) == 1


async def test_public_defaults_to_private(board: Board) -> None:
    r = await board.request(
        "kim", "POST", "/admissions/2027-hs/questions", json={"title": "t", "body": "b"}
    )
    assert r.status_code == 201, r.text
    assert r.json()["public"] is False
    assert await board.titles("lee") == []


async def test_invalid_question_lists_every_field_and_stores_nothing(board: Board) -> None:
    body = assert_problem(await board.ask("kim", "   ", "x" * 5001), 422, "validation_failed")
    assert [e["field"] for e in body["errors"]] == ["title", "body"]
    body = assert_problem(await board.ask("kim", "bad\x1btitle", "ok"), 422, "validation_failed")
    assert [e["field"] for e in body["errors"]] == ["title"]
    assert await stored_questions(board.container) == 0


@pytest.mark.parametrize(
    "payload",
    [
        {"title": "t", "body": "b", "public": "true"},  # strict: no coercion
        {"title": 1, "body": "b", "public": True},
        {"title": "t", "public": True},
        {"title": "t", "body": "b", "public": True, "author": "someone else"},
    ],
)
async def test_schema_is_strict(board: Board, payload: dict[str, object]) -> None:
    r = await board.request("kim", "POST", "/admissions/2027-hs/questions", json=payload)
    assert_problem(r, 422, "validation_error")
    assert await stored_questions(board.container) == 0


@pytest.mark.parametrize(("who", "status"), [("anon", 401), ("s1", 403), ("admin", 403)])
async def test_only_applicants_ask(board: Board, who: str, status: int) -> None:
    assert_problem(await board.ask(who), status)
    assert await stored_questions(board.container) == 0


async def test_who_sees_what(board: Board) -> None:
    await board.asked("kim", "kim public")
    await board.asked("kim", "kim private", public=False)
    await board.asked("lee", "lee private", public=False)
    await board.asked("lee", "lee public")
    assert await board.titles("kim") == ["lee public", "kim private", "kim public"]
    assert await board.titles("lee") == ["lee public", "lee private", "kim public"]
    assert await board.titles("admin") == ["lee public", "lee private", "kim private", "kim public"]
    kim_view = (await board.questions("kim")).json()["items"]
    assert [q["mine"] for q in kim_view] == [False, True, True]
    assert {q["author_name"] for q in kim_view} == {None}, "applicants never see who asked"
    admin_view = (await board.questions("admin")).json()["items"]
    assert [q["author_name"] for q in admin_view] == [
        "lee 학생",
        "lee 학생",
        "kim 학생",
        "kim 학생",
    ]


@pytest.mark.parametrize(("who", "status"), [("anon", 401), ("s1", 403)])
async def test_students_and_anonymous_cannot_read_the_board(
    board: Board, who: str, status: int
) -> None:
    question = await board.asked("kim", "kim public")
    assert_problem(await board.questions(who), status)
    assert_problem(await board.question(who, question), status)


async def test_private_question_of_another_applicant_is_not_found(board: Board) -> None:
    private = await board.asked("kim", "kim private", public=False)
    public = await board.asked("kim", "kim public")
    missing = public + 1000
    hidden = assert_problem(await board.question("lee", private), 404, "not_found")
    absent = assert_problem(await board.question("lee", missing), 404, "not_found")
    # Nothing tells "exists but not yours" from "does not exist".
    assert {k: v for k, v in hidden.items() if k != "question"} == {
        k: v for k, v in absent.items() if k != "question"
    }
    assert (await board.question("lee", public)).status_code == 200
    for who in ("kim", "admin"):
        r = await board.question(who, private)
        assert r.status_code == 200, r.text
        assert r.json()["title"] == "kim private"


async def test_pages_newest_first(board: Board) -> None:
    for n in range(25):
        await board.asked("kim" if n % 2 else "lee", f"q{n:02d}")
    seen: list[str] = []
    cursor = None
    sizes = []
    while True:
        r = await board.questions("kim", cursor=cursor, limit=10)
        assert r.status_code == 200, r.text
        page = r.json()
        sizes.append(len(page["items"]))
        seen += [q["title"] for q in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sizes == [10, 10, 5]
    assert seen == [f"q{n:02d}" for n in reversed(range(25))]
    default = (await board.questions("kim")).json()
    assert len(default["items"]) == 20
    assert default["next_cursor"] is not None


async def test_exactly_full_last_page_has_no_next_cursor(board: Board) -> None:
    for n in range(4):
        await board.asked("kim", f"q{n}")
    first = (await board.questions("kim", limit=2)).json()
    second = (await board.questions("kim", limit=2, cursor=first["next_cursor"])).json()
    assert [q["title"] for q in second["items"]] == ["q1", "q0"]
    assert second["next_cursor"] is None


async def test_private_questions_do_not_leak_through_pages(board: Board) -> None:
    for n in range(6):
        await board.asked("lee", f"lee secret {n}", public=False)
    await board.asked("kim", "kim public")
    r = await board.questions("kim", limit=1)
    assert [q["title"] for q in r.json()["items"]] == ["kim public"]
    assert r.json()["next_cursor"] is None


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"limit": 0}, "validation_error"),
        ({"limit": 101}, "validation_error"),
        ({"limit": "ten"}, "validation_error"),
        ({"cursor": "not-a-cursor"}, "validation_failed"),
        ({"cursor": "cTE6LTE"}, "validation_failed"),  # "q1:-1"
        ({"cursor": "cTE6OTIyMzM3MjAzNjg1NDc3NTgwOA"}, "validation_failed"),  # past BIGINT
    ],
)
async def test_bad_page_parameters(board: Board, params: dict[str, object], code: str) -> None:
    r = await board.request("kim", "GET", "/admissions/2027-hs/questions", params=params)
    assert_problem(r, 422, code)


async def test_unknown_round_is_not_found(board: Board) -> None:
    question = await board.asked("kim", "q")
    for r in (
        await board.ask("kim", round_code="nope"),
        await board.questions("kim", round_code="nope"),
        await board.question("kim", question, round_code="nope"),
        await board.answer(question, "a", round_code="nope"),
        await board.faq("kim", round_code="nope"),
        await board.add_faq("q", "a", round_code="nope"),
    ):
        assert_problem(r, 404, "not_found")


async def test_answer_and_replace(board: Board, clock: FixedClock) -> None:
    question = await board.asked("kim", "서류 마감은 언제인가요?", public=False)
    r = await board.answer(question, "  2월 10일 18시입니다.  ")
    assert r.status_code == 200, r.text
    first_at = clock.now()
    assert r.json()["answer"] == {
        "body": "2월 10일 18시입니다.",
        "answered_at": first_at.isoformat().replace("+00:00", "Z"),
        "answered_by": "admin",
    }
    clock.set(first_at + timedelta(minutes=5))
    r = await board.answer(question, "2월 11일로 연장되었습니다.")
    assert r.status_code == 200, r.text
    mine = (await board.question("kim", question)).json()
    assert mine["answer"]["body"] == "2월 11일로 연장되었습니다."
    assert mine["answer"]["answered_at"] == clock.now().isoformat().replace("+00:00", "Z")
    assert mine["answer"]["answered_by"] is None, "applicants see that staff answered, not who"
    listed = (await board.questions("kim")).json()["items"]
    assert listed[0]["answer"]["body"] == "2월 11일로 연장되었습니다."


async def test_answer_refusals(board: Board) -> None:
    question = await board.asked("kim", "q")
    for who, status in (("anon", 401), ("kim", 403), ("s1", 403)):
        assert_problem(await board.answer(question, "a", who=who), status)
    assert_problem(await board.answer(question + 1000, "a"), 404, "not_found")
    body = assert_problem(await board.answer(question, " \n "), 422, "validation_failed")
    assert [e["field"] for e in body["errors"]] == ["body"]
    assert (await board.question("kim", question)).json()["answer"] is None


async def test_faq(board: Board) -> None:
    for n in (1, 2, 3):
        r = await board.add_faq(f"질문 {n}", f"답변 {n}")
        assert r.status_code == 201, r.text
        assert set(r.json()) == {"id", "question", "answer", "created_at"}
    for who in ("kim", "s1", "admin"):
        r = await board.faq(who)
        assert r.status_code == 200, r.text
        assert [(e["question"], e["answer"]) for e in r.json()] == [
            ("질문 1", "답변 1"),
            ("질문 2", "답변 2"),
            ("질문 3", "답변 3"),
        ]
    assert_problem(await board.faq("anon"), 401)


async def test_faq_refusals(board: Board) -> None:
    for who, status in (("anon", 401), ("kim", 403), ("s1", 403)):
        assert_problem(await board.add_faq("q", "a", who=who), status)
    body = assert_problem(await board.add_faq("", "   "), 422, "validation_failed")
    assert [e["field"] for e in body["errors"]] == ["question", "answer"]
    r = await board.request(
        "admin", "POST", "/admin/admissions/2027-hs/faq", json={"question": "q", "answer": 5}
    )
    assert_problem(r, 422, "validation_error")
    assert (await board.faq("kim")).json() == []


@pytest.mark.parametrize("question_id", ["0", "-1", str(2**63), "abc"])
async def test_ids_out_of_range_are_refused_not_crashed(board: Board, question_id: str) -> None:
    r = await board.request("kim", "GET", f"/admissions/2027-hs/questions/{question_id}")
    assert_problem(r, 422, "validation_error")
