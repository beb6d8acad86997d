"""Administrative use cases: terms, sections, students and accounts.

Bulk creates are all-or-nothing: the whole batch is checked, then written in one
transaction; one bad or duplicate item refuses the batch and writes nothing. A change made
for an admin (``actor``) writes its audit entry in that same transaction.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

from rushgate.domain.clock import Clock, SystemClock
from rushgate.domain.errors import Conflict, InvalidRequest, NotFound, ValidationFailed
from rushgate.domain.model import RegistrationWindow, normalize_email, normalize_username
from rushgate.domain.passwords import PasswordPolicy, password_error
from rushgate.services.audit import record
from rushgate.services.ports.audit import Actor
from rushgate.services.ports.auth import PasswordHasher
from rushgate.services.ports.registry import NewSection, NewStudent, Term
from rushgate.services.ports.storage import Storage


@dataclass(frozen=True, slots=True)
class StudentInput:
    """A student as an admin submits it, password in clear (hashed here, never stored)."""

    student_id: str
    name: str
    email: str
    password: str
    class_year: int
    max_credits: int


# An audit entry names at most this many of a batch's ids (a batch has up to 1,000).
_LOGGED_IDS = 100


def _check_window(window: RegistrationWindow) -> None:
    if window.closes_at <= window.opens_at:
        raise InvalidRequest("closes_at must be after opens_at")
    for year, opens in window.class_year_opens_at.items():
        if opens >= window.closes_at:
            raise InvalidRequest("a class year cannot open after the term closes", class_year=year)


def _ensure_unique(values: Iterable[str], what: str) -> None:
    repeated = sorted(v for v, n in Counter(values).items() if n > 1)
    if repeated:
        raise Conflict(f"the batch repeats {what}", duplicates=repeated[:50])


class RegistryService:
    def __init__(
        self,
        storage: Storage,
        hasher: PasswordHasher,
        hash_many: Callable[[Sequence[str]], list[str]] | None = None,
        *,
        clock: Clock | None = None,
        passwords: PasswordPolicy | None = None,
    ) -> None:
        self._storage = storage
        self._hasher = hasher
        self._hash_many = hash_many or (lambda passwords: [hasher.hash(p) for p in passwords])
        self._clock = clock or SystemClock()
        self._passwords = passwords or PasswordPolicy()

    async def create_term(self, term: Term, *, actor: Actor | None = None) -> None:
        _check_window(term.window)
        async with self._storage.unit_of_work() as uow:
            await uow.registry.add_term(term)
            await record(
                uow,
                self._clock,
                actor,
                "term.create",
                f"term:{term.code}",
                waiting_room=term.waiting_room_enabled,
            )
            await uow.commit()

    async def update_term(
        self,
        code: str,
        *,
        window: RegistrationWindow | None = None,
        admit_per_second: int | None = None,
        max_active: int | None = None,
        actor: Actor | None = None,
    ) -> Term:
        """Move a term's window or change its waiting room's pace; what is not given
        stays. The term as changed; raises ``NotFound``, ``InvalidRequest``."""
        if admit_per_second is not None and admit_per_second < 1:
            raise InvalidRequest("admit_per_second must be at least 1")
        if max_active is not None and max_active < 1:
            raise InvalidRequest("max_active must be at least 1")
        async with self._storage.unit_of_work() as uow:
            current = await uow.registry.term(code)
            changed = replace(
                current,
                window=window or current.window,
                admit_per_second=admit_per_second or current.admit_per_second,
                max_active=max_active or current.max_active,
            )
            _check_window(changed.window)
            fields = sorted(
                name
                for name, given in (
                    ("window", window),
                    ("admit_per_second", admit_per_second),
                    ("max_active", max_active),
                )
                if given is not None
            )
            await uow.registry.update_term(changed)
            await record(uow, self._clock, actor, "term.update", f"term:{code}", fields=fields)
            await uow.commit()
            return changed

    async def set_admission_paused(
        self, code: str, paused: bool, *, actor: Actor | None = None
    ) -> Term:
        """Pause (or resume) admission from the term's waiting room: the queue keeps
        its order and students keep joining; nobody is admitted while paused. Raises
        ``NotFound`` (also for a term without a waiting room)."""
        async with self._storage.unit_of_work() as uow:
            current = await uow.registry.term(code)
            if not current.waiting_room_enabled:
                raise NotFound("this term has no waiting room", term=code)
            changed = replace(current, admission_paused=paused)
            await uow.registry.update_term(changed)
            action = "queue.pause" if paused else "queue.resume"
            await record(uow, self._clock, actor, action, f"term:{code}")
            await uow.commit()
            return changed

    async def create_sections(
        self, term_code: str, sections: Sequence[NewSection], *, actor: Actor | None = None
    ) -> None:
        _ensure_unique((s.section_id for s in sections), "section ids")
        async with self._storage.unit_of_work() as uow:
            term_pk = await uow.registry.term_pk(term_code)
            await uow.registry.add_sections(term_pk, sections)
            await record(
                uow,
                self._clock,
                actor,
                "section.bulk_create",
                f"term:{term_code}",
                count=len(sections),
                section_ids=[s.section_id for s in sections[:_LOGGED_IDS]],
            )
            await uow.commit()

    async def create_students(
        self, students: Sequence[StudentInput], *, actor: Actor | None = None
    ) -> None:
        _ensure_unique((s.student_id for s in students), "student ids")
        # Stored lower-cased: S1@X.EDU and s1@x.edu are one address (one student).
        emails = [normalize_email(s.email) for s in students]
        _ensure_unique(emails, "emails")
        self._check_initial_passwords(students)
        # Slow on purpose (argon2): off the event loop, spread over the cores.
        hashes = await asyncio.to_thread(self._hash_many, [s.password for s in students])
        rows = [
            NewStudent(
                student_id=s.student_id,
                name=s.name,
                email=email,
                password_hash=h,
                class_year=s.class_year,
                max_credits=s.max_credits,
            )
            for s, email, h in zip(students, emails, hashes, strict=True)
        ]
        async with self._storage.unit_of_work() as uow:
            await uow.registry.add_students(rows)
            await record(
                uow,
                self._clock,
                actor,
                "student.bulk_create",
                "students",
                count=len(rows),
                student_ids=[s.student_id for s in rows[:_LOGGED_IDS]],
            )
            await uow.commit()

    def _check_initial_passwords(self, students: Sequence[StudentInput]) -> None:
        """Initial passwords are set by an operator: the operator's floor applies."""
        errors = []
        for index, s in enumerate(students):
            found = self._passwords.problem(
                s.password, identities=(s.student_id, s.email), chosen_by_operator=True
            )
            if found is not None:
                errors.append(password_error(f"{index}.password", found))
        if errors:
            raise ValidationFailed(
                "some initial passwords are not acceptable; nothing was created",
                errors=errors[:100],
            )

    async def ensure_admin(self, username: str, password: str) -> bool:
        """Create the admin if missing; whether it was created. Never changes a password.
        A username that is an email address is kept lower-cased, as applicants' are, so
        that it is one account whatever case it is typed in. The password rules are
        checked only when the account is created: an existing bootstrap admin keeps
        starting even if its configured password no longer passes them."""
        username = normalize_username(username)
        if await self._storage.reads(fresh=True).account(username) is not None:
            return False
        self._passwords.check(password, identities=(username,), chosen_by_operator=True)
        password_hash = await asyncio.to_thread(self._hasher.hash, password)
        async with self._storage.unit_of_work() as uow:
            created = await uow.registry.add_admin(username, password_hash)
            await uow.commit()
            return created

    async def create_admin(self, username: str, password: str) -> None:
        if not await self.ensure_admin(username, password):
            raise Conflict(
                "an account with this username exists", username=normalize_username(username)
            )
