"""Bot challenges as clients see them: what to solve, and how to send the answer.

A client asks ``GET /api/v1/challenge?action=…`` (or takes the spec from a
``403 challenge_required`` problem), solves it, and repeats the request with the answer
in the ``X-Rushgate-Challenge`` header (login also takes a ``challenge`` body field)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from rushgate.http.client import client_ip
from rushgate.http.deps import ContainerDep
from rushgate.services.challenge import ChallengeGate
from rushgate.services.ports.challenge import ChallengeAction

router = APIRouter(prefix="/api/v1", tags=["challenge"])

#: The header that carries a solved bot challenge (a CAPTCHA token or a proof of work).
CHALLENGE_HEADER = "X-Rushgate-Challenge"

#: The answer header, for routes that read it from the request themselves.
CHALLENGE_PARAMETER: dict[str, Any] = {
    "parameters": [
        {
            "name": CHALLENGE_HEADER,
            "in": "header",
            "required": False,
            "description": "A solved bot challenge (see GET /api/v1/challenge), when the "
            "site asks for one.",
            "schema": {"type": "string", "maxLength": 4096},
        }
    ]
}

#: The refusals of a route that may ask for a challenge.
CHALLENGE_RESPONSES: dict[int | str, dict[str, Any]] = {
    403: {
        "description": "challenge_required (no answer; the problem's `challenge` is what to "
        "solve), challenge_failed (forged, expired, used, for another step, or "
        "uncheckable; a fresh `challenge` comes with it)"
    },
}


class ChallengeOut(BaseModel):
    kind: Literal["off", "turnstile", "hcaptcha", "pow"] = Field(
        description="off: nothing to solve. turnstile / hcaptcha: render the widget with "
        "`site_key` (and `params.action`). pow: find a nonce (see `params`)."
    )
    site_key: str | None = None
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="pow: `challenge`, `difficulty`, `expires_at`, `action`, `signature` "
        "and `puzzle`; answer `<puzzle>.<nonce>` where sha256(challenge + nonce) starts "
        "with `difficulty` zero bits.",
    )


@router.get("/challenge", response_model=ChallengeOut)
async def get_challenge(
    container: ContainerDep,
    action: Literal["signup", "login", "join"] = Query(
        description="The step the answer is for; an answer works for that step only."
    ),
) -> ChallengeOut:
    """What to solve before ``action``. Each call issues a fresh puzzle; each answer is
    accepted once."""
    spec = await container.challenges.spec(action)
    if spec is None:
        return ChallengeOut(kind="off")
    return ChallengeOut(kind=spec.kind, site_key=spec.site_key, params=spec.params)


async def require_challenge(gate: ChallengeGate, action: ChallengeAction, request: Request) -> None:
    """The answer in the request's header, checked for ``action`` (routes that read it
    themselves, so the challenge costs nothing while off)."""
    await gate.require(action, request.headers.get(CHALLENGE_HEADER), remote_ip=client_ip(request))
