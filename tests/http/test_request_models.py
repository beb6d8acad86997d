"""No mass assignment: every request body, and every object nested in one, refuses
fields it does not declare, so a client cannot set what the API never offered."""

from __future__ import annotations

import types
import typing
from collections.abc import Iterator, Sequence
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.routing import BaseRoute

from tests.http.api import Api, assert_problem, term_json


@pytest.fixture
def backend() -> str:
    """Schemas do not depend on the database engine: SQLite only."""
    return "sqlite"


def models_in(annotation: Any) -> Iterator[type[BaseModel]]:
    """Every pydantic model an annotation holds (in lists, unions, Annotated, ...)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
        for field in annotation.model_fields.values():
            yield from models_in(field.annotation)
        return
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is not None:
        for arg in typing.get_args(annotation):
            yield from models_in(arg)


def api_routes(routes: Sequence[BaseRoute]) -> Iterator[APIRoute]:
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        # An included router (FastAPI resolves them lazily): its own routes.
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from api_routes(included.routes)


def request_models(app: FastAPI) -> dict[type[BaseModel], str]:
    """Each model a route reads from a body, with one route that reads it."""
    found: dict[type[BaseModel], str] = {}
    for route in api_routes(app.routes):
        for param in route.dependant.body_params:
            for model in models_in(param.field_info.annotation):
                found.setdefault(model, f"{sorted(route.methods or ())} {route.path}")
    return found


def test_every_request_model_forbids_extra_fields(app: FastAPI) -> None:
    models = request_models(app)
    # The walk finds what it should: bodies, their list items and their nested objects.
    names = {m.__name__ for m in models}
    assert {"TokenRequest", "TermCreate", "WaitingRoomSettings", "SectionCreate"} <= names
    assert {"MeetingIn", "StudentCreate", "SignUp", "ApplicationIn", "PersonalIn"} <= names
    lax = {
        m.__name__: where for m, where in models.items() if m.model_config.get("extra") != "forbid"
    }
    assert lax == {}


def schemas_of_bodies(doc: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every object schema reachable from a request body in the OpenAPI document."""
    components = doc["components"]["schemas"]
    seen: set[str] = set()

    def walk(node: Any, where: str) -> Iterator[tuple[str, dict[str, Any]]]:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                name = ref.rsplit("/", 1)[-1]
                if name not in seen:
                    seen.add(name)
                    yield from walk(components[name], name)
                return
            if node.get("type") == "object" and "properties" in node:
                yield where, node
            for value in node.values():
                yield from walk(value, where)
        elif isinstance(node, list):
            for value in node:
                yield from walk(value, where)

    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            body = operation.get("requestBody")
            if body is not None:
                yield from walk(body, f"{method} {path}")


async def test_the_openapi_document_says_so(client: httpx.AsyncClient) -> None:
    doc = (await client.get("/openapi.json")).json()
    objects = list(schemas_of_bodies(doc))
    assert len(objects) >= 10
    open_ones = [
        where for where, schema in objects if schema.get("additionalProperties") is not False
    ]
    assert open_ones == []


async def test_an_extra_field_is_refused_not_ignored(api: Api) -> None:
    """What the checks above mean on the wire, at the top level and nested."""
    r = await api.create_term(term_json(id=1))
    assert_problem(r, 422, "validation_error")
    r = await api.create_term(term_json(waiting_room={"enabled": False, "paused": True}))
    assert_problem(r, 422, "validation_error")
    r = await api.client.post(
        "/api/v1/applicants",
        json={
            "email": "a@example.test",
            "password": "long enough pw",
            "name": "a",
            "role": "admin",
        },
    )
    assert_problem(r, 422, "validation_error")
