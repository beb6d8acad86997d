"""Random JSON (and random bytes) posted to the enroll endpoint never makes a 500."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rushgate.config import Settings
from rushgate.domain.clock import FixedClock
from rushgate.http.app import create_app
from tests.http.api import TERM, Api, assert_not_server_error, section_json, student_json, term_json
from tests.support import own_event_loop

ENROLL = f"/api/v1/terms/{TERM}/enrollments"

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=80),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=20), children, max_size=5)
    ),
    max_leaves=20,
)
section_ids = st.sampled_from(["CS101-01", "ART100-01", "NOPE-01"]) | st.text(max_size=70)
enroll_bodies = (
    st.fixed_dictionaries({"section_id": section_ids})
    | st.fixed_dictionaries({"section_id": section_ids}, optional={"extra": json_values})
    | json_values
)
EXPECTED = {
    (201, None),
    (400, "malformed_json"),
    (400, "invalid_idempotency_key"),
    (422, "validation_error"),
    (422, "idempotency_key_reused"),
}
keys = st.none() | st.text(st.characters(codec="latin-1"), max_size=300)


@pytest.mark.slow
def test_enroll_fuzz(settings: Settings, clock: FixedClock, backend: str) -> None:
    app = create_app(settings, clock=clock)
    container = app.state.container
    with own_event_loop() as runner:
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://rushgate.test"
        )
        api = Api(client)

        async def setup() -> dict[str, str]:
            await container.registry.ensure_admin("admin", "admin-password")
            assert (await api.create_term(term_json())).status_code == 201
            sections = [section_json("CS101-01", capacity=1), section_json("ART100-01")]
            assert (await api.create_sections(sections)).status_code == 201
            assert (await api.create_students([student_json("s1")])).status_code == 201
            return await api.headers("s1")

        headers = runner.run(setup())

        async def post(body: Any, raw: bytes | None, key: str | None) -> httpx.Response:
            extra = {"Idempotency-Key": key} if key is not None else {}
            if raw is not None:
                extra["Content-Type"] = "application/json"
                return await client.post(ENROLL, content=raw, headers={**headers, **extra})
            return await client.post(ENROLL, json=body, headers={**headers, **extra})

        @settings_for(backend)
        @given(body=enroll_bodies, raw=st.none() | st.binary(max_size=200), key=keys)
        def check(body: Any, raw: bytes | None, key: str | None) -> None:
            try:
                response = runner.run(post(body, raw, key))
            except (httpx.LocalProtocolError, UnicodeEncodeError):
                return  # httpx refuses to send such a header at all
            assert_not_server_error(response)
            code = response.json().get("code") if response.status_code >= 400 else None
            assert (response.status_code, code) in EXPECTED or response.status_code in (404, 409)

        try:
            check()
        finally:
            runner.run(client.aclose())
            runner.run(container.close())


def settings_for(backend: str) -> settings:
    return settings(
        max_examples=150 if backend == "sqlite" else 60,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )


def test_own_event_loop_leaves_the_current_loop_alone() -> None:
    with own_event_loop() as runner:
        assert runner.run(asyncio.sleep(0, result=1)) == 1
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()
