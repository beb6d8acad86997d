from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from rushgate.http.deps import ContainerDep
from rushgate.http.errors import problem

router = APIRouter(tags=["operators"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """Liveness: the process answers. Never touches a dependency."""
    return {"status": "ok"}


@router.get("/readyz", response_model=None)
async def readyz(request: Request, container: ContainerDep) -> dict[str, object] | Response:
    """Readiness: this node can serve traffic (database and Redis reachable, not shutting
    down)."""
    if getattr(request.app.state, "draining", False):
        return problem(503, "draining", "this node is shutting down")
    try:
        await container.storage.ping()
    except Exception as exc:  # any failure means "not ready"; the reason goes to the body
        return problem(503, "database_unavailable", f"database: {type(exc).__name__}")
    try:
        await container.coordination.ping()
    except Exception as exc:  # any failure means "not ready"; the reason goes to the body
        return problem(503, "coordination_unavailable", f"redis: {type(exc).__name__}")
    return {"status": "ready", "checks": {"database": "ok", "coordination": "ok"}}
