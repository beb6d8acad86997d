"""Helpers for the Q&A and document HTTP tests: who is calling, and the routes by name."""

from __future__ import annotations

from typing import Any

import httpx

from rushgate.adapters.security import Argon2Hasher
from rushgate.composition import Container
from tests.admissions_seed import (
    APPLICANT_PASSWORD,
    ROUND,
    add_applicant,
    add_round,
)
from tests.http.api import Api, student_json

APPLICANTS = ("kim", "lee")


def email(who: str) -> str:
    return f"{who}@example.test"


class Board:
    """Callers by nickname: ``kim``/``lee`` (applicants), ``admin``, ``s1`` (a student),
    ``anon`` (no token)."""

    def __init__(self, api: Api, container: Container) -> None:
        self.api = api
        self.client: httpx.AsyncClient = api.client
        self.container = container
        self.user_pks: dict[str, int] = {}

    @classmethod
    async def seeded(cls, api: Api, container: Container, hasher: Argon2Hasher) -> Board:
        """A round (``ROUND``), applicants kim and lee, and a student s1."""
        board = cls(api, container)
        await add_round(container.storage)
        password_hash = hasher.hash(APPLICANT_PASSWORD)
        for who in APPLICANTS:
            applicant = await add_applicant(
                container.storage, email(who), password_hash=password_hash, name=f"{who} 학생"
            )
            board.user_pks[who] = applicant.user_pk
        assert (await api.create_students([student_json("s1")])).status_code == 201
        return board

    async def applicant_pk(self, who: str) -> int:
        async with self.container.storage.unit_of_work() as uow:
            return (await uow.admissions.applicant_of(self.user_pks[who])).pk

    async def headers(self, who: str) -> dict[str, str]:
        if who == "anon":
            return {}
        if who == "admin":
            return await self.api.admin()
        if who in APPLICANTS:
            return await self.api.headers(email(who), APPLICANT_PASSWORD)
        return await self.api.headers(who)

    async def request(self, who: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {**await self.headers(who), **kwargs.pop("headers", {})}
        return await self.client.request(method, f"/api/v1{path}", headers=headers, **kwargs)

    # --- Q&A ---------------------------------------------------------------------------

    async def ask(
        self,
        who: str,
        title: str = "전형료 환불이 되나요?",
        body: str = "원서 접수 후 취소하면 전형료를 돌려받을 수 있나요?",
        *,
        public: bool = True,
        round_code: str = ROUND,
    ) -> httpx.Response:
        return await self.request(
            who,
            "POST",
            f"/admissions/{round_code}/questions",
            json={"title": title, "body": body, "public": public},
        )

    async def asked(self, who: str, title: str, *, public: bool = True) -> int:
        r = await self.ask(who, title, f"body of {title}", public=public)
        assert r.status_code == 201, r.text
        return int(r.json()["id"])

    async def questions(
        self,
        who: str,
        *,
        cursor: str | None = None,
        limit: int | None = None,
        round_code: str = ROUND,
    ) -> httpx.Response:
        params: dict[str, Any] = {}
        if cursor is not None:
            params["cursor"] = cursor
        if limit is not None:
            params["limit"] = limit
        return await self.request(who, "GET", f"/admissions/{round_code}/questions", params=params)

    async def titles(self, who: str) -> list[str]:
        r = await self.questions(who, limit=100)
        assert r.status_code == 200, r.text
        return [q["title"] for q in r.json()["items"]]

    async def question(self, who: str, question_id: int, round_code: str = ROUND) -> httpx.Response:
        return await self.request(who, "GET", f"/admissions/{round_code}/questions/{question_id}")

    async def answer(
        self, question_id: int, body: str, *, who: str = "admin", round_code: str = ROUND
    ) -> httpx.Response:
        return await self.request(
            who,
            "POST",
            f"/admin/admissions/{round_code}/questions/{question_id}/answer",
            json={"body": body},
        )

    async def add_faq(
        self, question: str, answer: str, *, who: str = "admin", round_code: str = ROUND
    ) -> httpx.Response:
        return await self.request(
            who,
            "POST",
            f"/admin/admissions/{round_code}/faq",
            json={"question": question, "answer": answer},
        )

    async def faq(self, who: str, round_code: str = ROUND) -> httpx.Response:
        return await self.request(who, "GET", f"/admissions/{round_code}/faq")
