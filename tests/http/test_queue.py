"""The waiting room over HTTP, in-process: tickets, admission, tokens, SSE, seat hints.

The admitter does not run by itself here; each test ticks it with the fixed clock, so
every admission is deterministic."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

import httpx
import jwt
import pytest
from sqlalchemy import event

from rushgate.composition import Container
from rushgate.domain.clock import FixedClock
from tests.http.api import TERM, Api, assert_problem, section_json, student_json, term_json
from tests.support import T0

STUDENTS = [student_json(f"q{n}") for n in range(1, 9)]


def room_json(code: str = TERM, *, opens_at: Any = T0, **room: Any) -> dict[str, Any]:
    settings = {"enabled": True, "admit_per_second": 8, **room}
    return term_json(code, opens_at=opens_at, waiting_room=settings)


class Checkouts:
    """Counts database connections taken from any of the node's pools from now on."""

    def __init__(self, container: Container) -> None:
        self.count = 0
        storage = container.storage
        for engine in {storage.primary, storage.primary_reads, storage.replica}:
            event.listen(engine.sync_engine.pool, "checkout", self._taken)

    def _taken(self, *_: object) -> None:
        self.count += 1


class Room:
    """The API plus the node's admitter and clock."""

    def __init__(self, api: Api, container: Container, clock: FixedClock) -> None:
        self.api, self.container, self.clock = api, container, clock

    async def join(self, student: str, term: str = TERM) -> httpx.Response:
        return await self.api.client.post(
            f"/api/v1/queue/{term}/join", headers=await self.api.headers(student)
        )

    async def status(self, student: str, term: str = TERM) -> httpx.Response:
        return await self.api.client.get(
            f"/api/v1/queue/{term}/status", headers=await self.api.headers(student)
        )

    async def leave(self, student: str, term: str = TERM) -> httpx.Response:
        return await self.api.client.post(
            f"/api/v1/queue/{term}/leave", headers=await self.api.headers(student)
        )

    async def tick(self, times: int = 1, seconds: float = 0.25) -> None:
        for _ in range(times):
            self.clock.set(self.clock.now() + timedelta(seconds=seconds))
            assert await self.container.admitter.tick_once()

    async def admitted_token(self, student: str, term: str = TERM) -> str:
        r = await self.status(student, term)
        assert r.status_code == 200, r.text
        assert r.json()["state"] == "admitted", r.json()
        token: str = r.json()["admission_token"]
        return token

    async def enroll(
        self, student: str, section_id: str, token: str | None, term: str = TERM, **headers: str
    ) -> httpx.Response:
        sent = {**await self.api.headers(student), **headers}
        if token is not None:
            sent["X-Admission-Token"] = token
        return await self.api.client.post(
            f"/api/v1/terms/{term}/enrollments", json={"section_id": section_id}, headers=sent
        )


@pytest.fixture
async def room(api: Api, container: Container, clock: FixedClock) -> Room:
    """An open term with a waiting room (8 admitted per second), sections and students."""
    assert (await api.create_term(room_json())).status_code == 201
    sections = [section_json("BIG-01", capacity=50), section_json("ONE-01", capacity=1)]
    assert (await api.create_sections(sections)).status_code == 201
    assert (await api.create_students(STUDENTS)).status_code == 201
    return Room(api, container, clock)


async def test_a_join_gives_one_ticket_and_a_place(room: Room) -> None:
    first = await room.join("q1")
    assert first.status_code == 200, first.text
    assert first.headers["cache-control"] == "no-store"
    body = first.json()
    assert (body["ticket"], body["state"], body["position"], body["ahead"]) == (
        1,
        "waiting",
        1,
        0,
    )
    assert body["eta_seconds"] >= 0
    assert body["poll_after_seconds"] >= 1
    assert body["admission_token"] is None
    again = await asyncio.gather(*(room.join("q1") for _ in range(5)))
    assert {r.json()["ticket"] for r in again} == {1}
    second = (await room.join("q2")).json()
    assert (second["ticket"], second["position"], second["ahead"]) == (2, 2, 1)
    assert (await room.status("q2")).json()["ticket"] == 2


async def test_admission_follows_the_line_at_the_configured_rate(room: Room) -> None:
    for n in range(1, 9):
        await room.join(f"q{n}")
    await room.tick()  # 8/s for a quarter second: 2 admitted
    states = [(await room.status(f"q{n}")).json()["state"] for n in range(1, 9)]
    assert states == ["admitted"] * 2 + ["waiting"] * 6
    waiting = (await room.status("q3")).json()
    assert (waiting["position"], waiting["ahead"]) == (1, 0)
    admitted = (await room.status("q1")).json()
    assert admitted["admission_token"]
    assert admitted["admission_expires_at"]
    await room.tick(3)
    states = [(await room.status(f"q{n}")).json()["state"] for n in range(1, 9)]
    assert states == ["admitted"] * 8


async def test_an_admitted_student_enrolls_with_the_token(room: Room) -> None:
    await room.join("q1")
    await room.tick()
    token = await room.admitted_token("q1")
    r = await room.enroll("q1", "BIG-01", token)
    assert r.status_code == 201, r.text


async def test_enrolling_without_admission_is_refused(room: Room) -> None:
    await room.join("q1")
    await room.join("q2")
    await room.join("q3")
    await room.tick()
    token = await room.admitted_token("q1")
    other_term = room_json("2026-fall")
    assert (await room.api.create_term(other_term)).status_code == 201
    assert (await room.api.create_sections([section_json("F-01")], "2026-fall")).status_code == 201
    await room.join("q1", "2026-fall")
    await room.tick()
    fall_token = await room.admitted_token("q1", "2026-fall")
    tampered = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    access_token = (await room.api.headers("q3"))["Authorization"].removeprefix("Bearer ")
    forged = jwt.encode(
        {"sub": "3", "term": TERM, "tkt": 3, "aud": "rushgate:admission", "exp": 4102444800},
        "a-guessed-secret-that-is-long-enough-000000",
        algorithm="HS256",
    )
    attempts = {
        "missing": ("q3", None),
        "garbage": ("q3", "not-a-token"),
        "tampered": ("q1", tampered),
        "forged": ("q3", forged),
        "another student's": ("q3", token),
        "another term's": ("q1", fall_token),
        "an access token": ("q3", access_token),
    }
    for what, (student, sent) in attempts.items():
        r = await room.enroll(student, "BIG-01", sent)
        assert_problem(r, 403, "not_admitted"), what
    roster = (await room.api.roster("BIG-01")).json()
    assert roster["enrolled"] == []


async def test_an_expired_admission_is_refused_and_rejoins_at_the_back(room: Room) -> None:
    await room.join("q1")
    await room.tick()
    token = await room.admitted_token("q1")
    await room.join("q2")
    room.clock.set(room.clock.now() + timedelta(seconds=601))  # the default 600 s lifetime
    room.api.forget_tokens()
    assert_problem(await room.enroll("q1", "BIG-01", token), 403, "not_admitted")
    status = (await room.status("q1")).json()
    assert (status["state"], status["reason"]) == ("closed", "admission_expired")
    rejoined = (await room.join("q1")).json()
    assert rejoined["ticket"] == 3
    assert rejoined["state"] == "waiting"


async def test_leaving_revokes_the_token_and_frees_the_slot(
    api: Api, container: Container, clock: FixedClock
) -> None:
    assert (await api.create_term(room_json(max_active=1))).status_code == 201
    assert (await api.create_sections([section_json("BIG-01", capacity=50)])).status_code == 201
    assert (await api.create_students(STUDENTS)).status_code == 201
    room = Room(api, container, clock)
    await room.join("q1")
    await room.join("q2")
    await room.tick(4)
    assert (await room.status("q2")).json()["state"] == "waiting"  # one active at most
    token = await room.admitted_token("q1")
    r = await room.leave("q1")
    assert r.status_code == 204, r.text
    assert_problem(await room.enroll("q1", "BIG-01", token), 403, "not_admitted")
    assert_problem(await room.status("q1"), 404, "not_in_queue")
    assert_problem(await room.leave("q1"), 404, "not_in_queue")
    await room.tick()
    assert (await room.status("q2")).json()["state"] == "admitted"


async def test_the_prequeue_is_drawn_by_lottery_at_opening(
    api: Api, container: Container, clock: FixedClock
) -> None:
    opens = clock.now() + timedelta(minutes=5)
    assert (await api.create_term(room_json(opens_at=opens, admit_per_second=1))).status_code == 201
    assert (await api.create_students(STUDENTS)).status_code == 201
    room = Room(api, container, clock)
    for n in range(1, 7):
        body = (await room.join(f"q{n}")).json()
        assert (body["state"], body["position"], body["ticket"]) == ("prequeue", None, n)
        assert body["eta_seconds"] == 300
    await room.tick()
    assert (await room.status("q1")).json()["state"] == "prequeue"
    clock.set(opens)
    late = (await room.join("q7")).json()  # after opening: behind the whole pre-queue
    assert (late["ticket"], late["position"]) == (7, 7)
    positions = [(await room.status(f"q{n}")).json()["position"] for n in range(1, 7)]
    assert sorted(positions) == [1, 2, 3, 4, 5, 6]


async def test_a_term_without_a_waiting_room(seeded: Api) -> None:
    r = await seeded.client.post(
        "/api/v1/queue/2026-spring/join", headers=await seeded.headers("s1")
    )
    assert_problem(r, 404, "not_found")
    r = await seeded.client.post("/api/v1/queue/nope/join", headers=await seeded.headers("s1"))
    assert_problem(r, 404, "not_found")
    assert (await seeded.enroll("s1", "PHYS100-01")).status_code == 201


async def test_the_queue_needs_a_student(room: Room) -> None:
    r = await room.api.client.post("/api/v1/queue/2026-spring/join")
    assert_problem(r, 401, "unauthorized")
    r = await room.api.client.post("/api/v1/queue/2026-spring/join", headers=await room.api.admin())
    assert_problem(r, 403, "forbidden")


async def test_the_stream_reports_until_admission(room: Room) -> None:
    for n in range(1, 6):
        await room.join(f"q{n}")
    headers = await room.api.headers("q5")

    async def read_stream() -> httpx.Response:
        return await room.api.client.get("/api/v1/queue/2026-spring/stream", headers=headers)

    reading = asyncio.create_task(read_stream())
    for _ in range(40):
        if reading.done():
            break
        await room.tick(seconds=1.0)
        await asyncio.sleep(0.05)
    r = await asyncio.wait_for(reading, 10)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/event-stream")
    assert r.headers["x-accel-buffering"] == "no"
    assert r.text.startswith("retry: ")
    events = [
        json.loads(line.removeprefix("data: "))
        for line in r.text.splitlines()
        if line.startswith("data: ")
    ]
    assert events[0]["state"] == "waiting"
    assert events[0]["position"] == 5
    assert events[-1]["state"] == "admitted"
    assert events[-1]["admission_token"]
    positions = [e["position"] for e in events]
    assert positions == sorted(positions, reverse=True)  # never moves back


async def test_the_stream_of_a_stranger_is_a_problem(room: Room) -> None:
    r = await room.api.client.get(
        "/api/v1/queue/2026-spring/stream", headers=await room.api.headers("q1")
    )
    assert_problem(r, 404, "not_in_queue")


async def test_a_full_section_is_refused_without_the_database(
    seeded: Api, container: Container
) -> None:
    checkouts = Checkouts(container)
    assert (await seeded.enroll("s1", "ART100-01")).status_code == 201
    assert_problem(await seeded.enroll("s2", "ART100-01"), 409, "section_full")
    for student in ("s3", "s4"):
        await seeded.headers(student)  # log in first: a login reads the database
    before = checkouts.count
    for student in ("s3", "s4"):
        assert_problem(await seeded.enroll(student, "ART100-01"), 409, "section_full")
    assert checkouts.count == before  # refused by the hint: no connection was even taken
    # a drop reopens it at once
    assert (await seeded.drop("s1", "ART100-01")).status_code == 204
    assert (await seeded.enroll("s3", "ART100-01")).status_code == 201
    assert checkouts.count > before


async def test_taking_the_last_place_tells_the_hints(seeded: Api, container: Container) -> None:
    """The hints were never rebuilt here, so they know no counts: the enrollment that took
    a section's last seat (no waitlist) or its last waitlist place is what tells them."""
    for student in ("s1", "s2", "s3", "s4"):
        await seeded.headers(student)
    checkouts = Checkouts(container)
    assert (await seeded.enroll("s1", "ART100-01")).status_code == 201  # its only seat
    before = checkouts.count
    assert_problem(await seeded.enroll("s2", "ART100-01"), 409, "section_full")
    assert checkouts.count == before
    # CS101-01: one seat, then a waitlist of two
    taken = [await seeded.enroll(s, "CS101-01") for s in ("s2", "s3", "s4")]
    assert [(r.status_code, r.json()["status"]) for r in taken] == [
        (201, "enrolled"),
        (201, "waitlisted"),
        (201, "waitlisted"),
    ]
    before = checkouts.count
    assert_problem(await seeded.enroll("s1", "CS101-01"), 409, "waitlist_full")
    assert checkouts.count == before


async def test_a_retry_with_its_key_reaches_the_stored_result(seeded: Api) -> None:
    first = await seeded.enroll("s1", "ART100-01", key="k-1")
    assert first.status_code == 201
    assert_problem(await seeded.enroll("s2", "ART100-01"), 409, "section_full")  # hint: full
    replay = await seeded.enroll("s1", "ART100-01", key="k-1")
    assert replay.status_code == 201
    assert replay.headers["idempotent-replayed"] == "true"
    assert_problem(await seeded.enroll("s2", "ART100-01", key="k-2"), 409, "section_full")


async def test_hints_rebuilt_from_the_database_refuse_at_once(
    seeded: Api, container: Container
) -> None:
    assert (await seeded.enroll("s3", "PHYS100-01")).status_code == 201  # reads the term
    # the seat is taken behind the hints' back: only a rebuild can learn of it
    account = await container.storage.reads().account("s1")
    assert account is not None
    assert account.student_pk is not None
    async with container.storage.unit_of_work() as uow:
        art = await uow.enrollments.find_section(TERM, "ART100-01")
        assert await uow.enrollments.take_seat(art, account.student_pk) == 0
        await uow.commit()
    await container.hint_keeper.check()  # as on start: rebuild from the database
    await seeded.headers("s2")
    checkouts = Checkouts(container)
    assert_problem(await seeded.enroll("s2", "ART100-01"), 409, "section_full")
    assert checkouts.count == 0


async def test_a_stream_ends_when_its_student_left_from_elsewhere(room: Room) -> None:
    for n in range(1, 4):
        await room.join(f"q{n}")
    headers = await room.api.headers("q3")
    reading = asyncio.create_task(
        room.api.client.get("/api/v1/queue/2026-spring/stream", headers=headers)
    )
    await asyncio.sleep(0.05)
    assert (await room.leave("q3")).status_code == 204  # another tab gives up the place
    for _ in range(20):
        if reading.done():
            break
        await room.tick(seconds=1.0)
        await asyncio.sleep(0.05)
    r = await asyncio.wait_for(reading, 10)
    events = [
        json.loads(line.removeprefix("data: "))
        for line in r.text.splitlines()
        if line.startswith("data: ")
    ]
    assert (events[-1]["state"], events[-1]["reason"]) == ("closed", "left")
    assert all(e["admission_token"] is None for e in events)


async def test_after_closing_join_and_status_agree_the_room_is_closed(room: Room) -> None:
    await room.join("q1")
    room.clock.set(T0 + timedelta(days=30))  # long after the window closed
    room.api.forget_tokens()  # theirs expired meanwhile
    for student in ("q1", "q2"):  # one who joined in time, one who never did
        for answer in (await room.status(student), await room.join(student)):
            assert answer.status_code == 200, answer.text
            body = answer.json()
            assert (body["state"], body["reason"]) == ("closed", "window_closed"), body
            assert body["admission_token"] is None
