"""CAPTCHA providers checked server side: Cloudflare Turnstile and hCaptcha.

Both take a form POST of ``secret``, ``response`` (the widget's token) and ``remoteip``
to a siteverify URL and answer JSON with ``success`` and ``error-codes``; Turnstile adds
the widget's ``action``, both the ``hostname`` the widget was served on. Verification
fails closed: a timeout, a status other than 200 or a body that is not the expected
JSON refuses the answer. Each token is accepted once across every node (before asking
the provider, so two nodes offered the same token at once cannot both pass).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass

import httpx

from rushgate.domain.errors import ChallengeFailed
from rushgate.services.ports.challenge import (
    ChallengeAction,
    ChallengeKind,
    ChallengeSpec,
    UsedAnswers,
)

log = logging.getLogger("rushgate.challenge")

# Longest token accepted (Turnstile documents 2,048 characters; hCaptcha's are shorter).
MAX_TOKEN_LENGTH = 4096
# Providers' tokens live at most this long (Turnstile: 300 s, hCaptcha: 120 s).
TOKEN_TTL_SECONDS = 300
DEFAULT_TIMEOUT_SECONDS = 3.0


@dataclass(frozen=True, slots=True)
class Provider:
    kind: ChallengeKind
    verify_url: str
    # Whether siteverify reports the widget's action (it binds a token to one step).
    reports_action: bool
    # Whether siteverify takes the site key, to refuse tokens of another site's widget.
    takes_site_key: bool


TURNSTILE = Provider(
    "turnstile",
    "https://challenges.cloudflare.com/turnstile/v0/siteverify",
    reports_action=True,
    takes_site_key=False,
)
HCAPTCHA = Provider(
    "hcaptcha", "https://api.hcaptcha.com/siteverify", reports_action=False, takes_site_key=True
)


class SiteverifyVerifier:
    def __init__(
        self,
        provider: Provider,
        *,
        site_key: str,
        secret: str,
        used: UsedAnswers,
        verify_url: str | None = None,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
        hostname: str | None = None,
    ) -> None:
        self._provider = provider
        self._site_key = site_key
        self._secret = secret
        self._used = used
        self._url = verify_url or provider.verify_url
        self._timeout = timeout_seconds
        self._hostname = hostname
        # Never follows redirects, never reads proxy settings from the environment.
        self._http = httpx.AsyncClient(timeout=timeout_seconds, trust_env=False)

    @property
    def kind(self) -> ChallengeKind:
        return self._provider.kind

    async def issue(self, action: ChallengeAction) -> ChallengeSpec:
        # The widget is told the action (Turnstile's data-action) so the token carries it.
        return ChallengeSpec(kind=self.kind, site_key=self._site_key, params={"action": action})

    async def verify(self, answer: str, *, action: ChallengeAction, remote_ip: str | None) -> None:
        if not answer or len(answer) > MAX_TOKEN_LENGTH:
            raise ChallengeFailed("the CAPTCHA token is malformed")
        digest = hashlib.sha256(answer.encode("utf-8", "replace")).hexdigest()
        if not await self._used.first_use(f"{self.kind}:{digest}", TOKEN_TTL_SECONDS):
            raise ChallengeFailed("this CAPTCHA token was already used; solve a new one")
        form = {"secret": self._secret, "response": answer}
        if remote_ip:
            form["remoteip"] = remote_ip
        if self._provider.takes_site_key:
            form["sitekey"] = self._site_key
        result = await self._siteverify(form)
        if result.get("success") is not True:
            codes = result.get("error-codes")
            raise ChallengeFailed(
                "the CAPTCHA was not solved",
                error_codes=[str(c) for c in codes] if isinstance(codes, list) else None,
            )
        if self._hostname is not None and result.get("hostname") != self._hostname:
            raise ChallengeFailed("the CAPTCHA was solved on another site")
        if self._provider.reports_action and result.get("action") != action:
            raise ChallengeFailed(f"the CAPTCHA was solved for another step, not {action}")

    async def _siteverify(self, form: dict[str, str]) -> dict[str, object]:
        """The provider's verdict; anything but a 200 with a JSON object fails closed."""
        try:
            # The whole exchange, not each read: a provider trickling bytes is a timeout.
            async with asyncio.timeout(self._timeout):
                response = await self._http.post(self._url, data=form)
                body = response.json() if response.status_code == 200 else None
        except (TimeoutError, httpx.HTTPError) as exc:
            log.warning("%s siteverify failed: %r", self.kind, exc)
            raise ChallengeFailed("the CAPTCHA cannot be checked right now; retry") from exc
        except ValueError as exc:  # not JSON
            log.warning("%s siteverify answered something other than JSON", self.kind)
            raise ChallengeFailed("the CAPTCHA cannot be checked right now; retry") from exc
        if response.status_code != 200 or not isinstance(body, dict):
            log.warning("%s siteverify answered %s", self.kind, response.status_code)
            raise ChallengeFailed("the CAPTCHA cannot be checked right now; retry")
        return body

    async def aclose(self) -> None:
        await self._http.aclose()
