"""Scenario 2, seed 000's "2,000 users register a Q&A post at once".

Every simulated applicant signs up and logs in, then waits at a barrier. Once every user
has been spawned and has either signed in or failed to (or ``--barrier-timeout`` seconds
after the start, whichever comes first; or at ``--start-at``, a Unix time, to line up
several load generators), the barrier opens and all of them post
``POST …/questions {"title","body","public": true}`` at once. Afterwards each reads the
board (``GET …/questions``) right away and then every ``--think-time`` seconds (the
runner's default for this scenario is 30) until the run ends.

    .venv/bin/locust -f loadtests/questions.py --headless -u 2000 -r 100 -t 60s \\
        --host http://127.0.0.1:8000

or ``loadtests/run questions http://127.0.0.1:8000``. The summary's headline is the
burst of posts; it also says how many users were ready at the release, how long after
it the last post was sent (one Locust process sends them one after another), and how
long the whole burst took until the last answer.

At start the service's OpenAPI schema is checked for the questions route: without it the
run stops at once instead of measuring 2,000 ``404``.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.request
from typing import Any, ClassVar

import gevent
import gevent.event
import payloads
from common import Applicant, Run, expect, think
from locust import events, task
from locust.runners import MasterRunner

QUESTIONS = "/api/v1/admissions/[round]/questions"
BURST = f"{QUESTIONS} (at once)"

Run.configure("questions", headline=(f"POST {BURST}",), label="scenario: the posts at once")

log = logging.getLogger("loadtests")


class Barrier:
    event = gevent.event.Event()
    ready = 0
    failed = 0
    released_at = 0.0
    released_with = 0
    reason = ""
    posts_sent: ClassVar[list[float]] = []
    posts_done: ClassVar[list[float]] = []

    @classmethod
    def reset(cls) -> None:
        cls.event = gevent.event.Event()
        cls.ready = cls.failed = cls.released_with = 0
        cls.released_at = 0.0
        cls.reason = ""
        cls.posts_sent = []
        cls.posts_done = []

    @classmethod
    def release(cls, reason: str) -> None:
        if cls.event.is_set():
            return
        cls.released_at = time.time()
        cls.released_with = cls.ready
        cls.reason = reason
        log.info(
            "barrier open (%s): %d users ready, %d failed to sign in", reason, cls.ready, cls.failed
        )
        cls.event.set()


def _route_exists(host: str) -> bool:
    try:
        with urllib.request.urlopen(f"{host.rstrip('/')}/openapi.json", timeout=30) as r:  # noqa: S310
            paths = json.loads(r.read()).get("paths", {})
    except (OSError, ValueError) as exc:
        log.warning("could not read %s/openapi.json (%s); going ahead", host, exc)
        return True
    return any(
        p.startswith("/api/v1/admissions/{") and p.endswith("}/questions") and "post" in ops
        for p, ops in paths.items()
    )


@events.test_start.add_listener
def _arm(environment: Any, **_: Any) -> None:
    if isinstance(environment.runner, MasterRunner):
        return
    Barrier.reset()
    Run.extra["barrier"] = {}
    if not _route_exists(environment.host):
        Run.setup_error = "the service has no POST /api/v1/admissions/{round}/questions"
        log.error("%s; stopping", Run.setup_error)
        environment.process_exit_code = 1
        gevent.spawn_later(0.5, environment.runner.quit)
        return
    options = environment.parsed_options
    if options.start_at:
        gevent.spawn_later(max(0.0, options.start_at - time.time()), Barrier.release, "start-at")
    else:
        gevent.spawn_later(options.barrier_timeout, Barrier.release, "timeout")


@events.spawning_complete.add_listener
def _spawned(**_: Any) -> None:
    _check_everyone_ready()


_ENV: dict[str, Any] = {}


@events.init.add_listener
def _remember(environment: Any, **_: Any) -> None:
    _ENV["environment"] = environment


def _check_everyone_ready() -> None:
    environment = _ENV.get("environment")
    if environment is None or environment.runner is None or environment.parsed_options.start_at:
        return
    runner = environment.runner
    target = runner.target_user_count
    if target and Barrier.ready + Barrier.failed >= target and runner.user_count >= target:
        Barrier.release("everyone ready")


@events.test_stop.add_listener
def _report(environment: Any, **_: Any) -> None:
    if isinstance(environment.runner, MasterRunner):
        return
    sent = sorted(Barrier.posts_sent)
    done = sorted(Barrier.posts_done)
    start = Barrier.released_at
    Run.extra["barrier"] = {
        "released": Barrier.reason or "never",
        "ready_at_release": Barrier.released_with,
        "signed_in": Barrier.ready,
        "failed_to_sign_in": Barrier.failed,
        "posts": len(sent),
        "posts_unanswered_at_end": len(sent) - len(done),
        "last_post_sent_after_release_s": (sent[-1] - start) if sent and start else None,
        "median_post_sent_after_release_s": (sent[len(sent) // 2] - start)
        if sent and start
        else None,
        "burst_duration_s": (done[-1] - start) if done and start else None,
    }


class PostAtOnce(Applicant):
    posted = False

    def wait_time(self) -> float:
        return think(self)

    def signed_in(self, ok: bool) -> None:
        if ok:
            Barrier.ready += 1
        else:
            Barrier.failed += 1
        _check_everyone_ready()

    @task
    def post_then_read(self) -> None:
        if not self.posted:
            self.posted = True
            Barrier.event.wait()
            body = payloads.question(self.rng)
            Barrier.posts_sent.append(time.time())
            with self.client.post(
                f"/api/v1/admissions/{Run.round_code}/questions",
                json=body,
                headers=self.auth,
                name=BURST,
                catch_response=True,
            ) as response:
                expect(response, 201)
            Barrier.posts_done.append(time.time())
        with self.client.get(
            f"/api/v1/admissions/{Run.round_code}/questions",
            headers=self.auth,
            name=QUESTIONS,
            catch_response=True,
        ) as response:
            expect(response, 200)
