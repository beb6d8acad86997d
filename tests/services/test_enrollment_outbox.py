"""Every enrollment change writes its outbox message in the same transaction, on SQLite
and PostgreSQL: one per change, none for a refusal or a replay."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from rushgate.adapters.sql.tables import outbox
from rushgate.domain import errors
from tests.services.conftest import TERM, World


async def user_pk(world: World, student: str) -> int:
    account = await world.storage.reads(fresh=True).account(student)
    assert account is not None
    return account.user_pk


async def messages(world: World) -> list[tuple[str, int, dict[str, Any]]]:
    async with world.storage.primary_reads.connect() as conn:
        rows = await conn.execute(
            select(outbox.c.kind, outbox.c.user_id, outbox.c.payload).order_by(outbox.c.id)
        )
        return [(r.kind, r.user_id, dict(r.payload)) for r in rows]


def shown(section_id: str, **extra: Any) -> dict[str, Any]:
    return {"term": TERM.code, "section_id": section_id, "title": f"Title of {section_id}", **extra}


async def test_enrolled_and_waitlisted_are_told(world: World) -> None:
    await world.enroll("s1", "CS101-01")
    await world.enroll("s2", "CS101-01")
    assert await messages(world) == [
        ("enrollment.enrolled", await user_pk(world, "s1"), shown("CS101-01")),
        (
            "enrollment.waitlisted",
            await user_pk(world, "s2"),
            shown("CS101-01", waitlist_position=1),
        ),
    ]


async def test_a_drop_tells_the_dropper_and_the_promoted(world: World) -> None:
    await world.enroll("s1", "CS101-01")
    await world.enroll("s2", "CS101-01")
    await world.drop("s1", "CS101-01")
    assert (await messages(world))[2:] == [
        ("enrollment.dropped", await user_pk(world, "s1"), shown("CS101-01", was="enrolled")),
        ("enrollment.promoted", await user_pk(world, "s2"), shown("CS101-01")),
    ]


async def test_leaving_a_waitlist_promotes_nobody(world: World) -> None:
    await world.enroll("s1", "CS101-01")
    await world.enroll("s2", "CS101-01")
    await world.drop("s2", "CS101-01")
    assert [(kind, payload.get("was")) for kind, _, payload in await messages(world)] == [
        ("enrollment.enrolled", None),
        ("enrollment.waitlisted", None),
        ("enrollment.dropped", "waitlisted"),
    ]


async def test_a_replayed_request_writes_no_second_message(world: World) -> None:
    for replayed in (False, True):
        result = await world.service.enroll(
            student_pk=world.pks["s1"],
            term_code=world.term,
            section_id="PHYS100-01",
            idempotency_key="k1",
        )
        assert result.replayed is replayed
    assert [m[0] for m in await messages(world)] == ["enrollment.enrolled"]


async def test_refusals_write_nothing(world: World) -> None:
    await world.enroll("s1", "ART100-01")
    with pytest.raises(errors.SectionFull):
        await world.enroll("s2", "ART100-01")
    with pytest.raises(errors.AlreadyEnrolled):
        await world.enroll("s1", "ART100-01")
    with pytest.raises(errors.NotFound):
        await world.drop("s2", "ART100-01")
    assert len(await messages(world)) == 1


async def test_enrolling_again_after_a_drop_is_told_again(world: World) -> None:
    """On SQLite the second enrollment row may get the first one's id: the message must
    not be taken for a duplicate of the first."""
    for _ in range(2):
        await world.enroll("s1", "PHYS100-01")
        await world.drop("s1", "PHYS100-01")
    assert [m[0] for m in await messages(world)] == [
        "enrollment.enrolled",
        "enrollment.dropped",
    ] * 2
