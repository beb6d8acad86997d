"""Receipt numbers under a filing rush: 2,000 applicants submit at once through a real
server (2 worker processes) on real PostgreSQL; every one gets exactly one receipt, no
two the same, and exactly one confirmation in the outbox."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from tests.serverproc import DEFAULT_ADMIN, HttpPool, ServerConfig, ServerProcess
from tests.support import PostgresTemplates

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

APPLICANTS = 2000
PASSWORD = "applicant-pass-1"


@dataclass
class Filing:
    client: HttpPool
    database_url: str
    round: str
    tokens: list[dict[str, str]]


@pytest.fixture(scope="module")
async def filing(
    pg_templates: PostgresTemplates, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Filing]:
    url = await pg_templates.new_database()
    config = ServerConfig(
        log_dir=tmp_path_factory.mktemp("filing"),
        database_url=url,
        name="filing",
        extra_env={"RUSHGATE_REQUIRE_EMAIL_VERIFICATION": "false"},
    )
    server = ServerProcess(config)
    try:
        await server.astart()
        async with HttpPool(server.base_url, size=200) as client:
            admin = await client.post(
                "/api/v1/auth/token",
                json={"username": DEFAULT_ADMIN[0], "password": DEFAULT_ADMIN[1]},
            )
            admin_headers = {"Authorization": f"Bearer {admin.json()['access_token']}"}
            now = datetime.now(UTC)
            r = await client.post(
                "/api/v1/admin/admissions",
                json={
                    "code": "rush-2027",
                    "name": "Filing rush",
                    "opens_at": (now - timedelta(hours=1)).isoformat(),
                    "closes_at": (now + timedelta(hours=6)).isoformat(),
                    "tracks": [{"code": "general", "name": "General"}],
                    "receipt_prefix": "2027-R",
                },
                headers=admin_headers,
            )
            assert r.status_code == 201, r.text

            async def applicant(n: int) -> dict[str, str]:
                email = f"filer{n:05d}@example.test"
                r = await client.post(
                    "/api/v1/applicants",
                    json={"email": email, "password": PASSWORD, "name": f"Filer {n}"},
                )
                assert r.status_code == 201, r.text
                r = await client.post(
                    "/api/v1/auth/token", json={"username": email, "password": PASSWORD}
                )
                headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
                r = await client.put(
                    "/api/v1/admissions/rush-2027/application",
                    json={
                        "track": "general",
                        "consent": True,
                        "personal": {
                            "name": f"Filer {n}",
                            "birth_date": "2011-05-01",
                            "phone": f"010-{n:04d}-{n:04d}",
                            "guardian_name": "Guardian",
                            "guardian_phone": "010-9999-0000",
                            "middle_school": "Middle School",
                            "address": "Seoul",
                        },
                    },
                    headers=headers,
                )
                assert r.status_code == 201, r.text
                return headers

            tokens = await asyncio.gather(*(applicant(n) for n in range(APPLICANTS)))
            yield Filing(client, url, "rush-2027", list(tokens))
    finally:
        await server.astop()
        await pg_templates.drop(url)
    log = server.log_text()
    assert "Traceback" not in log, server.log_tail(80)


async def test_every_applicant_gets_one_receipt_and_no_two_the_same(filing: Filing) -> None:
    await filing.client.warm_up()
    path = f"/api/v1/admissions/{filing.round}/application/submit"
    # Every applicant submits; every tenth one double-clicks (two requests at once).
    calls = [(i, h) for i, h in enumerate(filing.tokens)]
    calls += [(i, h) for i, h in enumerate(filing.tokens) if i % 10 == 0]
    responses = await asyncio.gather(
        *(filing.client.post(path, headers=headers) for _, headers in calls)
    )
    statuses = Counter(r.status_code for r in responses)
    assert set(statuses) <= {200, 201}, statuses
    assert statuses[201] == APPLICANTS, "each application is filed by exactly one request"
    by_applicant: dict[int, set[str]] = {}
    for (i, _), r in zip(calls, responses, strict=True):
        by_applicant.setdefault(i, set()).add(r.json()["receipt_number"])
    assert all(len(receipts) == 1 for receipts in by_applicant.values())
    receipts = [next(iter(r)) for r in by_applicant.values()]
    assert len(set(receipts)) == APPLICANTS
    # Nothing rolled back, so no gaps either.
    assert sorted(receipts) == [f"2027-R-{n:06d}" for n in range(1, APPLICANTS + 1)]

    conn = await asyncpg.connect(filing.database_url.replace("postgresql://", "postgres://"))
    try:
        stored = await conn.fetchval(
            "SELECT count(DISTINCT receipt_number) FROM applications WHERE status = 'submitted'"
        )
        mails = await conn.fetchval(
            "SELECT count(*) FROM outbox WHERE kind = 'application.submitted'"
        )
        counter = await conn.fetchval("SELECT receipt_seq FROM admission_rounds")
    finally:
        await conn.close()
    assert stored == APPLICANTS
    assert mails == APPLICANTS
    assert counter == APPLICANTS
