"""The load scenarios' request bodies pass the service's own schemas and rules, so a load
run measures saves, posts and rounds created, never ``422`` by accident.

The modules under ``loadtests/`` checked here use the standard library only: no Locust.
"""

from __future__ import annotations

import importlib.util
import random
import re
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from types import ModuleType

import pytest

from rushgate.domain.admissions import (
    AdmissionRound,
    FilingWindow,
    PersonalInfo,
    Track,
    check_question,
)
from rushgate.http.admission_schemas import ApplicationIn, RoundCreate, SignUp
from rushgate.http.qna_schemas import QuestionIn
from rushgate.services.admissions import PASSWORD_MAX, PASSWORD_MIN

LOADTESTS = Path(__file__).resolve().parents[2] / "loadtests"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"loadtests_{name}", LOADTESTS / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


payloads = _load("payloads")
setup_round = _load("setup_round")
summary = _load("summary")

SEEDS = range(200)


@pytest.mark.parametrize("seed", SEEDS[:50])
def test_application_body_passes_the_schema_and_the_domain(seed: int) -> None:
    rng = random.Random(seed)
    tracks = [t["code"] for t in setup_round.TRACKS]
    body = payloads.application(rng, tracks, payloads.korean_name(rng))
    parsed = ApplicationIn.model_validate_json(ApplicationIn(**body).model_dump_json())
    assert parsed.consent is True
    assert parsed.track in tracks
    assert parsed.personal is not None
    PersonalInfo.create(**parsed.personal.model_dump(), today=date.today())


def test_personal_data_differs_between_calls() -> None:
    rng = random.Random(1)
    bodies = [payloads.personal(rng, name="김민준") for _ in range(20)]
    assert len({b["phone"] for b in bodies}) == 20
    assert all(re.fullmatch(r"010-\d{4}-\d{4}", b["phone"]) for b in bodies)
    assert all(re.fullmatch(r"\d{4}-\d{2}-\d{2}", b["birth_date"]) for b in bodies)


@pytest.mark.parametrize("seed", SEEDS[:50])
def test_question_body_passes_the_schema_and_the_domain(seed: int) -> None:
    body = payloads.question(random.Random(seed))
    parsed = QuestionIn(**body)
    assert parsed.public is True
    check_question(parsed.title, parsed.body)


def test_sign_up_body_passes_the_schema() -> None:
    body = {
        "email": payloads.unique_email("lt-20260101-000000-abcdef"),
        "password": payloads.password(),
        "name": "김민준",
        "locale": "ko",
    }
    SignUp(**body)
    assert PASSWORD_MIN <= len(body["password"]) <= PASSWORD_MAX
    assert re.fullmatch(r"[^@\s]{1,64}@[^@\s]+\.[^@\s]+", body["email"])


def test_round_body_makes_a_valid_round() -> None:
    code = setup_round.new_round_code()
    parsed = RoundCreate(**setup_round.round_body(code, datetime.now(UTC)))
    assert parsed.opens_at < datetime.now(UTC) < parsed.closes_at
    assert parsed.receipt_prefix is not None
    AdmissionRound(
        code=parsed.code,
        name=parsed.name,
        window=FilingWindow(parsed.opens_at, parsed.closes_at),
        tracks=tuple(Track(t.code, t.name, t.capacity) for t in parsed.tracks),
        required_documents=tuple(parsed.required_documents),
        receipt_prefix=parsed.receipt_prefix,
    )


def test_summary_uses_nearest_rank_percentiles_and_renders() -> None:
    samples = [(1000.0 + i / 100, float(i + 1), i % 10 == 0) for i in range(100)]
    row = summary.summarize("PUT x", samples)
    assert (row["p50_ms"], row["p90_ms"], row["p99_ms"], row["max_ms"]) == (50, 90, 99, 100)
    assert row["failures"] == 10
    assert row["error_pct"] == pytest.approx(10.0)
    assert row["rps"] == pytest.approx(100 / (0.99 + 0.1))
    text = summary.render(
        {
            "scenario": "applicants",
            "host": "http://127.0.0.1:8000",
            "round": "lt-x",
            "users": 500,
            "spawn_rate": 100,
            "run_time": 30,
            "think_time_s": 1.0,
            "locust": "x",
            "started_at": "2026-01-01T00:00:00+00:00",
            "rows": [row],
            "headline": row,
            "all": row,
            "errors": [
                {"method": "PUT", "name": "x", "error": "422 validation_failed", "occurrences": 10}
            ],
        }
    )
    assert "422 validation_failed" in text
    assert "| 2026-01-01 | 500 | 30 s | 100 |" in text
