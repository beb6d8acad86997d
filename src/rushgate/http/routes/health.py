from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import Response

from rushgate.http.deps import ContainerDep
from rushgate.http.errors import problem
from rushgate.observability import metrics

router = APIRouter(tags=["operators"])

# A replica that does not answer this fast is reported, never waited for.
REPLICA_CHECK_SECONDS = 1.0


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
    checks: dict[str, object] = {"database": "ok", "coordination": "ok"}
    try:
        async with asyncio.timeout(REPLICA_CHECK_SECONDS):
            lag = await container.storage.replica_lag_seconds()
    except Exception as exc:  # reads fall back to the primary: not a reason to be unready
        checks["replica"] = f"unreachable: {type(exc).__name__}"
    else:
        if lag is not None:
            checks["replica"] = {"lag_seconds": round(lag, 3)}
    return {"status": "ready", "checks": checks}


@router.get("/metrics", response_class=Response)
async def prometheus_metrics(request: Request, container: ContainerDep) -> Response:
    """Prometheus metrics of this node (text exposition format): all its worker
    processes together when it runs several."""
    await container.node_gauges.refresh()
    body = await asyncio.to_thread(metrics.render, request.app.state.metrics_registry)
    return Response(body, media_type=metrics.CONTENT_TYPE)
