"""Property test: random enroll, drop and retry sequences against a pure-Python model.

A few students and a few tiny sections (capacities 0-3, waitlists 0-2, shared course codes,
clashing and touching meetings, small credit limits) are reconfigured for every example.
Each step's outcome (status, waitlist position, error code, promoted student, replay) must
match the model, and after each step the database must hold exactly the model's places in
the model's waitlist order, with every seat invariant intact.

The database is seeded once per test and reset between examples (``reset_enrollments``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, settings, target
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import event, update

from rushgate.adapters.sql.codec import meetings_to_json
from rushgate.adapters.sql.engine import SqlStorage
from rushgate.adapters.sql.tables import sections as SECTIONS_TABLE
from rushgate.adapters.sql.tables import students as STUDENTS_TABLE
from rushgate.domain.clock import FixedClock
from rushgate.domain.errors import DomainError
from rushgate.services.enrollment import EnrollmentService
from tests.support import (
    T0,
    check_invariants,
    holding_rows,
    meeting,
    new_section,
    new_student,
    new_term,
    own_event_loop,
    reset_enrollments,
    seed,
)

T = TypeVar("T")

SECTION_IDS = ("S0-01", "S1-01", "S2-01", "S3-01")
UNKNOWN_SECTION = "NOPE-01"
STUDENT_IDS = ("a", "b", "c", "d", "e")
COURSES = ("C1", "C2", "C3", "C4")
KEYS = ("k1", "k2")
# Weighted draws: mostly known sections, mostly no key, mostly roomy credit limits, so
# that full sections, long waitlists and promotions are common.
SECTION_CHOICES = st.sampled_from(SECTION_IDS * 5 + (UNKNOWN_SECTION,))
KEY_CHOICES = st.sampled_from((None, *KEYS))
ACTIONS = st.sampled_from(("enroll", "enroll", "drop", "retry"))
FOCUSED = st.sampled_from((True, True, True, False))
CREDIT_LIMITS = st.sampled_from((16, 6, 16, 4, 16, 0))
# (day, start, end) in minutes: slot 1 clashes with 0, slot 2 only touches 0, slot 3 is apart.
SLOTS = (("MON", 540, 600), ("MON", 570, 630), ("MON", 600, 660), ("TUE", 540, 600))
TERM = new_term()


def hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


@dataclass(frozen=True)
class SectionConfig:
    course: str
    capacity: int
    waitlist_capacity: int
    credits: int
    slot: int


section_configs = st.builds(
    SectionConfig,
    course=st.sampled_from(COURSES),
    # Hypothesis favours the first choice: put the crowded, promotion-prone values first.
    capacity=st.sampled_from((1, 2, 0, 3)),
    waitlist_capacity=st.sampled_from((2, 1, 0)),
    credits=st.integers(1, 4),
    slot=st.integers(0, len(SLOTS) - 1),
)


@dataclass
class Model:
    """The reference: what the rules say should happen, in plain Python."""

    sections: dict[str, SectionConfig]
    max_credits: dict[str, int]
    enrolled: dict[str, list[str]] = field(default_factory=dict)
    waitlist: dict[str, list[str]] = field(default_factory=dict)
    keys: dict[tuple[str, str], tuple[str, tuple[Any, ...]]] = field(default_factory=dict)
    promotion_score: int = 0

    def __post_init__(self) -> None:
        self.enrolled = {s: [] for s in self.sections}
        self.waitlist = {s: [] for s in self.sections}

    def held(self, student: str) -> list[str]:
        return [
            s for s in self.sections if student in self.enrolled[s] or student in self.waitlist[s]
        ]

    def places(self) -> list[tuple[str, str]]:
        """Every (student, section) with a seat or a waitlist place."""
        return [(student, s) for student in self.max_credits for s in self.held(student)]

    def not_held(self) -> list[tuple[str, str]]:
        held = set(self.places())
        return [(st, s) for st in self.max_credits for s in self.sections if (st, s) not in held]

    def _clash(self, a: str, b: str) -> bool:
        day_a, start_a, end_a = SLOTS[self.sections[a].slot]
        day_b, start_b, end_b = SLOTS[self.sections[b].slot]
        return day_a == day_b and start_a < end_b and start_b < end_a

    def enroll(self, student: str, section: str, key: str | None) -> tuple[Any, ...]:
        if key is not None and (student, key) in self.keys:
            stored_section, outcome = self.keys[(student, key)]
            if stored_section != section:
                return ("error", "idempotency_key_reused")
            return ("replayed", *outcome[1:])
        outcome = self._enroll(student, section)
        if key is not None and outcome[0] == "ok":
            self.keys[(student, key)] = (section, outcome)
        return outcome

    def _enroll(self, student: str, section: str) -> tuple[Any, ...]:
        if section not in self.sections:
            return ("error", "not_found")
        wanted = self.sections[section]
        held = self.held(student)
        if any(self.sections[h].course == wanted.course for h in held):
            return ("error", "already_enrolled")
        if any(self._clash(h, section) for h in held):
            return ("error", "time_conflict")
        if sum(self.sections[h].credits for h in held) + wanted.credits > self.max_credits[student]:
            return ("error", "credit_limit")
        if len(self.enrolled[section]) < wanted.capacity:
            self.enrolled[section].append(student)
            return ("ok", "enrolled", None)
        if wanted.waitlist_capacity == 0:
            return ("error", "section_full")
        if len(self.waitlist[section]) < wanted.waitlist_capacity:
            self.waitlist[section].append(student)
            return ("ok", "waitlisted", len(self.waitlist[section]))
        return ("error", "waitlist_full")

    def drop(self, student: str, section: str) -> tuple[Any, ...]:
        if section not in self.sections:
            return ("error", "not_found")
        if student in self.waitlist[section]:
            self.waitlist[section].remove(student)
            return ("ok", None)
        if student not in self.enrolled[section]:
            return ("error", "not_found")
        self.enrolled[section].remove(student)
        if self.waitlist[section]:
            # Promotions from longer waitlists score more: they show the order matters.
            self.promotion_score += len(self.waitlist[section]) ** 2
            head = self.waitlist[section].pop(0)
            self.enrolled[section].append(head)
            return ("ok", head)
        return ("ok", None)

    def rows(self) -> list[tuple[str, str, str]]:
        """As ``holding_rows`` orders them: section, enrolled by student, then queue order."""
        out: list[tuple[str, str, str]] = []
        for s in sorted(self.sections):
            out += [(s, student, "enrolled") for student in sorted(self.enrolled[s])]
            out += [(s, student, "waitlisted") for student in self.waitlist[s]]
        return out


class Harness:
    """One seeded database and a private event loop, shared by every example of a run."""

    def __init__(self, runner: asyncio.Runner, database_url: str) -> None:
        self.runner = runner
        self.clock = FixedClock(T0 + timedelta(minutes=30))
        self.storage = SqlStorage.from_urls(database_url, None, self.clock, pool_size=2)
        if self.storage.dialect == "sqlite":
            # Thousands of tiny transactions: skip the fsyncs (durability is not under test).
            @event.listens_for(self.storage.primary.sync_engine, "connect")
            def _no_fsync(dbapi_connection: Any, _record: Any) -> None:
                cursor = dbapi_connection.cursor()
                cursor.execute("PRAGMA synchronous=OFF")
                cursor.close()

        self.service = EnrollmentService(self.storage, self.clock)
        students = [new_student(s) for s in STUDENT_IDS]
        sections = [new_section(s) for s in SECTION_IDS]
        self.pks = self.run(seed(self.storage, term=TERM, sections=sections, students=students))
        self.by_pk = {pk: s for s, pk in self.pks.items()}

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.runner.run(coro)

    async def configure(self, model: Model) -> None:
        await reset_enrollments(self.storage)
        async with self.storage.primary.begin() as conn:
            for section_id, c in model.sections.items():
                day, start, end = SLOTS[c.slot]
                await conn.execute(
                    update(SECTIONS_TABLE)
                    .where(SECTIONS_TABLE.c.section_id == section_id)
                    .values(
                        course_code=c.course,
                        capacity=c.capacity,
                        waitlist_capacity=c.waitlist_capacity,
                        credits=c.credits,
                        meetings=meetings_to_json([meeting(day, hhmm(start), hhmm(end))]),
                    )
                )
            for student, limit in model.max_credits.items():
                await conn.execute(
                    update(STUDENTS_TABLE)
                    .where(STUDENTS_TABLE.c.student_id == student)
                    .values(max_credits=limit)
                )

    async def outcome(self, call: Callable[[], Coroutine[Any, Any, T]]) -> T | DomainError:
        try:
            return await call()
        except DomainError as error:
            return error


def machine_for(harness: Harness) -> type[RuleBasedStateMachine]:
    class EnrollmentMachine(RuleBasedStateMachine):
        model: Model
        last_enroll: tuple[str, str, str | None] | None = None

        @initialize(
            configs=st.lists(section_configs, min_size=len(SECTION_IDS), max_size=len(SECTION_IDS)),
            limits=st.lists(CREDIT_LIMITS, min_size=len(STUDENT_IDS), max_size=len(STUDENT_IDS)),
        )
        def configure(self, configs: list[SectionConfig], limits: list[int]) -> None:
            self.model = Model(
                dict(zip(SECTION_IDS, configs, strict=True)),
                dict(zip(STUDENT_IDS, limits, strict=True)),
            )
            harness.run(harness.configure(self.model))

        # One rule for both actions (not two rules: swarm testing would often switch one of
        # them off for a whole example). Most draws are focused: enroll picks a section, then
        # a student who holds no place in it (Hypothesis likes repeating a section, which
        # crowds it: full sections, long waitlists); drop picks a place that is held. The
        # rest draw freely, unknown sections, other people's places and keys included.

        @rule(data=st.data())
        def step(self, data: st.DataObject) -> None:
            action = data.draw(ACTIONS, label="action")
            if action == "retry":  # the same request again, as after a lost response
                if self.last_enroll is not None:
                    self.check_enroll(*self.last_enroll)
                return
            focused = data.draw(FOCUSED, label="focused")
            if action == "enroll":
                section = data.draw(SECTION_CHOICES, label="section")
                newcomers = [s for s in STUDENT_IDS if (s, section) not in self.model.places()]
                pool = newcomers if focused and newcomers else list(STUDENT_IDS)
                student = data.draw(st.sampled_from(pool), label="student")
                self.check_enroll(student, section, data.draw(KEY_CHOICES, label="key"))
                return
            held = self.model.places()
            if focused and held:
                student, section = data.draw(st.sampled_from(held), label="place")
            else:
                student = data.draw(st.sampled_from(STUDENT_IDS), label="student")
                section = data.draw(SECTION_CHOICES, label="section")
            self.check_drop(student, section)

        def check_enroll(self, student: str, section: str, key: str | None) -> None:
            self.last_enroll = (student, section, key)
            expected = self.model.enroll(student, section, key)
            got = harness.run(
                harness.outcome(
                    lambda: harness.service.enroll(
                        student_pk=harness.pks[student],
                        term_code=TERM.code,
                        section_id=section,
                        idempotency_key=key,
                    )
                )
            )
            if isinstance(got, DomainError):
                actual: tuple[Any, ...] = ("error", got.code)
            else:
                assert got.section_id == section
                actual = (
                    "replayed" if got.replayed else "ok",
                    got.status.value,
                    got.waitlist_position,
                )
            assert actual == expected, f"enroll({student}, {section}, {key})"

        def check_drop(self, student: str, section: str) -> None:
            expected = self.model.drop(student, section)
            got = harness.run(
                harness.outcome(
                    lambda: harness.service.drop(
                        student_pk=harness.pks[student], term_code=TERM.code, section_id=section
                    )
                )
            )
            if isinstance(got, DomainError):
                actual: tuple[Any, ...] = ("error", got.code)
            else:
                actual = ("ok", None if got is None else harness.by_pk[got])
            assert actual == expected, f"drop({student}, {section})"

        @invariant()
        def database_matches_model(self) -> None:
            if not hasattr(self, "model"):
                return
            harness.run(check_invariants(harness.storage))
            rows = [
                (s, student, status)
                for s, student, status, _ in harness.run(holding_rows(harness.storage))
            ]
            assert rows == self.model.rows()

        def teardown(self) -> None:
            # Steer generation towards promotions, where the interesting cases live.
            if hasattr(self, "model"):
                target(float(self.model.promotion_score), label="promotions")

    return EnrollmentMachine


@pytest.mark.slow
def test_enrollment_matches_reference_model(database_url: str, backend: str) -> None:
    examples = 60 if backend == "sqlite" else 15
    with own_event_loop() as runner:
        harness = Harness(runner, database_url)
        try:
            run_state_machine_as_test(
                machine_for(harness),
                settings=settings(
                    max_examples=examples,
                    stateful_step_count=30,
                    deadline=None,
                    suppress_health_check=[HealthCheck.too_slow],
                ),
            )
        finally:
            harness.run(harness.storage.close())
