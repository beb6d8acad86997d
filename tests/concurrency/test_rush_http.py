"""Rushes against a real server: uvicorn with 2 worker processes on loopback, for the
embedded SQLite default and for PostgreSQL. Every request really overlaps with hundreds of
others (a barrier releases them together over ~200 open connections), so the seat counts,
unique constraints and the student lock are exercised across processes, not just tasks.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any, TypeVar

import httpx
import pytest
from sqlalchemy import text

from rushgate.adapters.sql.engine import create_engine
from tests.concurrency.conftest import Rush, section
from tests.support import check_invariants

pytestmark = pytest.mark.slow

T = TypeVar("T")


async def race(rush: Rush, jobs: Sequence[Callable[[], Awaitable[T]]]) -> tuple[list[T], int]:
    """Start every job at once (all wait on one event, over warm connections); results,
    and the most requests that were on the wire together."""
    go = asyncio.Event()

    async def run(job: Callable[[], Awaitable[T]]) -> T:
        await go.wait()
        return await job()

    tasks = [asyncio.create_task(run(job)) for job in jobs]
    await asyncio.sleep(0)  # every task reaches the barrier before it opens
    rush.client.reset_peak()
    go.set()
    return list(await asyncio.gather(*tasks)), rush.client.peak


def code_of(response: httpx.Response) -> str | None:
    if response.headers.get("content-type", "").startswith("application/problem+json"):
        return str(response.json().get("code"))
    return None


def outcome(response: httpx.Response) -> tuple[int, str | None]:
    return response.status_code, code_of(response)


async def holdings(database_url: str, term: str) -> dict[str, dict[str, str]]:
    """Straight from the database: student id -> {section id: status} in ``term``."""
    engine = create_engine(database_url, writer=False, pool_size=1)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                text(
                    "SELECT st.student_id, s.section_id, e.status FROM enrollments e"
                    " JOIN students st ON st.id = e.student_id"
                    " JOIN sections s ON s.id = e.section_id"
                    " JOIN terms t ON t.id = e.term_id WHERE t.code = :term"
                ),
                {"term": term},
            )
            held: dict[str, dict[str, str]] = {}
            for student_id, section_id, status in rows:
                held.setdefault(student_id, {})[section_id] = status
            return held
    finally:
        await engine.dispose()


async def test_a_thousand_students_race_for_forty_seats(rush: Rush) -> None:
    term = await rush.new_term("hot")
    await rush.add_sections(term, [section("HOT101-01", capacity=40)])

    students = rush.students
    assert len(students) == 1000
    responses, peak = await race(
        rush,
        [partial(rush.enroll, term, s, "HOT101-01") for s in students],
    )

    outcomes = Counter(outcome(r) for r in responses)
    assert outcomes == {(201, None): 40, (409, "section_full"): 960}, outcomes
    assert peak >= 100, f"requests did not overlap (peak in flight {peak})"
    winners = {s for s, r in zip(students, responses, strict=True) if r.status_code == 201}
    assert all(r.json()["status"] == "enrolled" for r in responses if r.status_code == 201)

    roster = await rush.roster(term, "HOT101-01")
    assert {e["student_id"] for e in roster["enrolled"]} == winners
    assert len(roster["enrolled"]) == 40
    assert roster["waitlisted"] == []
    hot = (await rush.catalog(term))["HOT101-01"]
    assert (hot["enrolled"], hot["seats_left"]) == (40, 0)
    assert set(await holdings(rush.database_url, term)) == winners
    await check_invariants(rush.database_url)


async def test_b_one_student_two_sections_of_one_course_at_once(rush: Rush) -> None:
    term = await rush.new_term("twin")
    rounds, days = 3, ["MON", "TUE", "WED"]
    # Each course's two sections meet at different times: only the course rule refuses.
    await rush.add_sections(
        term,
        [
            section(f"TWIN{r}-{n}", capacity=1000, day=days[r], start=start, end=end)
            for r in range(rounds)
            for n, (start, end) in (("A", ("09:00", "10:15")), ("B", ("13:00", "14:15")))
        ],
    )
    students = rush.students[:300]

    for r in range(rounds):
        jobs = []
        for s in students:
            for n in ("A", "B"):
                jobs.append(partial(rush.enroll, term, s, f"TWIN{r}-{n}"))
        responses, peak = await race(rush, jobs)
        assert peak >= 100, f"requests did not overlap (peak in flight {peak})"
        per_student: dict[str, list[tuple[int, str | None]]] = {}
        for i, response in enumerate(responses):
            per_student.setdefault(students[i // 2], []).append(outcome(response))
        wrong = {
            s: got
            for s, got in per_student.items()
            if sorted(got, key=str) != sorted([(201, None), (409, "already_enrolled")], key=str)
        }
        assert not wrong, f"round {r}: {len(wrong)} students, e.g. {list(wrong.items())[:5]}"

    held = await holdings(rush.database_url, term)
    assert set(held) == set(students)
    for s in students:
        courses = sorted(sid.split("-")[0] for sid in held[s])
        assert courses == [f"TWIN{r}" for r in range(rounds)], (s, held[s])
    catalog = await rush.catalog(term)
    for r in range(rounds):
        taken = catalog[f"TWIN{r}-A"]["enrolled"] + catalog[f"TWIN{r}-B"]["enrolled"]
        assert taken == len(students), (r, taken)
    await check_invariants(rush.database_url)


# (c): 3 courses x 2 sections, 4 seats + 3 waitlist places each, no two sections clash.
_MIX_SECTIONS = [
    ("MIX1-A", "MON"),
    ("MIX1-B", "TUE"),
    ("MIX2-A", "WED"),
    ("MIX2-B", "THU"),
    ("MIX3-A", "FRI"),
    ("MIX3-B", "SAT"),
]
_MIX_STUDENTS = 150
_MIX_OPS_PER_STUDENT = 8


async def test_c_random_enrolls_and_drops_keep_every_invariant(rush: Rush) -> None:
    """Each student runs its own random sequence (so its expected holdings are known
    exactly); students run concurrently, on a few tiny sections with waitlists."""
    term = await rush.new_term("mix")
    await rush.add_sections(
        term, [section(sid, capacity=4, waitlist=3, day=day) for sid, day in _MIX_SECTIONS]
    )
    seed = random.randrange(2**32)
    section_ids = [sid for sid, _ in _MIX_SECTIONS]
    students = rush.students[-_MIX_STUDENTS:]
    expected: dict[str, dict[str, str]] = {}  # student -> {course: section} it must hold
    waited: set[tuple[str, str]] = set()  # (student, section) last answered "waitlisted"
    surprises: list[str] = []
    codes: Counter[tuple[str, int, str | None]] = Counter()

    async def student_run(student: str, rng: random.Random) -> None:
        held: dict[str, str] = {}
        expected[student] = held
        for _ in range(_MIX_OPS_PER_STUDENT):
            allowed: set[tuple[int, str | None]]
            if rng.random() < 0.55 or not held:
                target = rng.choice(section_ids)
                course = target.split("-")[0]
                r = await rush.enroll(term, student, target)
                got = outcome(r)
                codes["enroll", *got] += 1
                if course in held:
                    # A section known to be full is refused before the database, so ahead
                    # of the rules that need the student's holdings.
                    allowed = {(409, "already_enrolled"), (409, "waitlist_full")}
                else:
                    allowed = {(201, None), (409, "waitlist_full")}
                if got == (201, None):
                    body = r.json()
                    if body["status"] == "waitlisted":
                        waited.add((student, target))
                        if not 1 <= body["waitlist_position"] <= 3:
                            surprises.append(f"{student} {target}: position {body}")
                    held[course] = target
            else:
                # Mostly drop something held, sometimes something not held (must be 404).
                pool = list(held.values()) if rng.random() < 0.85 else section_ids
                target = rng.choice(pool)
                course = target.split("-")[0]
                r = await rush.drop(term, student, target)
                got = outcome(r)
                codes["drop", *got] += 1
                allowed = {(204, None)} if held.get(course) == target else {(404, "not_found")}
                if got == (204, None):
                    held.pop(course, None)
                    waited.discard((student, target))
            if got not in allowed:
                surprises.append(f"{student} {target}: {got} not in {allowed}: {r.text[:200]}")

    started = time.monotonic()
    rngs = {s: random.Random(f"{seed}-{s}") for s in students}
    _, peak = await race(rush, [partial(student_run, s, rngs[s]) for s in students])
    elapsed = time.monotonic() - started

    context = f"seed={seed}, {elapsed:.1f}s, outcomes {dict(codes)}"
    assert not surprises, f"{len(surprises)} unexpected responses ({context}):\n" + "\n".join(
        surprises[:20]
    )
    # The mix really was contended: seats and waitlists ran out, and seats were freed.
    assert codes["enroll", 409, "waitlist_full"] > 0, context
    assert codes["drop", 204, None] > 0, context
    assert peak >= 100, context

    await check_invariants(rush.database_url)
    held = await holdings(rush.database_url, term)
    for student in students:
        want = set(expected[student].values())
        have = set(held.get(student, {}))
        assert have == want, f"{student}: holds {have}, its own responses say {want} ({context})"
    promoted = sum(held[s][sid] == "enrolled" for s, sid in waited)
    assert promoted > 0, f"no waitlisted student was ever promoted ({context})"
    catalog = await rush.catalog(term)
    for sid in section_ids:
        s = catalog[sid]
        rows = [h[sid] for h in held.values() if sid in h]
        assert s["enrolled"] == rows.count("enrolled") <= 4, (sid, s, context)
        assert s["waitlisted"] == rows.count("waitlisted") <= 3, (sid, s, context)


async def test_d_same_idempotency_key_ten_times_at_once(rush: Rush) -> None:
    term = await rush.new_term("idem")
    await rush.add_sections(term, [section("IDEM101-01", capacity=20)])
    students = rush.students[100:120]
    keys = {s: f"{s}-{uuid.uuid4()}" for s in students}
    jobs = [
        partial(rush.enroll, term, s, "IDEM101-01", key=keys[s])
        for s in students
        for _ in range(10)
    ]
    responses, _ = await race(rush, jobs)

    for i, s in enumerate(students):
        mine: list[Any] = responses[i * 10 : (i + 1) * 10]
        assert [r.status_code for r in mine] == [201] * 10, (s, [r.text for r in mine])
        bodies = {r.content for r in mine}
        assert len(bodies) == 1, (s, bodies)
        replayed = sum(r.headers.get("Idempotent-Replayed") == "true" for r in mine)
        assert replayed == 9, (s, replayed)

    roster = await rush.roster(term, "IDEM101-01")
    assert sorted(e["student_id"] for e in roster["enrolled"]) == students
    idem = (await rush.catalog(term))["IDEM101-01"]
    assert (idem["enrolled"], idem["seats_left"]) == (20, 0)
    assert {s: list(h) for s, h in (await holdings(rush.database_url, term)).items()} == {
        s: ["IDEM101-01"] for s in students
    }
    await check_invariants(rush.database_url)
