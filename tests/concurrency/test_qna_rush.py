"""The seed site's load test in small: many applicants post a Q&A question at the same
moment, through the app, on PostgreSQL. Every post is answered 201 and stored exactly
once; none waits on another (one INSERT each, no shared row)."""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx
import pytest
from sqlalchemy import text

from rushgate.adapters.security import Argon2Hasher
from rushgate.composition import Container
from tests.admissions_seed import APPLICANT_PASSWORD, ROUND, add_round

POSTS = 200


@pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.postgres)])
async def test_simultaneous_posts_are_all_stored_once(
    client: httpx.AsyncClient, container: Container, hasher: Argon2Hasher
) -> None:
    storage = container.storage
    await add_round(storage)
    password_hash = hasher.hash(APPLICANT_PASSWORD)
    emails = [f"rush{n:04d}@example.test" for n in range(POSTS)]
    async with storage.unit_of_work() as uow:
        for address in emails:
            await uow.admissions.add_applicant(
                email=address,
                name=address,
                password_hash=password_hash,
                locale=None,
                now=container.clock.now(),
            )
        await uow.commit()

    async def login(address: str) -> dict[str, str]:
        r = await client.post(
            "/api/v1/auth/token", json={"username": address, "password": APPLICANT_PASSWORD}
        )
        assert r.status_code == 200, r.text
        return {"Authorization": f"Bearer {r.json()['access_token']}"}

    tokens = await asyncio.gather(*(login(a) for a in emails))
    go = asyncio.Event()

    async def post(n: int) -> httpx.Response:
        await go.wait()
        return await client.post(
            f"/api/v1/admissions/{ROUND}/questions",
            json={
                "title": f"질문 {n:04d}",
                "body": "원서 마감 시각이 궁금합니다.",
                "public": n % 2 == 0,
            },
            headers=tokens[n],
        )

    tasks = [asyncio.create_task(post(n)) for n in range(POSTS)]
    await asyncio.sleep(0)  # every task waits at the barrier before it opens
    go.set()
    responses = await asyncio.gather(*tasks)

    assert Counter(r.status_code for r in responses) == {201: POSTS}
    ids = [r.json()["id"] for r in responses]
    assert len(set(ids)) == POSTS
    async with storage.primary_reads.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT q.title, a.email FROM admission_questions q"
                    " JOIN applicants a ON a.id = q.applicant_id"
                )
            )
        ).all()
    assert len(rows) == POSTS
    assert sorted(rows) == sorted((f"질문 {n:04d}", emails[n]) for n in range(POSTS))
    # And the board lists each once: pages of 100, newest first, no gaps or repeats.
    admin = await client.post(
        "/api/v1/auth/token", json={"username": "admin", "password": "admin-password"}
    )
    headers = {"Authorization": f"Bearer {admin.json()['access_token']}"}
    listed: list[int] = []
    cursor: str | None = None
    while True:
        params: dict[str, str | int] = {"limit": 100, **({"cursor": cursor} if cursor else {})}
        r = await client.get(
            f"/api/v1/admissions/{ROUND}/questions", params=params, headers=headers
        )
        assert r.status_code == 200, r.text
        listed += [q["id"] for q in r.json()["items"]]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            break
    assert listed == sorted(ids, reverse=True)
