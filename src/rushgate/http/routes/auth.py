from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Request

from rushgate.composition import Container
from rushgate.http.client import client_ip
from rushgate.http.deps import ContainerDep
from rushgate.http.routes.challenge import CHALLENGE_HEADER as CHALLENGE_HEADER
from rushgate.http.schemas import TokenRequest, TokenResponse

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])

#: The refusals of every way of logging in (see ``sign_in``).
SIGN_IN_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "invalid_credentials"},
    403: {
        "description": "challenge_required: after repeated failures for this account or "
        "from this address, a solved challenge is needed (the problem's `challenge`); "
        "challenge_failed: the answer was refused (a fresh `challenge` comes with it)"
    },
    429: {
        "description": "rate_limited: too many failures for this account from this "
        "address, or from this address; retry after Retry-After seconds"
    },
}


async def sign_in(
    request: Request, node: Container, username: str, password: str, challenge: str | None
) -> tuple[str, int]:
    """Check a username and password behind every login guard; return (token, ttl).

    Shared by every way of logging in (bearer token, cookie session), so none of them
    skips the brute-force protection or the bot challenge. ``challenge`` is the client's
    answer, if it sent one (header or body field)."""
    return await node.login_guard.sign_in(
        username, password, remote_ip=client_ip(request), challenge=challenge
    )


@router.post("/token", response_model=TokenResponse, responses=SIGN_IN_RESPONSES)
async def issue_token(
    body: TokenRequest,
    request: Request,
    container: ContainerDep,
    x_rushgate_challenge: Annotated[str | None, Header(alias=CHALLENGE_HEADER)] = None,
) -> TokenResponse:
    challenge = x_rushgate_challenge or body.challenge
    token, ttl = await sign_in(request, container, body.username, body.password, challenge)
    return TokenResponse(access_token=token, expires_in=ttl)
