"""Cookie sessions for the browser UI: the same signed token as ``POST /auth/token``,
kept in an HttpOnly cookie, with a CSRF token beside it (see ``rushgate.http.deps``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Request, Response, status
from pydantic import BaseModel

from rushgate.http.deps import (
    ContainerDep,
    clear_session_cookies,
    set_session_cookies,
    site_cookies,
)
from rushgate.http.errors import ApiError
from rushgate.http.routes.auth import CHALLENGE_HEADER, SIGN_IN_RESPONSES, sign_in
from rushgate.http.schemas import TokenRequest

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])

_NO_STORE = "no-store"


class SessionOut(BaseModel):
    csrf_token: str
    expires_in: int


@router.post(
    "/session",
    responses={
        200: {
            "description": "Sets the session cookie and the CSRF cookie.",
            "headers": {
                "Set-Cookie": {
                    "description": "rg_session (HttpOnly) and rg_csrf; on https "
                    "__Host-rg_session and __Host-rg_csrf, Secure",
                    "schema": {"type": "string"},
                }
            },
        },
        401: SIGN_IN_RESPONSES[401],
        403: {
            "description": "csrf_failed: sent from another site (its Origin); "
            + SIGN_IN_RESPONSES[403]["description"]
        },
        429: SIGN_IN_RESPONSES[429],
    },
)
async def open_session(
    body: TokenRequest,
    request: Request,
    response: Response,
    container: ContainerDep,
    x_rushgate_challenge: Annotated[str | None, Header(alias=CHALLENGE_HEADER)] = None,
) -> SessionOut:
    """Log in for a browser: the token goes into an HttpOnly cookie (``__Host-rg_session``
    on https, else ``rg_session``), and the CSRF token, to send back in the
    ``X-CSRF-Token`` header of every request that changes something, into a cookie the
    page's script can read (``__Host-rg_csrf`` / ``rg_csrf``) and this answer."""
    cookies = site_cookies(request)
    origin = request.headers.get("origin")
    if origin is not None and origin.lower() != cookies.origin:
        # Another site logging the browser into an account of its choosing.
        raise ApiError(403, "csrf_failed", "a request from another site was refused")
    challenge = x_rushgate_challenge or body.challenge
    token, ttl = await sign_in(request, container, body.username, body.password, challenge)
    csrf = set_session_cookies(response, cookies, token, ttl)
    response.headers["Cache-Control"] = _NO_STORE
    return SessionOut(csrf_token=csrf, expires_in=ttl)


@router.delete("/session", status_code=status.HTTP_204_NO_CONTENT)
async def close_session(request: Request) -> Response:
    """Log out of the browser session: both cookies are cleared. Needs no CSRF token:
    the worst another site can do with it is log the user out."""
    cookies = site_cookies(request)
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    clear_session_cookies(response, cookies)
    response.headers["Cache-Control"] = _NO_STORE
    return response
