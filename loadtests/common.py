"""What both scenarios share: command-line options, the round created at test start,
signing applicants up, checking answers, and an exact record of every request for the
summary written at the end.

Every answer outside the expected statuses is a failure named by its status and the
problem's machine ``code`` (``422 validation_failed``, ``404 not_found``,
``503 database_unavailable``, ``0 ConnectionRefusedError`` for no answer at all), so
Locust's failure table says what went wrong, not just that something did.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import gevent
import locust
import payloads
import setup_round
from locust import events
from locust.contrib.fasthttp import FastHttpUser
from locust.exception import StopUser
from locust.runners import MasterRunner
from summary import render, summarize

log = logging.getLogger("loadtests")

# Request names (Locust shows the method beside them); [round] stands for the round code.
SIGN_UP = "/api/v1/applicants (sign up)"
LOG_IN = "/api/v1/auth/token (log in)"


class Run:
    """This process's view of the current run (one per Locust process)."""

    scenario = ""
    headline: tuple[str, ...] = ()  # "METHOD name" of the requests the scenario is about
    headline_label = ""
    round_code = ""
    tracks: ClassVar[list[str]] = [t["code"] for t in setup_round.TRACKS]
    setup_error: str | None = None
    started_at = 0.0
    # name -> [(start unix time, response time ms, failed)]
    samples: ClassVar[dict[tuple[str, str], list[tuple[float, float, bool]]]] = defaultdict(list)
    errors: ClassVar[dict[tuple[str, str, str], int]] = defaultdict(int)
    extra: ClassVar[dict[str, Any]] = {}

    @classmethod
    def configure(cls, scenario: str, headline: tuple[str, ...], label: str) -> None:
        cls.scenario = scenario
        cls.headline = headline
        cls.headline_label = label


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    group = parser.add_argument_group("rushgate scenarios")
    group.add_argument(
        "--round-code",
        default="",
        help="use this existing admission round instead of creating a fresh one at start",
    )
    group.add_argument(
        "--think-time",
        type=float,
        default=1.0,
        help="mean pause in seconds between a user's iterations (uniform ±50%%; 0 for none)",
    )
    group.add_argument(
        "--barrier-timeout",
        type=float,
        default=45.0,
        help="questions: seconds after the start to release the post even if not every "
        "user is signed in by then",
    )
    group.add_argument(
        "--start-at",
        type=float,
        default=0.0,
        help="questions: post at this Unix time instead of when every user is ready "
        "(for several load generators)",
    )
    group.add_argument(
        "--summary-file",
        default="",
        help="write the end-of-run summary as JSON here (else it is printed)",
    )


def think(user: FastHttpUser) -> float:
    mean = max(0.0, float(user.environment.parsed_options.think_time))
    return random.uniform(0.5 * mean, 1.5 * mean)  # noqa: S311 - not for security


@events.test_start.add_listener
def _create_round(environment: Any, **_: Any) -> None:
    if isinstance(environment.runner, MasterRunner):
        return  # the workers each create (or are given) their round
    Run.started_at = time.time()
    Run.samples.clear()
    Run.errors.clear()
    options = environment.parsed_options
    try:
        Run.round_code = options.round_code or setup_round.create_round(environment.host)
    except setup_round.SetupError as exc:
        Run.setup_error = str(exc)
        log.error("setup failed, stopping: %s", exc)
        environment.process_exit_code = 1
        gevent.spawn_later(0.5, environment.runner.quit)
        return
    log.info("admission round %s on %s", Run.round_code, environment.host)


@events.request.add_listener
def _record(
    request_type: str,
    name: str,
    response_time: float,
    exception: BaseException | None,
    start_time: float | None = None,
    **_: Any,
) -> None:
    Run.samples[(request_type, name)].append(
        (start_time or time.time(), response_time or 0.0, exception is not None)
    )
    if exception is not None:
        Run.errors[(request_type, name, str(exception))] += 1


def problem(response: Any) -> str:
    """``<status> <code>`` for a failure: the problem's ``code`` when it is problem+json."""
    status = response.status_code
    if not status:
        error = getattr(response, "error", None)
        return f"0 {type(error).__name__ if error else 'no answer'}"
    try:
        body = response.json()
    except Exception:  # any undecodable body is reported as such
        return f"{status} non_json_response"
    if isinstance(body, dict) and isinstance(body.get("code"), str):
        return f"{status} {body['code']}"
    if isinstance(body, dict) and body.get("detail") == "Not Found":
        return f"{status} no_such_route"
    return f"{status} no_problem_code"


def expect(response: Any, *statuses: int) -> dict[str, Any] | None:
    """Inside ``with client.x(..., catch_response=True) as response``: success and the
    JSON body for an expected status, else a failure named by the problem code."""
    if response.status_code in statuses:
        try:
            body = response.json() if response.content else {}
        except ValueError:
            response.failure(f"{response.status_code} non_json_response")
            return None
        response.success()
        return body if isinstance(body, dict) else {"items": body}
    response.failure(problem(response))
    return None


class Applicant(FastHttpUser):
    """Signs up with a fresh email and logs in with it (``on_start``)."""

    abstract = True
    network_timeout = 60.0
    connection_timeout = 30.0

    token = ""
    name = ""
    rng: random.Random

    def on_start(self) -> None:
        if Run.setup_error is not None or not Run.round_code:
            raise StopUser
        self.rng = random.Random()  # noqa: S311 - test data only
        self.name = payloads.korean_name(self.rng)
        email = payloads.unique_email(Run.round_code)
        password = payloads.password()
        with self.client.post(
            "/api/v1/applicants",
            json={"email": email, "password": password, "name": self.name, "locale": "ko"},
            name=SIGN_UP,
            catch_response=True,
        ) as response:
            if expect(response, 201) is None:
                self.signed_in(False)
                raise StopUser
        with self.client.post(
            "/api/v1/auth/token",
            json={"username": email, "password": password},
            name=LOG_IN,
            catch_response=True,
        ) as response:
            body = expect(response, 200)
            if body is None or "access_token" not in body:
                self.signed_in(False)
                raise StopUser
        self.token = str(body["access_token"])
        self.signed_in(True)

    def signed_in(self, ok: bool) -> None:
        """Hook for scenarios that wait for everyone (the Q&A burst)."""

    @property
    def auth(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token}"}


# --------------------------------------------------------------------------- summary


def build_summary(environment: Any) -> dict[str, Any]:
    options = environment.parsed_options
    runner = environment.runner
    rows = [
        summarize(f"{method} {name}", s)
        for (method, name), s in sorted(Run.samples.items(), key=lambda kv: min(kv[1])[0])
    ]
    headline = [
        s
        for (method, name), v in Run.samples.items()
        if f"{method} {name}" in Run.headline
        for s in v
    ]
    everything = [s for v in Run.samples.values() for s in v]
    return {
        "scenario": Run.scenario,
        "host": environment.host,
        "round": Run.round_code,
        "setup_error": Run.setup_error,
        "started_at": datetime.fromtimestamp(Run.started_at or time.time(), UTC).isoformat(),
        "users": getattr(options, "num_users", None),
        "spawn_rate": getattr(options, "spawn_rate", None),
        "run_time": getattr(options, "run_time", None),
        "think_time_s": options.think_time,
        "locust": locust.__version__,
        "load_generator_cpu_over_90pct": bool(getattr(runner, "cpu_warning_emitted", False)),
        "headline_names": list(Run.headline),
        "headline": summarize(f"= {Run.headline_label}", headline),
        "all": summarize("all requests", everything),
        "rows": rows,
        "errors": [
            {"method": m, "name": n, "error": e, "occurrences": c}
            for (m, n, e), c in sorted(Run.errors.items(), key=lambda kv: -kv[1])
        ],
        **Run.extra,
    }


@events.quitting.add_listener
def _write_summary(environment: Any, **_: Any) -> None:
    if isinstance(environment.runner, MasterRunner):
        return
    summary = build_summary(environment)
    target = environment.parsed_options.summary_file
    if target:
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        Path(target).write_text(json.dumps(summary, ensure_ascii=False, indent=2))
    else:
        print(render(summary))
