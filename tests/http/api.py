"""Helpers for the in-process HTTP tests: JSON factories, a thin API client, problem checks."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx

from tests.support import T0

PROBLEM_JSON = "application/problem+json"
TERM = "2026-spring"
ADMIN = ("admin", "admin-password")  # the `client` fixture's admin
PASSWORD = "password-123"


def term_json(
    code: str = TERM,
    *,
    opens_at: datetime = T0,
    hours: int = 6,
    by_year: dict[int, datetime] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "code": code,
        "name": f"Term {code}",
        "opens_at": opens_at.isoformat(),
        "closes_at": (opens_at + timedelta(hours=hours)).isoformat(),
    }
    if by_year:
        body["class_year_opens_at"] = {str(y): at.isoformat() for y, at in by_year.items()}
    body.update(extra)
    return body


def meeting_json(day: str = "MON", start: str = "09:00", end: str = "10:15") -> dict[str, str]:
    return {"day": day, "start": start, "end": end}


def section_json(
    section_id: str = "CS101-01",
    *,
    course_code: str | None = None,
    capacity: int = 40,
    waitlist_capacity: int = 0,
    credits: int = 3,
    meetings: list[dict[str, str]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "section_id": section_id,
        "course_code": course_code or section_id.split("-")[0],
        "title": f"Title of {section_id}",
        "credits": credits,
        "capacity": capacity,
        "waitlist_capacity": waitlist_capacity,
        "meetings": meetings if meetings is not None else [meeting_json()],
        **extra,
    }


def student_json(
    student_id: str = "s1",
    *,
    class_year: int = 2,
    max_credits: int = 18,
    email: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "student_id": student_id,
        "name": f"Student {student_id}",
        "email": email or f"{student_id}@example.test",
        "password": PASSWORD,
        "class_year": class_year,
        "max_credits": max_credits,
        **extra,
    }


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_problem(
    response: httpx.Response, status: int, code: str | None = None
) -> dict[str, Any]:
    """An RFC 9457 problem with our machine ``code``; returns the body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON, response.headers
    body: dict[str, Any] = response.json()
    assert isinstance(body.get("code"), str), body
    assert body["status"] == status
    assert body["type"].endswith("/" + body["code"])
    assert body["title"]
    assert isinstance(body["detail"], str)
    if code is not None:
        assert body["code"] == code, body
    return body


def assert_not_server_error(response: httpx.Response) -> None:
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert_problem(response, response.status_code)


class Api:
    """The routes, by name; every method returns the raw response."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self._tokens: dict[str, str] = {}

    async def login(self, username: str, password: str) -> httpx.Response:
        return await self.client.post(
            "/api/v1/auth/token", json={"username": username, "password": password}
        )

    async def headers(self, username: str, password: str = PASSWORD) -> dict[str, str]:
        """Bearer headers for a user (tokens are cached per username)."""
        if username not in self._tokens:
            r = await self.login(username, password)
            assert r.status_code == 200, r.text
            self._tokens[username] = r.json()["access_token"]
        return bearer(self._tokens[username])

    def forget_tokens(self) -> None:
        """Log in afresh on next use (after moving the clock past the tokens' lifetime)."""
        self._tokens.clear()

    async def admin(self) -> dict[str, str]:
        return await self.headers(*ADMIN)

    async def create_term(self, body: dict[str, Any] | None = None) -> httpx.Response:
        return await self.client.post(
            "/api/v1/admin/terms", json=body or term_json(), headers=await self.admin()
        )

    async def create_sections(self, items: list[Any], term: str = TERM) -> httpx.Response:
        return await self.client.post(
            f"/api/v1/admin/terms/{term}/sections", json=items, headers=await self.admin()
        )

    async def create_students(self, items: list[Any]) -> httpx.Response:
        return await self.client.post(
            "/api/v1/admin/students", json=items, headers=await self.admin()
        )

    async def catalog(self, as_user: str = "admin", term: str = TERM) -> httpx.Response:
        headers = await (self.admin() if as_user == "admin" else self.headers(as_user))
        return await self.client.get(f"/api/v1/terms/{term}/sections", headers=headers)

    async def sections(self, term: str = TERM) -> dict[str, dict[str, Any]]:
        r = await self.catalog(term=term)
        assert r.status_code == 200, r.text
        return {s["section_id"]: s for s in r.json()["sections"]}

    async def roster(self, section_id: str, term: str = TERM) -> httpx.Response:
        return await self.client.get(
            f"/api/v1/admin/terms/{term}/sections/{section_id}/roster", headers=await self.admin()
        )

    async def enroll(
        self, student: str, section_id: str, *, key: str | None = None, term: str = TERM
    ) -> httpx.Response:
        headers = await self.headers(student)
        if key is not None:
            headers = {**headers, "Idempotency-Key": key}
        return await self.client.post(
            f"/api/v1/terms/{term}/enrollments", json={"section_id": section_id}, headers=headers
        )

    async def drop(self, student: str, section_id: str, term: str = TERM) -> httpx.Response:
        return await self.client.delete(
            f"/api/v1/terms/{term}/enrollments/{section_id}", headers=await self.headers(student)
        )

    async def schedule(self, student: str, term: str = TERM) -> httpx.Response:
        return await self.client.get(
            f"/api/v1/terms/{term}/enrollments/me", headers=await self.headers(student)
        )
