from __future__ import annotations

from fastapi import APIRouter

from rushgate.http.deps import ContainerDep
from rushgate.http.schemas import TokenRequest, TokenResponse

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


@router.post(
    "/token",
    response_model=TokenResponse,
    responses={401: {"description": "invalid_credentials"}},
)
async def issue_token(body: TokenRequest, container: ContainerDep) -> TokenResponse:
    token, ttl = await container.auth.login(body.username, body.password)
    return TokenResponse(access_token=token, expires_in=ttl)
