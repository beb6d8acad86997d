"""Domain errors. Each carries a stable machine code; front ends decide how to render it."""

from __future__ import annotations

from typing import Any, ClassVar


class DomainError(Exception):
    """A request the rules refuse. ``code`` is part of the public API: never rename one."""

    code: ClassVar[str] = "domain_error"

    def __init__(self, detail: str, **context: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.context = context


class NotFound(DomainError):
    code = "not_found"


class Conflict(DomainError):
    """The request collides with existing state (duplicate ids in a bulk create, …)."""

    code = "conflict"


class InvalidRequest(DomainError):
    """Well-formed input that the rules still cannot accept."""

    code = "invalid_request"


class WindowClosed(DomainError):
    code = "window_closed"


class SectionFull(DomainError):
    code = "section_full"


class WaitlistFull(DomainError):
    code = "waitlist_full"


class AlreadyEnrolled(DomainError):
    code = "already_enrolled"


class TimeConflict(DomainError):
    code = "time_conflict"


class CreditLimit(DomainError):
    code = "credit_limit"


class IdempotencyKeyReused(DomainError):
    code = "idempotency_key_reused"


class InvalidCredentials(DomainError):
    code = "invalid_credentials"


class Forbidden(DomainError):
    code = "forbidden"


class NotAdmitted(DomainError):
    """The term's waiting room is on and the caller holds no valid admission for it."""

    code = "not_admitted"


class NotInQueue(DomainError):
    code = "not_in_queue"


class Unavailable(DomainError):
    """A dependency the request needs (the coordination store) cannot answer right now."""

    code = "coordination_unavailable"


class InvalidTransition(DomainError):
    """The application's status does not allow this move (a decided one is final, …)."""

    code = "invalid_transition"


class ValidationFailed(DomainError):
    """Input with one or more bad fields; ``errors`` lists every one, not just the first."""

    code = "validation_failed"

    @property
    def errors(self) -> list[dict[str, str]]:
        errors: list[dict[str, str]] = self.context.get("errors", [])
        return errors


class UnsupportedDocument(DomainError):
    """An upload that is not a PDF, JPEG or PNG, or whose name or type lies about what it is."""

    code = "unsupported_media_type"


class DocumentTooLarge(DomainError):
    code = "payload_too_large"


class EmailUnverified(DomainError):
    """The applicant has not confirmed their email address yet."""

    code = "email_unverified"


class RateLimited(DomainError):
    """Too many requests of one kind from one client or account; ``retry_after`` says how
    many seconds until the next one is allowed."""

    code = "rate_limited"

    @property
    def retry_after(self) -> float:
        return float(self.context.get("retry_after", 1.0))


class ChallengeRequired(DomainError):
    """This step needs a solved bot challenge (CAPTCHA or proof of work) and none came."""

    code = "challenge_required"


class ChallengeFailed(DomainError):
    """The bot challenge answer is forged, expired, already used or could not be checked
    (verification fails closed)."""

    code = "challenge_failed"


class CountryNotAllowed(DomainError):
    """The site accepts this step only from the countries its operator allowed."""

    code = "country_not_allowed"
