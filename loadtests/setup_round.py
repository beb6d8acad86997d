"""Create a fresh admission round for one load-test run, through the admin API.

Used by the locustfiles' ``test_start`` hook; also runnable on its own, e.g. to create
the round once before a distributed run and pass its code to every worker:

    .venv/bin/python loadtests/setup_round.py http://127.0.0.1:8000
    # prints the round code, e.g. lt-20261021-101500-3f9a1c

Admin credentials, first found wins:

1. ``RUSHGATE_ADMIN_USERNAME`` and ``RUSHGATE_ADMIN_PASSWORD``;
2. ``RUSHGATE_ADMIN_PASSWORD_FILE`` (e.g. ``rushgate cluster``'s ``--dir``/``admin-password``),
   user ``RUSHGATE_ADMIN_USERNAME`` or ``admin``;
3. the embedded default's ``demo-admin-password`` in ``RUSHGATE_DATA_DIR``
   (default ``./.rushgate``), user ``admin``.

Only the standard library: it runs without Locust installed.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

# Two tracks like a small high school's: 74 places in all (seed 000's school).
TRACKS = [
    {"code": "general", "name": "일반전형", "capacity": 60},
    {"code": "special", "name": "특별전형", "capacity": 14},
]


class SetupError(RuntimeError):
    pass


def admin_credentials() -> tuple[str, str]:
    user = os.environ.get("RUSHGATE_ADMIN_USERNAME") or "admin"
    password = os.environ.get("RUSHGATE_ADMIN_PASSWORD")
    if password:
        return user, password
    candidates = []
    if os.environ.get("RUSHGATE_ADMIN_PASSWORD_FILE"):
        candidates.append(Path(os.environ["RUSHGATE_ADMIN_PASSWORD_FILE"]))
    data_dir = Path(os.environ.get("RUSHGATE_DATA_DIR") or ".rushgate")
    candidates.append(data_dir / "demo-admin-password")
    for path in candidates:
        if path.is_file():
            return user, path.read_text().strip()
    raise SetupError(
        "no admin credentials: set RUSHGATE_ADMIN_USERNAME and RUSHGATE_ADMIN_PASSWORD, "
        "RUSHGATE_ADMIN_PASSWORD_FILE, or RUSHGATE_DATA_DIR (the embedded default's data "
        f"dir, holding demo-admin-password; looked in {', '.join(map(str, candidates))})"
    )


def _call(
    url: str, body: object, token: str | None = None, timeout: float = 30.0
) -> tuple[int, dict]:
    headers = {"content-type": "application/json", "accept": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    request = urllib.request.Request(  # noqa: S310 - the URL is the operator's --host
        url, data=json.dumps(body).encode(), headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return exc.code, json.loads(raw)
        except ValueError:
            return exc.code, {"code": "non_json_response", "detail": raw[:200].decode("replace")}
    except OSError as exc:
        raise SetupError(f"cannot reach {url}: {exc}") from exc


def admin_token(host: str) -> str:
    user, password = admin_credentials()
    status, body = _call(
        f"{host.rstrip('/')}/api/v1/auth/token", {"username": user, "password": password}
    )
    if status != 200:
        raise SetupError(f"admin login as {user!r} failed: {status} {body.get('code')}")
    return str(body["access_token"])


def new_round_code() -> str:
    now = datetime.now(UTC)
    return f"lt-{now:%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


def round_body(code: str, now: datetime) -> dict[str, object]:
    """A round open from an hour before ``now`` until a day after it."""
    now = now.replace(microsecond=0)
    return {
        "code": code,
        "name": f"부하 시험 {code}",
        "opens_at": (now - timedelta(hours=1)).isoformat(),
        "closes_at": (now + timedelta(days=1)).isoformat(),
        "tracks": TRACKS,
        "required_documents": [],
        "receipt_prefix": f"LT-{secrets.token_hex(3).upper()}",
    }


def create_round(host: str, code: str | None = None) -> str:
    """Create a round open now and until tomorrow; return its code."""
    code = code or new_round_code()
    status, answer = _call(
        f"{host.rstrip('/')}/api/v1/admin/admissions",
        round_body(code, datetime.now(UTC)),
        token=admin_token(host),
    )
    if status != 201:
        raise SetupError(
            f"creating round {code!r} failed: {status} {answer.get('code')}: {answer.get('detail')}"
        )
    return code


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0].startswith("-"):
        print("usage: setup_round.py URL    (prints the new round's code)", file=sys.stderr)
        return 2
    try:
        print(create_round(argv[0]))
    except SetupError as exc:
        print(f"setup_round: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
