"""The Q&A board's and the FAQ's storage, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest

from rushgate.adapters.sql.engine import SqlStorage
from rushgate.domain.errors import NotFound
from rushgate.services.ports.qna import NewQuestion, QuestionQuery, QuestionRecord
from tests.admissions_seed import ROUND, add_applicant, add_round, new_round
from tests.support import T0


async def post(
    storage: SqlStorage,
    user_pk: int,
    title: str,
    *,
    public: bool = True,
    round_code: str = ROUND,
    minutes: int = 0,
) -> QuestionRecord:
    async with storage.unit_of_work() as uow:
        record = await uow.qna.add_question(
            round_code,
            user_pk,
            NewQuestion(title=title, body=f"body of {title}", public=public),
            now=T0 + timedelta(minutes=minutes),
        )
        await uow.commit()
    return record


async def page(
    storage: SqlStorage,
    round_pk: int,
    viewer: int | None,
    before: int | None = None,
    limit: int = 50,
) -> list[str]:
    async with storage.unit_of_work() as uow:
        records = await uow.qna.questions(round_pk, QuestionQuery(viewer, before, limit))
    return [r.title for r in records]


async def test_post_stores_one_row_and_reads_back(storage: SqlStorage) -> None:
    round_pk = await add_round(storage)
    kim = await add_applicant(storage, "kim@example.test", password_hash="x", name="김민수")
    record = await post(storage, kim.user_pk, "전형료 환불", public=False, minutes=3)
    assert (record.round_pk, record.author_user_pk, record.public) == (round_pk, kim.user_pk, False)
    assert record.created_at == T0 + timedelta(minutes=3)
    assert record.created_at.utcoffset() == timedelta(0)
    assert record.answer is None
    async with storage.unit_of_work() as uow:
        again = await uow.qna.question(round_pk, record.pk)
    assert again is not None
    assert (again.title, again.body, again.author_name) == (
        "전형료 환불",
        "body of 전형료 환불",
        "김민수",
    )


async def test_post_to_unknown_round_or_without_applicant_account(storage: SqlStorage) -> None:
    await add_round(storage)
    kim = await add_applicant(storage, "kim@example.test", password_hash="x")
    with pytest.raises(NotFound) as caught:
        await post(storage, kim.user_pk, "t", round_code="nope")
    assert caught.value.context == {"round": "nope"}
    with pytest.raises(NotFound, match="applicant account"):
        await post(storage, kim.user_pk + 999, "t")
    assert await page(storage, 1, None) == []


async def test_visibility_and_newest_first(storage: SqlStorage) -> None:
    round_pk = await add_round(storage)
    kim = await add_applicant(storage, "kim@example.test", password_hash="x")
    lee = await add_applicant(storage, "lee@example.test", password_hash="x")
    await post(storage, kim.user_pk, "kim public", minutes=1)
    await post(storage, kim.user_pk, "kim private", public=False, minutes=2)
    await post(storage, lee.user_pk, "lee private", public=False, minutes=3)
    await post(storage, lee.user_pk, "lee public", minutes=4)
    assert await page(storage, round_pk, kim.user_pk) == ["lee public", "kim private", "kim public"]
    assert await page(storage, round_pk, lee.user_pk) == ["lee public", "lee private", "kim public"]
    assert await page(storage, round_pk, None) == [
        "lee public",
        "lee private",
        "kim private",
        "kim public",
    ]


async def test_keyset_pages(storage: SqlStorage) -> None:
    round_pk = await add_round(storage)
    kim = await add_applicant(storage, "kim@example.test", password_hash="x")
    records = [await post(storage, kim.user_pk, f"q{n}") for n in range(5)]
    async with storage.unit_of_work() as uow:
        first = await uow.qna.questions(round_pk, QuestionQuery(None, None, 2))
        second = await uow.qna.questions(round_pk, QuestionQuery(None, first[-1].pk, 2))
        third = await uow.qna.questions(round_pk, QuestionQuery(None, second[-1].pk, 2))
    assert [r.title for r in first + second + third] == ["q4", "q3", "q2", "q1", "q0"]
    assert [r.pk for r in first + second + third] == [r.pk for r in reversed(records)]


async def test_rounds_do_not_mix(storage: SqlStorage) -> None:
    first = await add_round(storage)
    other = await add_round(storage, new_round("other"))
    kim = await add_applicant(storage, "kim@example.test", password_hash="x")
    here = await post(storage, kim.user_pk, "here")
    await post(storage, kim.user_pk, "there", round_code="other")
    assert await page(storage, first, None) == ["here"]
    assert await page(storage, other, None) == ["there"]
    async with storage.unit_of_work() as uow:
        assert await uow.qna.question(other, here.pk) is None
        assert not await uow.qna.answer(other, here.pk, "no", by_user_pk=kim.user_pk, now=T0)


async def test_answer_sets_and_replaces(storage: SqlStorage) -> None:
    round_pk = await add_round(storage)
    kim = await add_applicant(storage, "kim@example.test", password_hash="x")
    staff = await add_applicant(storage, "staff@example.test", password_hash="x")
    record = await post(storage, kim.user_pk, "q")
    for text, minutes in (("first", 5), ("second", 9)):
        async with storage.unit_of_work() as uow:
            assert await uow.qna.answer(
                round_pk,
                record.pk,
                text,
                by_user_pk=staff.user_pk,
                now=T0 + timedelta(minutes=minutes),
            )
            await uow.commit()
    async with storage.unit_of_work() as uow:
        answered = await uow.qna.question(round_pk, record.pk)
        assert not await uow.qna.answer(round_pk, record.pk + 1, "x", by_user_pk=1, now=T0)
    assert answered is not None
    assert answered.answer is not None
    assert answered.answer.body == "second"
    assert answered.answer.answered_at == T0 + timedelta(minutes=9)
    assert answered.answer.answered_by == "staff@example.test"


async def test_faq_in_creation_order(storage: SqlStorage) -> None:
    round_pk = await add_round(storage)
    other = await add_round(storage, new_round("other"))
    staff = await add_applicant(storage, "staff@example.test", password_hash="x")
    async with storage.unit_of_work() as uow:
        for n in (3, 1, 2):
            await uow.qna.add_faq(
                round_pk, f"Q{n}", f"A{n}", by_user_pk=staff.user_pk, now=T0 - timedelta(days=n)
            )
        await uow.qna.add_faq(other, "elsewhere", "x", by_user_pk=staff.user_pk, now=T0)
        await uow.commit()
    async with storage.unit_of_work() as uow:
        entries = await uow.qna.faq(round_pk)
    assert [(e.question, e.answer) for e in entries] == [("Q3", "A3"), ("Q1", "A1"), ("Q2", "A2")]
    assert entries[0].created_at == T0 - timedelta(days=3)
