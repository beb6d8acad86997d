"""Scenario 1, seed 000's "500 users update and read their information".

Each simulated applicant signs up with a fresh email, logs in with it, then loops: save
the application (``PUT …/application``, every field different each time, as the seed's
k6 script randomised its payload) and read it back (``GET …/application``), pausing
``--think-time`` seconds (default 1, ±50 %) between iterations.

The read must show at least the version just saved: an older one is a failure named
``stale read`` (it would mean a read went to a lagging replica).

    .venv/bin/locust -f loadtests/applicants.py --headless -u 500 -r 100 -t 30s \\
        --host http://127.0.0.1:8000

or ``loadtests/run applicants http://127.0.0.1:8000``. The summary's headline is the
PUT and GET together; sign-up and log-in are reported on their own rows.
"""

from __future__ import annotations

import payloads
from common import Applicant, Run, expect, think
from locust import task

APPLICATION = "/api/v1/admissions/[round]/application"

Run.configure(
    "applicants",
    headline=(f"PUT {APPLICATION}", f"GET {APPLICATION}"),
    label="scenario: PUT and GET application",
)


class UpdateAndRead(Applicant):
    version = 0

    def wait_time(self) -> float:
        return think(self)

    @task
    def save_then_read(self) -> None:
        path = f"/api/v1/admissions/{Run.round_code}/application"
        body = payloads.application(self.rng, Run.tracks, self.name)
        with self.client.put(
            path, json=body, headers=self.auth, name=APPLICATION, catch_response=True
        ) as response:
            saved = expect(response, 200, 201)
        if saved is None:
            return
        self.version = int(saved.get("version", 0))
        with self.client.get(
            path, headers=self.auth, name=APPLICATION, catch_response=True
        ) as response:
            read = expect(response, 200)
            if read is not None and int(read.get("version", 0)) < self.version:
                response.failure(f"stale read: version {read.get('version')} < {self.version}")
