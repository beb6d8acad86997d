"""HTTP fixtures: an API helper over the in-process ``client``, and a seeded term."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest

from tests.http.api import Api, meeting_json, section_json, student_json, term_json
from tests.support import T0

SENIORS_OPEN = T0 - timedelta(hours=1)

SECTIONS = [
    section_json("CS101-01", capacity=1, waitlist_capacity=2),  # MON 09:00-10:15
    section_json("CS101-02", capacity=2, meetings=[meeting_json("TUE")]),
    section_json(
        "MATH200-01", capacity=2, credits=4, meetings=[meeting_json("MON", "10:00", "11:00")]
    ),
    section_json("PHYS100-01", capacity=5, credits=4, meetings=[meeting_json("WED")]),
    section_json("ART100-01", capacity=1, meetings=[meeting_json("FRI")]),
]
STUDENTS = [
    *(student_json(f"s{n}") for n in range(1, 5)),
    student_json("senior", class_year=4),
    student_json("light", max_credits=7),
]


@pytest.fixture
def api(client: httpx.AsyncClient) -> Api:
    return Api(client)


@pytest.fixture
async def seeded(api: Api) -> Api:
    """The default term (seniors open an hour early), its sections and students."""
    assert (await api.create_term(term_json(by_year={4: SENIORS_OPEN}))).status_code == 201
    assert (await api.create_sections(SECTIONS)).status_code == 201
    assert (await api.create_students(STUDENTS)).status_code == 201
    return api
