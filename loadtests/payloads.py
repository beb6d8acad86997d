"""Request bodies for the load scenarios: plausible, valid, and different on every call
(seed 000's k6 script randomised its fields for each request too).

Pure Python, no Locust: ``tests/loadtests/`` checks these against the service's own
schemas and validation rules, so a scenario never measures ``422`` answers by accident.
"""

from __future__ import annotations

import random
import secrets
from datetime import date, timedelta

SURNAMES = "김이박최정강조윤장임한오서신권황안송류홍"
GIVEN = "민서준도윤하예지우현수아건연시은재유진호성"
SCHOOLS = ["한빛", "새솔", "푸른솔", "가람", "누리", "다솜", "별빛", "한울"]
STREETS = ["테헤란로", "세종대로", "중앙로", "해운대로", "대학로", "경수대로"]
CITIES = ["서울특별시 강남구", "부산광역시 해운대구", "대구광역시 중구", "경기도 수원시 팔달구"]
TOPICS = ["전형 일정", "제출 서류", "면접", "기숙사", "통학 버스", "장학금", "원서 수정"]


def korean_name(rng: random.Random) -> str:
    return rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(2))


def phone(rng: random.Random) -> str:
    """A Korean mobile number as people type it: ``010-1234-5678``."""
    return f"010-{rng.randint(1000, 9999)}-{rng.randint(1000, 9999)}"


def birth_date(rng: random.Random, today: date | None = None) -> str:
    """A high-school applicant's: about 15 and a half years old today."""
    today = today or date.today()
    return (today - timedelta(days=5661 + rng.randint(-150, 150))).isoformat()


def personal(rng: random.Random, name: str | None = None) -> dict[str, str]:
    return {
        "name": name or korean_name(rng),
        "birth_date": birth_date(rng),
        "phone": phone(rng),
        "guardian_name": korean_name(rng),
        "guardian_phone": phone(rng),
        "middle_school": f"{rng.choice(SCHOOLS)}중학교",
        "address": f"{rng.choice(CITIES)} {rng.choice(STREETS)} {rng.randint(1, 999)}",
    }


def statement(rng: random.Random) -> str:
    sentences = [
        "저는 소프트웨어 개발에 관심이 많아 이 학교에 지원하게 되었습니다.",
        "중학교에서 동아리 활동으로 작은 웹 서비스를 만들어 친구들과 운영했습니다.",
        "어려운 문제를 끝까지 붙잡고 해결하는 끈기가 저의 장점입니다.",
        "입학 후에는 서버와 인프라를 깊이 공부하고 싶습니다.",
        "I also enjoy reading technical blogs and writing small tools in Python.",
    ]
    count = rng.randint(3, 8)
    return " ".join(rng.choice(sentences) for _ in range(count)) + f" ({rng.randint(1, 10**6)})"


def application(rng: random.Random, tracks: list[str], name: str) -> dict[str, object]:
    """The body of ``PUT /api/v1/admissions/{round}/application``."""
    return {
        "track": rng.choice(tracks),
        "personal": personal(rng, name=name),
        "statement": statement(rng),
        "consent": True,
    }


def question(rng: random.Random) -> dict[str, object]:
    """The body of ``POST /api/v1/admissions/{round}/questions``."""
    topic = rng.choice(TOPICS)
    return {
        "title": f"{topic} 관련 문의드립니다 #{rng.randint(1, 99999)}",
        "body": (
            f"안녕하세요. {topic}에 대해 궁금한 점이 있습니다.\n"
            "원서 접수 기간 중에 내용을 수정할 수 있는지, 마감 직전에 제출해도 되는지 "
            "알려주시면 감사하겠습니다."
        ),
        "public": True,
    }


def unique_email(run: str) -> str:
    return f"{run}-{secrets.token_hex(6)}@loadtest.example.com"


def password() -> str:
    return "lt-" + secrets.token_urlsafe(12)
