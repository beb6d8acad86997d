"""The refusals every operation may answer, declared in the OpenAPI document beside the
responses each route documents itself, and every error declared as what it is: an
RFC 9457 ``application/problem+json`` (FastAPI documents its 422 as plain JSON in a
shape this service never sends)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from rushgate.http.errors import PROBLEM_JSON
from rushgate.http.limits import GUARDED_ROUTES

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "type": "object",
    "description": "An RFC 9457 problem; ``code`` is the machine-readable reason.",
    "required": ["type", "title", "status", "code", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "code": {"type": "string"},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "description": "validation_error: what did not match the schema, and where",
            "items": {"type": "object"},
        },
    },
    "additionalProperties": True,
}

_PROBLEM_CONTENT = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}

_AUTHENTICATED = {
    "401": "unauthorized: no valid bearer token or session cookie",
    "403": "forbidden: the token's role may not call this; csrf_failed: a session-cookie "
    "request that changes something without the session's X-CSRF-Token, or from another "
    "site's Origin",
}
_WITH_BODY = {
    "400": "malformed_json: the body is not JSON",
    "413": "payload_too_large",
}
_WITH_PATH = {"404": "not_found"}
_STORED = {"503": "database_unavailable: retry after Retry-After seconds"}
_RATE_LIMITED = {"429": "rate_limited: over this route's budget; retry after Retry-After seconds"}
_COUNTRY = {"403": "country_not_allowed: not open to connections from this country"}


def document_problems(app: FastAPI) -> None:
    """Extend the app's OpenAPI document (built once, then cached by the app)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        schema = build()
        schemas = schema.setdefault("components", {}).setdefault("schemas", {})
        if "Problem" not in schemas:
            schemas["Problem"] = PROBLEM_SCHEMA
            for path, operations in schema["paths"].items():
                for method, operation in operations.items():
                    _declare(method, path, operation)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _declare(method: str, path: str, operation: dict[str, Any]) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    common: list[dict[str, str]] = []
    guarded = GUARDED_ROUTES.get((method.upper(), path))
    if guarded is not None and guarded.budget is not None:
        common.append(_RATE_LIMITED)
    if guarded is not None and guarded.country:
        common.append(_COUNTRY)
    if "security" in operation:
        common.append(_AUTHENTICATED)
    if "requestBody" in operation:
        common.append(_WITH_BODY)
    if any(p.get("in") == "path" for p in operation.get("parameters", [])):
        common.append(_WITH_PATH)
    if path.startswith("/api/"):
        common.append(_STORED)
    for status, description in ((s, d) for reasons in common for s, d in reasons.items()):
        documented = responses.setdefault(status, {"description": description})
        # A route's own words come first; a common reason is added when missing.
        code = description.partition(":")[0]
        if code not in documented.get("description", ""):
            documented["description"] = f"{documented['description']}; {description}"
    for status, response in responses.items():
        if status[0] in "45":
            response["content"] = _PROBLEM_CONTENT
