"""Typed dependencies: routes ask for what they need by name.

All are ``async def`` although none awaits: FastAPI runs plain ``def`` dependencies in a
thread pool, and three thread hops per request cost more than the work itself.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from rushgate.http.container import Container
from rushgate.http.errors import ApiError
from rushgate.services.ports import Principal

_bearer = HTTPBearer(auto_error=False, description="A token from POST /api/v1/auth/token")


async def _container(request: Request) -> Container:
    container: Container = request.app.state.container
    return container


ContainerDep = Annotated[Container, Depends(_container)]


async def _principal(
    container: ContainerDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise ApiError(
            401, "unauthorized", "a bearer token is required", {"WWW-Authenticate": "Bearer"}
        )
    return container.auth.authenticate(credentials.credentials)


async def _admin(principal: Annotated[Principal, Depends(_principal)]) -> Principal:
    if principal.role != "admin":
        raise ApiError(403, "forbidden", "this needs an admin")
    return principal


async def _student(principal: Annotated[Principal, Depends(_principal)]) -> Principal:
    if principal.role != "student" or principal.student_pk is None:
        raise ApiError(403, "forbidden", "this needs a student")
    return principal


CurrentUser = Annotated[Principal, Depends(_principal)]
AdminUser = Annotated[Principal, Depends(_admin)]
StudentUser = Annotated[Principal, Depends(_student)]
