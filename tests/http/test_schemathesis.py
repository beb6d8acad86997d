"""Every operation the OpenAPI document lists, driven by schemathesis as an admin, a
student, an applicant and nobody: no response is a 5xx, and every response is one the
document declares (status code, content type, headers, body schema).

Path parameters often name objects that exist (a seeded term, section, round, receipt,
question and document), so the checks reach past the 404s. Bounded (40 examples per
operation) and derandomized: the same examples on every run, about 20 s per backend.
A failure lists each operation and caller with its smallest failing request."""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as examples
from hypothesis import strategies as st
from schemathesis import APIOperation, Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rushgate.config import Settings
from rushgate.domain.clock import FixedClock
from rushgate.http.app import create_app
from tests.http.admissions_api import ROUND, Admissions, application_json, round_json
from tests.http.api import PASSWORD, TERM, Api, section_json, student_json, term_json
from tests.support import own_event_loop

Operation = APIOperation[Any, Any, Any, Any]
OperationCase = Case[Operation]

BASE_URL = "http://rushgate.test"
QUEUE_TERM = "2026-queue"
STUDENT = "s1"
APPLICANT = "kim@example.test"
PDF = b"%PDF-1.7\n" + bytes(range(256)) * 4
# Examples per operation and caller (positive and negative ones together); without a
# token most operations only answer 401, so a few suffice.
EXAMPLES = {"admin": 12, "student": 12, "applicant": 12, "anonymous": 4}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
# Bodies the schema alone rarely yields (valid references, allowed transitions), so that
# these operations also succeed sometimes; every other operation gets generated ones.
VALID_BODIES: dict[str, Any] = {
    "POST /api/v1/auth/token": {"username": STUDENT, "password": PASSWORD},
    "POST /api/v1/auth/session": {"username": STUDENT, "password": PASSWORD},
    "POST /api/v1/terms/{term}/enrollments": {"section_id": "ART100-01"},
    "POST /api/v1/admin/terms": term_json("2026-fall"),
    "POST /api/v1/admin/terms/{term}/sections": [section_json("NEW100-01")],
    "POST /api/v1/admin/students": [student_json("s9")],
    "POST /api/v1/applicants": {"email": "park@example.test", "password": PASSWORD, "name": "박"},
    "POST /api/v1/admin/admissions": round_json("hs-2028"),
    "PUT /api/v1/admin/admissions/{round_code}/applications/{receipt_number}/status": {
        "status": "under_review"
    },
    "POST /api/v1/admissions/{round_code}/questions": {"title": "기숙사", "body": "있나요?"},
    "POST /api/v1/admin/admissions/{round_code}/questions/{question_id}/answer": {
        "body": "네, 있습니다."
    },
    "POST /api/v1/admin/admissions/{round_code}/faq": {"question": "마감", "answer": "자정"},
}
# What requests.Request takes of what schemathesis prepares for a call.
_REQUEST_ARGUMENTS = ("method", "url", "headers", "files", "data", "params", "cookies", "json")


class EndStreams:
    """Ends an event stream after its first chunk, as a client that hangs up would: the
    in-process transport returns only once a response is complete."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        streaming = ended = False

        async def send_until_ended(message: Message) -> None:
            nonlocal streaming, ended
            if ended:
                return
            if message["type"] == "http.response.start":
                streaming = any(
                    name.lower() == b"content-type" and value.startswith(b"text/event-stream")
                    for name, value in message.get("headers", [])
                )
            elif message["type"] == "http.response.body" and streaming:
                # The transport then reports a disconnect, which ends the stream.
                message, ended = {**message, "more_body": False}, True
            await send(message)

        await self.app(scope, receive, send_until_ended)


@dataclass
class World:
    """The seeded objects, and a bearer header per role."""

    headers: dict[str, dict[str, str]]
    existing: dict[str, list[str]]


@dataclass
class Findings:
    """The last (so, after shrinking, the smallest) failure seen per operation and caller,
    and the status codes seen per operation."""

    by_operation: dict[str, str] = field(default_factory=dict)
    statuses: dict[str, Counter[int]] = field(default_factory=lambda: defaultdict(Counter))


async def seed(api: Api, admissions: Admissions) -> World:
    client = api.client
    assert (await api.create_term(term_json())).status_code == 201
    sections = [section_json("CS101-01"), section_json("ART100-01", capacity=1)]
    assert (await api.create_sections(sections)).status_code == 201
    room = term_json(QUEUE_TERM, waiting_room={"enabled": True, "admit_per_second": 8})
    assert (await api.create_term(room)).status_code == 201
    assert (await api.create_sections([section_json("Q100-01")], QUEUE_TERM)).status_code == 201
    assert (await api.create_students([student_json(STUDENT)])).status_code == 201
    student = await api.headers(STUDENT)
    assert (await api.enroll(STUDENT, "CS101-01")).status_code == 201
    r = await client.post(f"/api/v1/queue/{QUEUE_TERM}/join", headers=student)
    assert r.status_code == 200, r.text

    assert (await admissions.create_round(round_json())).status_code == 201
    applicant = await admissions.applicant(APPLICANT)
    assert (await admissions.save(applicant, application_json())).status_code == 201
    r = await client.post(
        admissions.path("/documents"),
        data={"kind": "transcript"},
        files={"file": ("transcript.pdf", PDF, "application/pdf")},
        headers=applicant,
    )
    assert r.status_code == 201, r.text
    document_id = str(r.json()["id"])
    r = await client.post(
        f"/api/v1/admissions/{ROUND}/questions",
        json={"title": "전형료", "body": "환불이 되나요?", "public": True},
        headers=applicant,
    )
    assert r.status_code == 201, r.text
    question_id = str(r.json()["id"])
    r = await admissions.submit(applicant)
    assert r.status_code == 201, r.text
    return World(
        headers={
            "admin": await api.admin(),
            "student": student,
            "applicant": applicant,
            "anonymous": {},
        },
        existing={
            "term": [TERM, QUEUE_TERM],
            "section_id": ["CS101-01"],
            "round_code": [ROUND],
            "receipt_number": [r.json()["receipt_number"]],
            "question_id": [question_id],
            "document_id": [document_id],
        },
    )


def cases(operation: Operation, existing: dict[str, list[str]]) -> st.SearchStrategy[OperationCase]:
    """Generated cases, positive and negative; positive ones also aimed at the seeded
    objects, and sent with a valid body where one is known."""
    names = [p.name for p in operation.path_parameters if p.name in existing]
    # The product of no lists is one empty combination: no path parameters to fix.
    seeded = [
        dict(zip(names, values, strict=True))
        for values in itertools.product(*(existing[n] for n in names))
    ]
    # Hypothesis favours the first branches: the seeded ones go first.
    strategies = []
    body = VALID_BODIES.get(operation.label)
    for fixed in seeded:
        if body is not None:
            strategies.append(
                operation.as_strategy(
                    path_parameters=fixed, body=body, media_type="application/json"
                )
            )
        if names:
            strategies.append(operation.as_strategy(path_parameters=fixed))
    strategies += [
        operation.as_strategy(generation_mode=mode)
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    ]
    return st.one_of(strategies)


def as_httpx(case: OperationCase, headers: dict[str, str]) -> httpx.Request:
    """The request schemathesis would send, prepared by requests (JSON, forms, multipart)."""
    kwargs = case.as_transport_kwargs(base_url=BASE_URL, headers=headers)
    prepared = requests.Request(
        **{k: kwargs[k] for k in _REQUEST_ARGUMENTS if k in kwargs}
    ).prepare()
    return httpx.Request(
        str(prepared.method),
        str(prepared.url),
        headers={name: str(value) for name, value in prepared.headers.items()},
        content=prepared.body if isinstance(prepared.body, str | bytes) else None,
    )


def describe(request: httpx.Request, role: str, response: httpx.Response | None) -> str:
    body = request.content[:300].decode("utf-8", "replace")
    answer = "" if response is None else f"\n  -> {response.status_code} {response.text[:400]}"
    return f"as {role}: {request.method} {request.url}\n  body: {body!r}{answer}"


@pytest.mark.slow
def test_every_operation_conforms(settings: Settings, clock: FixedClock) -> None:
    app = create_app(settings, clock=clock)
    container = app.state.container
    findings = Findings()
    with own_event_loop() as runner:
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=EndStreams(app)), base_url=BASE_URL, timeout=10
        )
        api = Api(client)

        async def setup() -> World:
            await container.registry.ensure_admin("admin", "admin-password")
            return await seed(api, Admissions(api, container))

        world = runner.run(setup())
        schema = schemathesis.openapi.from_dict(app.openapi())
        operations = [
            result.ok() for result in schema.get_all_operations() if isinstance(result, Ok)
        ]
        assert len(operations) >= 40, "the OpenAPI document lost operations"

        def exercise(operation: Operation, role: str) -> Callable[[], None]:
            @examples(
                max_examples=EXAMPLES[role],
                derandomize=True,
                database=None,
                deadline=None,
                phases=[Phase.explicit, Phase.generate, Phase.shrink],
                suppress_health_check=list(HealthCheck),
            )
            @given(case=cases(operation, world.existing))
            def run(case: OperationCase) -> None:
                try:
                    request = as_httpx(case, world.headers[role])
                except (UnicodeEncodeError, ValueError, httpx.LocalProtocolError):
                    return  # no HTTP client could send it
                response: httpx.Response | None = None
                try:
                    response = runner.run(client.send(request))
                    client.cookies.clear()  # a session cookie would change who the next caller is
                    findings.statuses[operation.label][response.status_code] += 1
                    case.validate_response(response, checks=CHECKS, headers=dict(request.headers))
                except (Exception, BaseExceptionGroup) as exc:
                    findings.by_operation[f"{operation.label} as {role}"] = (
                        f"{describe(request, role, response)}\n  {exc}"
                    )
                    raise

            return run

        try:
            for operation, role in itertools.product(operations, EXAMPLES):
                try:
                    exercise(operation, role)()
                except (Exception, BaseExceptionGroup) as exc:  # recorded above, or hypothesis
                    findings.by_operation.setdefault(f"{operation.label} as {role}", repr(exc))
        finally:
            runner.run(client.aclose())
            runner.run(container.close())

    if findings.by_operation:
        pytest.fail(
            "\n\n".join(
                f"{label}\n{detail}" for label, detail in sorted(findings.by_operation.items())
            ),
            pytrace=False,
        )
    # The seeded objects and bodies take most operations past their refusals.
    succeeded = {
        label for label, counts in findings.statuses.items() if any(200 <= c < 300 for c in counts)
    }
    missed = sorted({operation.label for operation in operations} - succeeded)
    assert len(missed) <= len(operations) // 4, f"never a 2xx: {missed}"
