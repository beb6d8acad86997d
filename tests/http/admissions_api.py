"""Helpers for the admissions HTTP tests: a round, applicants that sign up and verify,
applications in every state."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import sqlalchemy as sa

from rushgate.adapters.sql.tables import outbox, users
from rushgate.composition import Container
from tests.http.api import Api, bearer
from tests.support import T0

ROUND = "hs-2027"
APPLICANT_PASSWORD = "applicant-pass-1"
OPENS = T0 - timedelta(days=1)
CLOSES = T0 + timedelta(days=1)


def round_json(code: str = ROUND, **extra: Any) -> dict[str, Any]:
    return {
        "code": code,
        "name": "2027학년도 신입생 모집",
        "opens_at": OPENS.isoformat(),
        "closes_at": CLOSES.isoformat(),
        "tracks": [
            {"code": "general", "name": "일반전형", "capacity": 200},
            {"code": "arts", "name": "예술전형", "capacity": 20},
        ],
        "required_documents": ["transcript"],
        "receipt_prefix": "2027-A",
        **extra,
    }


def personal_json(**changes: Any) -> dict[str, Any]:
    return {
        "name": "김하늘",
        "birth_date": "2011-03-14",
        "phone": "010-1234-5678",
        "guardian_name": "김보호",
        "guardian_phone": "010-8765-4321",
        "middle_school": "한빛중학교",
        "address": "서울특별시 중구 세종대로 110",
        **changes,
    }


def application_json(**changes: Any) -> dict[str, Any]:
    return {
        "track": "general",
        "personal": personal_json(),
        "statement": "저는 과학을 좋아합니다.",
        "consent": True,
        **changes,
    }


class Admissions:
    """The admissions routes over the in-process app."""

    def __init__(self, api: Api, container: Container) -> None:
        self.api = api
        self.client: httpx.AsyncClient = api.client
        self.container = container
        self._tokens: dict[str, str] = {}

    async def create_round(self, body: dict[str, Any] | None = None) -> httpx.Response:
        return await self.client.post(
            "/api/v1/admin/admissions", json=body or round_json(), headers=await self.api.admin()
        )

    async def sign_up(self, email: str, **extra: Any) -> httpx.Response:
        body = {"email": email, "password": APPLICANT_PASSWORD, "name": "지원자", **extra}
        return await self.client.post("/api/v1/applicants", json=body)

    async def outbox(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Outbox rows, oldest first, with the recipient's username."""
        query = sa.select(
            outbox.c.kind, outbox.c.dedupe_key, outbox.c.payload, users.c.username
        ).join(users, users.c.id == outbox.c.user_id)
        if kind is not None:
            query = query.where(outbox.c.kind == kind)
        async with self.container.storage.primary.connect() as conn:
            rows = (await conn.execute(query.order_by(outbox.c.id))).mappings().all()
        return [dict(r) for r in rows]

    async def verification_token(self, email: str) -> str:
        mails = [m for m in await self.outbox("applicant.verify_email") if m["username"] == email]
        assert len(mails) == 1, mails
        url: str = mails[0]["payload"]["verify_url"]
        return url.split("token=", 1)[1]

    async def verify(self, email: str) -> None:
        token = await self.verification_token(email)
        r = await self.client.post("/api/v1/applicants/verify", json={"token": token})
        assert r.status_code == 204, r.text

    async def applicant(self, email: str, *, verified: bool = True) -> dict[str, str]:
        r = await self.sign_up(email)
        assert r.status_code == 201, r.text
        if verified:
            await self.verify(email)
        return await self.headers(email)

    async def headers(self, email: str) -> dict[str, str]:
        if email not in self._tokens:
            r = await self.api.login(email, APPLICANT_PASSWORD)
            assert r.status_code == 200, r.text
            self._tokens[email] = r.json()["access_token"]
        return bearer(self._tokens[email])

    async def fresh_headers(self, email: str) -> dict[str, str]:
        """Log in again (after the clock moved past the tokens' lifetime)."""
        self._tokens.pop(email, None)
        self.api.forget_tokens()
        return await self.headers(email)

    def path(self, suffix: str = "", round_code: str = ROUND) -> str:
        return f"/api/v1/admissions/{round_code}/application{suffix}"

    async def save(
        self, headers: dict[str, str], body: dict[str, Any] | None = None
    ) -> httpx.Response:
        return await self.client.put(self.path(), json=body or application_json(), headers=headers)

    async def submit(self, headers: dict[str, str]) -> httpx.Response:
        return await self.client.post(self.path("/submit"), headers=headers)

    async def submitted(self, email: str) -> str:
        """A verified applicant with a submitted application; its receipt number."""
        headers = await self.applicant(email)
        assert (await self.save(headers)).status_code == 201
        r = await self.submit(headers)
        assert r.status_code == 201, r.text
        receipt: str = r.json()["receipt_number"]
        return receipt

    async def set_status(self, receipt: str, status: str) -> httpx.Response:
        return await self.client.put(
            f"/api/v1/admin/admissions/{ROUND}/applications/{receipt}/status",
            json={"status": status},
            headers=await self.api.admin(),
        )
