"""Unhandled errors reported to Sentry, when the operator gives a DSN.

The SDK is told to keep personal data home (its ``data_collection`` option): no request
bodies, cookies, user or IP address, query strings or SQL parameters, only a few plain
request headers, and no local variables of the failing frames (they hold students' and
applicants' records). Email addresses and long numbers in exception messages are masked.
What remains is the exception, its stack, the route, the node, the release and the
request id — enough to find the full story in the logs.

Errors reach Sentry through its logging integration: every unhandled error is logged at
ERROR with its traceback (``http.middleware.Observe``, the workers), so a log record is
the one path that both the logs and Sentry see.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import sentry_sdk
from sentry_sdk.integrations.logging import LoggingIntegration
from sentry_sdk.types import Event, Hint

from rushgate.observability.logging import request_id

# Request headers worth having in a report; no others are collected.
_SAFE_HEADERS = ("host", "user-agent", "content-type", "content-length", "accept", "x-request-id")
# Dropped again before sending, whatever the SDK version collected.
_PRIVATE_HEADERS = frozenset(
    {"authorization", "cookie", "x-forwarded-for", "x-real-ip", "forwarded", "cf-connecting-ip"}
)


_EMAIL = re.compile(r"[^\s@'\"()<>,;:]+@[^\s@'\"()<>,;:]+")
# Phone numbers, birth dates, student numbers: runs of 7 or more digits (separators allowed).
_NUMBER = re.compile(r"\d(?:[\d\- ]{5,}\d)")


def redact(text: str) -> str:
    """``text`` with email addresses and long numbers replaced by placeholders."""
    return _NUMBER.sub("[number]", _EMAIL.sub("[email]", text))


def init_sentry(
    dsn: str,
    *,
    release: str,
    environment: str,
    node: str,
    traces_sample_rate: float = 0.0,
) -> None:
    """Start reporting to Sentry from this process."""
    sentry_sdk.init(
        dsn=dsn,
        release=f"rushgate@{release}",
        environment=environment,
        server_name=node,
        data_collection={
            "user_info": False,
            "cookies": {"mode": "off"},
            "http_headers": {"request": {"mode": "allowlist", "terms": list(_SAFE_HEADERS)}},
            "http_bodies": [],
            "url_query_params": {"mode": "off"},
            "database_query_data": False,
            "stack_frame_variables": False,
        },
        max_request_body_size="never",
        traces_sample_rate=traces_sample_rate,
        before_send=_scrub,
        integrations=[LoggingIntegration(event_level=logging.ERROR)],
    )


def _scrub(event: Event, _: Hint) -> Event | None:
    raw: dict[str, Any] = event  # type: ignore[assignment]
    request = raw.get("request")
    if isinstance(request, dict):
        request.pop("query_string", None)
        request.pop("cookies", None)
        request.pop("data", None)
        url = request.get("url")
        if isinstance(url, str):
            request["url"] = url.split("?", 1)[0]
        headers = request.get("headers")
        if isinstance(headers, dict):
            request["headers"] = {
                k: v for k, v in headers.items() if k.lower() not in _PRIVATE_HEADERS
            }
    raw.pop("user", None)
    # Messages may quote what a user typed (a database error names the duplicate email).
    for exception in (raw.get("exception") or {}).get("values") or ():
        if isinstance(exception.get("value"), str):
            exception["value"] = redact(exception["value"])
    entry = raw.get("logentry")
    if isinstance(entry, dict):
        for key in ("message", "formatted"):
            if isinstance(entry.get(key), str):
                entry[key] = redact(entry[key])
        entry.pop("params", None)
    for crumb in (raw.get("breadcrumbs") or {}).get("values") or ():
        if isinstance(crumb.get("message"), str):
            crumb["message"] = redact(crumb["message"])
        crumb.pop("data", None)
    current = request_id.get()
    if current is not None:
        raw.setdefault("tags", {})["request_id"] = current
    return event


def close_sentry(timeout: float = 2.0) -> None:
    """Send what is queued, then stop (at process exit)."""
    client = sentry_sdk.get_client()
    if client.is_active():
        client.close(timeout=timeout)
