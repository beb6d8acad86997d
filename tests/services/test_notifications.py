"""Outbox messages become mails: every kind in both languages, the default language, and
the messages that can never become one."""

from __future__ import annotations

from typing import Any

import pytest

from rushgate.services.notifications import (
    KINDS,
    NotificationError,
    Notifier,
    UnknownNotification,
)
from rushgate.services.ports.mail import Contact
from rushgate.services.ports.outbox import OutboxMessage

MINJUN = Contact("minjun@example.test", "김민준", None)
ANA = Contact("ana@example.test", "Ana", "en")

COURSE = {"term": "2026-spring", "section_id": "CS101-01", "title": "자료구조"}
ROUND = {"round_name": "2027 입학전형", "receipt_number": "R-2027-000042"}
PAYLOADS: dict[str, dict[str, Any]] = {
    "enrollment.enrolled": COURSE,
    "enrollment.waitlisted": {**COURSE, "waitlist_position": 3},
    "enrollment.dropped": {**COURSE, "was": "enrolled"},
    "enrollment.promoted": COURSE,
    "applicant.verify_email": {"verify_url": "https://rushgate.test/verify?token=t0k"},
    "application.submitted": ROUND,
    "application.updated": ROUND,
    "application.withdrawn": ROUND,
    "application.status_changed": {**ROUND, "status": "accepted"},
}


def compose(kind: str, contact: Contact = MINJUN, **payload: Any) -> tuple[str, str]:
    body = payload or PAYLOADS[kind]
    mail = Notifier().compose(OutboxMessage(kind, f"{kind}.1", 7, body), contact)
    assert (mail.to, mail.dedupe_key) == (contact.email, f"{kind}.1")
    return mail.subject, mail.text


def test_every_kind_the_relay_may_meet_has_templates() -> None:
    assert set(PAYLOADS) == KINDS


@pytest.mark.parametrize("kind", sorted(PAYLOADS))
@pytest.mark.parametrize("contact", [MINJUN, ANA])
def test_every_kind_in_both_languages(kind: str, contact: Contact) -> None:
    subject, text = compose(kind, contact)
    assert subject
    assert "\n" not in subject
    assert text.startswith(f"{contact.name} 님," if contact is MINJUN else "Hello Ana,")
    assert "$" not in subject + text, "a placeholder was left unfilled"
    assert contact.email not in text, "nothing about the recipient but their name"
    words = subject + text
    for value in PAYLOADS[kind].values():
        words = words.replace(str(value), "")
    hangul = any("\uac00" <= ch <= "\ud7a3" for ch in words)
    assert hangul is (contact is MINJUN), "the template's own words are in the right language"


def test_what_an_enrollment_mail_says() -> None:
    subject, text = compose("enrollment.enrolled")
    assert subject == "[수강신청] 자료구조 (CS101-01) 신청 완료"
    assert "2026-spring 학기 자료구조 (CS101-01) 수강신청이 완료되었습니다." in text
    subject, text = compose("enrollment.waitlisted", ANA)
    assert subject == "Waitlisted: 자료구조 (CS101-01)"
    assert "number 3 on the waitlist" in text


def test_what_an_application_mail_says() -> None:
    subject, text = compose("application.status_changed")
    assert subject == "[입학원서] 2027 입학전형 진행 상태: 합격"
    assert "R-2027-000042" in text
    assert compose("application.status_changed", ANA)[0] == (
        "Application status: accepted (2027 입학전형)"
    )
    # Withdrawn before it was ever submitted: no receipt number to show.
    _, text = compose("application.withdrawn", round_name="2027 입학전형", receipt_number=None)
    assert "접수번호 -" in text


def test_the_verification_link_or_token() -> None:
    assert "https://rushgate.test/verify?token=t0k" in compose("applicant.verify_email")[1]
    assert "t0k-only" in compose("applicant.verify_email", token="t0k-only")[1]


def test_the_deployments_default_language_and_unknown_ones() -> None:
    message = OutboxMessage("enrollment.enrolled", "k", 7, COURSE)
    english = Notifier(default_locale="en")
    assert english.compose(message, MINJUN).subject.startswith("Enrolled:")
    assert english.compose(message, Contact("x@example.test", "X", "fr")).subject.startswith(
        "Enrolled:"
    )
    assert Notifier().compose(message, ANA).subject.startswith("Enrolled:")
    with pytest.raises(ValueError, match="locale"):
        Notifier(default_locale="fr")


def test_a_subject_stays_one_line_whatever_the_payload_holds() -> None:
    subject, _ = compose("enrollment.enrolled", **{**COURSE, "title": "Data\r\nBcc: x@evil"})
    assert subject == "[수강신청] Data Bcc: x@evil (CS101-01) 신청 완료"


def test_messages_that_can_never_be_mails() -> None:
    with pytest.raises(UnknownNotification, match=r"enrollment\.teleported"):
        compose("enrollment.teleported", note="?")
    with pytest.raises(NotificationError, match="section_id"):
        compose("enrollment.enrolled", term="2026-spring", title="자료구조")
    with pytest.raises(NotificationError):
        compose("applicant.verify_email", nothing="here")
