"""Every error leaves as RFC 9457 ``application/problem+json`` with a machine ``code``."""

from __future__ import annotations

import json
import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from rushgate.domain import errors as domain
from rushgate.services.ports.storage import Storage

log = logging.getLogger("rushgate.http")

PROBLEM_JSON = "application/problem+json"

# How long a client should wait before retrying when a dependency is down (seconds).
RETRY_AFTER = "2"

# Domain error -> HTTP status. The domain never knows these numbers.
_STATUS: dict[type[domain.DomainError], int] = {
    domain.NotFound: 404,
    domain.Conflict: 409,
    domain.InvalidRequest: 422,
    domain.WindowClosed: 403,
    domain.SectionFull: 409,
    domain.WaitlistFull: 409,
    domain.AlreadyEnrolled: 409,
    domain.TimeConflict: 409,
    domain.CreditLimit: 409,
    domain.IdempotencyKeyReused: 422,
    domain.InvalidCredentials: 401,
    domain.Forbidden: 403,
    domain.NotAdmitted: 403,
    domain.NotInQueue: 404,
    domain.Unavailable: 503,
    domain.InvalidTransition: 409,
    domain.ValidationFailed: 422,
    domain.EmailUnverified: 403,
    domain.UnsupportedDocument: 415,
    domain.DocumentTooLarge: 413,
    domain.RateLimited: 429,
    domain.ChallengeRequired: 403,
    domain.ChallengeFailed: 403,
    domain.CountryNotAllowed: 403,
}

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def problem(
    status: int,
    code: str,
    detail: str,
    *,
    title: str | None = None,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> Response:
    body: dict[str, Any] = {
        "type": f"https://rushgate.dev/problems/{code}",
        "title": title or code.replace("_", " ").capitalize(),
        "status": status,
        "code": code,
        "detail": detail,
    }
    # Context never overwrites the RFC 9457 members.
    body.update({k: v for k, v in (extra or {}).items() if v is not None and k not in body})
    # json.dumps first: most problems carry only strings and numbers, and a refusal of a
    # full section is a hot path; anything else goes through FastAPI's encoder.
    try:
        content = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    except TypeError:
        content = json.dumps(jsonable_encoder(body), ensure_ascii=False, separators=(",", ":"))
    return Response(content, status, headers, PROBLEM_JSON)


class ApiError(Exception):
    """An HTTP-level refusal raised by the web layer itself (auth, headers)."""

    def __init__(
        self, status: int, code: str, detail: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail, self.headers = status, code, detail, headers


def retry_after_header(seconds: float) -> str:
    """``Retry-After`` in whole seconds, rounded up and at least 1 (0 would invite an
    immediate retry that is refused again)."""
    return str(max(1, math.ceil(seconds)))


def status_for(error: domain.DomainError) -> int:
    for kind in type(error).__mro__:
        if kind in _STATUS:
            return _STATUS[kind]
    return 400


def domain_problem(exc: domain.DomainError) -> Response:
    """The answer to a refusal of the rules (also used by middleware, which runs outside
    the app's exception handlers)."""
    headers = None
    if exc.code == "invalid_credentials":
        headers = {"WWW-Authenticate": "Bearer"}
    elif isinstance(exc, domain.Unavailable):
        headers = {"Retry-After": RETRY_AFTER}
    elif isinstance(exc, domain.RateLimited):
        headers = {"Retry-After": retry_after_header(exc.retry_after)}
    return problem(status_for(exc), exc.code, exc.detail, headers=headers, extra=exc.context)


def install(app: FastAPI, storage: Storage) -> None:
    @app.exception_handler(domain.DomainError)
    async def _domain(_: Request, exc: domain.DomainError) -> Response:
        return domain_problem(exc)

    async def _storage(request: Request, exc: Exception) -> Response:
        if not storage.is_outage(exc):
            return _internal_error(request)
        # A critical event (told in chat, deduplicated): every request fails alike.
        log.warning(
            "the database is unavailable",
            extra={"notify": True, "method": request.method, "reason": repr(exc)},
        )
        return problem(
            503,
            "database_unavailable",
            "the database cannot be reached right now; retry shortly",
            headers={"Retry-After": RETRY_AFTER},
        )

    # Handled here, not by the catch-all below: that one lets the error go on to the
    # server, which then drops the client's connection (nginx counts that against the
    # node).
    for kind in storage.outage_errors:
        app.add_exception_handler(kind, _storage)

    @app.exception_handler(ApiError)
    async def _api(_: Request, exc: ApiError) -> Response:
        return problem(exc.status, exc.code, exc.detail, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> Response:
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            return problem(400, "malformed_json", "the request body is not valid JSON")
        return problem(
            422,
            "validation_error",
            "the request does not match the schema",
            extra={
                "errors": [
                    {"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")}
                    for e in errors[:100]
                ]
            },
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> Response:
        if isinstance(exc.__cause__, UnicodeDecodeError):
            # FastAPI reports a JSON body that is not UTF-8 as a generic parsing error.
            return problem(400, "malformed_json", "the request body is not valid JSON")
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        return problem(
            exc.status_code, code, str(exc.detail), headers=dict(exc.headers or {}) or None
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        return _internal_error(request)


def _internal_error(request: Request) -> Response:
    """Called while the error is being handled, so the log carries its traceback."""
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem(500, "internal_error", "an unexpected error occurred; it was logged")
