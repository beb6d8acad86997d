"""Administrative writes are all-or-nothing, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest

from rushgate.adapters.sql.engine import SqlStorage
from rushgate.domain.errors import Conflict, NotFound
from tests.support import T0, new_section, new_student, new_term, seed, window

TERM = new_term().code


async def section_ids(storage: SqlStorage, term: str = TERM) -> list[str]:
    return [s.section_id for s in await storage.reads(fresh=True).catalog(term)]


async def usernames(storage: SqlStorage, *candidates: str) -> set[str]:
    reads = storage.reads(fresh=True)
    return {c for c in candidates if await reads.account(c) is not None}


async def test_term_roundtrip_and_duplicate_code(storage: SqlStorage) -> None:
    async with storage.unit_of_work() as uow:
        assert await uow.registry.is_empty()
    seniors = T0 - timedelta(hours=1)
    term = new_term(window=window(by_year={4: seniors}), waiting_room_enabled=True)
    await seed(storage, term=term)
    view = await storage.reads(fresh=True).term(TERM)
    assert view.window == term.window
    assert view.window.class_year_opens_at[4].utcoffset() == timedelta(0)
    assert view.waiting_room_enabled is True
    async with storage.unit_of_work() as uow:
        assert not await uow.registry.is_empty()
        with pytest.raises(Conflict):
            await uow.registry.add_term(new_term(name="other name"))
        with pytest.raises(NotFound):
            await uow.registry.term_pk("nope")
    assert [t.code for t in await storage.reads(fresh=True).terms()] == [TERM]


async def test_terms_listed_by_opening(storage: SqlStorage) -> None:
    await seed(storage, term=new_term("late", window=window(T0 + timedelta(days=1))))
    await seed(storage, term=new_term("early", window=window(T0 - timedelta(days=1))))
    assert [t.code for t in await storage.reads().terms()] == ["early", "late"]


async def add_sections(storage: SqlStorage, ids: list[str], term: str = TERM) -> None:
    async with storage.unit_of_work() as uow:
        await uow.registry.add_sections(
            await uow.registry.term_pk(term), [new_section(i) for i in ids]
        )
        await uow.commit()


async def test_sections_batch_with_one_existing_id_writes_nothing(storage: SqlStorage) -> None:
    await seed(storage, sections=[new_section("CS101-01")])
    with pytest.raises(Conflict) as caught:
        await add_sections(storage, ["CS102-01", "CS101-01", "CS103-01"])
    assert caught.value.context["existing"] == ["CS101-01"]
    assert await section_ids(storage) == ["CS101-01"]


async def test_large_sections_batch_is_still_all_or_nothing(storage: SqlStorage) -> None:
    """The existence check spans every chunk of a batch, not only the first."""
    await seed(storage, sections=[new_section("Z-9999")])
    ids = [f"C{n:04d}-01" for n in range(1200)] + ["Z-9999"]
    with pytest.raises(Conflict):
        await add_sections(storage, ids)
    assert await section_ids(storage) == ["Z-9999"]
    await add_sections(storage, ids[:-1])
    assert len(await section_ids(storage)) == 1201


async def test_same_section_id_in_another_term_is_fine(storage: SqlStorage) -> None:
    await seed(storage, sections=[new_section("CS101-01")])
    await seed(storage, term=new_term("other"), sections=[new_section("CS101-01")])
    assert await section_ids(storage, "other") == ["CS101-01"]


async def test_sections_of_unknown_term(storage: SqlStorage) -> None:
    with pytest.raises(NotFound):
        await add_sections(storage, ["CS101-01"], term="nope")


async def test_students_batch_with_one_existing_id_writes_nothing(storage: SqlStorage) -> None:
    await seed(storage, students=[new_student("s1")])
    batch = [new_student("s2"), new_student("s1"), new_student("s3")]
    async with storage.unit_of_work() as uow:
        with pytest.raises(Conflict) as caught:
            await uow.registry.add_students(batch)
    assert caught.value.context["existing"] == ["s1"]
    assert await usernames(storage, "s1", "s2", "s3") == {"s1"}


async def test_large_students_batch_is_all_or_nothing(storage: SqlStorage) -> None:
    await seed(storage, students=[new_student("zz")])
    batch = [new_student(f"s{n:05d}") for n in range(1100)] + [new_student("zz")]
    async with storage.unit_of_work() as uow:
        with pytest.raises(Conflict):
            await uow.registry.add_students(batch)
    assert await usernames(storage, "s00000", "s01099") == set()


async def test_student_id_taken_by_an_admin_username(storage: SqlStorage) -> None:
    async with storage.unit_of_work() as uow:
        assert await uow.registry.add_admin("root", "hash")
        await uow.commit()
    async with storage.unit_of_work() as uow:
        with pytest.raises(Conflict):
            await uow.registry.add_students([new_student("root")])


async def test_accounts(storage: SqlStorage) -> None:
    pks = await seed(storage, students=[new_student("s1")])
    async with storage.unit_of_work() as uow:
        assert await uow.registry.add_admin("root", "h1")
        assert not await uow.registry.add_admin("root", "h2")
        assert not await uow.registry.add_admin("s1", "h2")
        assert await uow.registry.set_password("root", "h3")
        assert not await uow.registry.set_password("nobody", "h3")
        await uow.commit()
    reads = storage.reads(fresh=True)
    admin = await reads.account("root")
    assert admin is not None
    assert (admin.role, admin.student_pk, admin.password_hash) == ("admin", None, "h3")
    student = await reads.account("s1")
    assert student is not None
    assert (student.role, student.student_pk) == ("student", pks["s1"])
    assert student.password_hash == new_student().password_hash
    assert await reads.account("nobody") is None
    assert await reads.account("S1") is None, "usernames are exact"
