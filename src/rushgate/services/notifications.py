"""Notifications: the mail an outbox message becomes, in the recipient's language.

Templates are plain text, Korean and English; a user without a language of their own gets
the deployment's default (``RUSHGATE_MAIL_DEFAULT_LOCALE``). A mail shows the recipient's
name and the message's payload, nothing else about them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from string import Template
from typing import Any

from rushgate.services.ports.mail import Contact, Mail
from rushgate.services.ports.outbox import OutboxMessage

LOCALES = ("ko", "en")


class NotificationError(Exception):
    """A message that cannot become a mail, now or ever: it is dead-lettered at once."""


class UnknownNotification(NotificationError):
    """No template for this kind (a newer node wrote it, or a typo): a bug to look at."""


@dataclass(frozen=True, slots=True)
class _Template:
    subject: str
    text: str


_FOOTER = {
    "ko": "\n\n-- \n이 메일은 발신 전용입니다. rushgate",
    "en": "\n\n-- \nThis mailbox is not monitored. rushgate",
}

_TEMPLATES: dict[str, dict[str, _Template]] = {
    "enrollment.enrolled": {
        "ko": _Template(
            "[수강신청] $title ($section_id) 신청 완료",
            "$name 님,\n\n$term 학기 $title ($section_id) 수강신청이 완료되었습니다.",
        ),
        "en": _Template(
            "Enrolled: $title ($section_id)",
            "Hello $name,\n\nyou are enrolled in $title ($section_id) for term $term.",
        ),
    },
    "enrollment.waitlisted": {
        "ko": _Template(
            "[수강신청] $title ($section_id) 대기 등록",
            "$name 님,\n\n$term 학기 $title ($section_id)의 대기자 명단에 "
            "${waitlist_position}번째로 등록되었습니다.\n"
            "자리가 나면 자동으로 수강신청되며 메일로 알려 드립니다.",
        ),
        "en": _Template(
            "Waitlisted: $title ($section_id)",
            "Hello $name,\n\nyou are number $waitlist_position on the waitlist of $title "
            "($section_id) for term $term.\nIf a seat frees up you are enrolled "
            "automatically, and we will write to you.",
        ),
    },
    "enrollment.dropped": {
        "ko": _Template(
            "[수강신청] $title ($section_id) 취소 완료",
            "$name 님,\n\n$term 학기 $title ($section_id) 수강(대기)이 취소되었습니다.",
        ),
        "en": _Template(
            "Dropped: $title ($section_id)",
            "Hello $name,\n\nyour place in $title ($section_id) for term $term is given up.",
        ),
    },
    "enrollment.promoted": {
        "ko": _Template(
            "[수강신청] $title ($section_id) 대기에서 수강 확정",
            "$name 님,\n\n자리가 나서 $term 학기 $title ($section_id) 수강이 확정되었습니다.",
        ),
        "en": _Template(
            "Off the waitlist: enrolled in $title ($section_id)",
            "Hello $name,\n\na seat freed up: you are now enrolled in $title ($section_id) "
            "for term $term.",
        ),
    },
    "applicant.verify_email": {
        "ko": _Template(
            "[입학원서] 이메일 주소를 확인해 주세요",
            "$name 님,\n\n아래 링크를 열어 이메일 주소를 확인해 주세요.\n\n$link\n\n"
            "가입하지 않으셨다면 이 메일을 무시하셔도 됩니다.",
        ),
        "en": _Template(
            "Please confirm your email address",
            "Hello $name,\n\nplease open this link to confirm your email address:\n\n$link\n\n"
            "If you did not sign up, ignore this mail.",
        ),
    },
    "application.submitted": {
        "ko": _Template(
            "[입학원서] $round_name 원서 접수 완료 (접수번호 $receipt_number)",
            "$name 님,\n\n$round_name 원서가 접수되었습니다.\n접수번호: $receipt_number",
        ),
        "en": _Template(
            "Application received: $round_name (receipt $receipt_number)",
            "Hello $name,\n\nyour application to $round_name is received.\n"
            "Receipt number: $receipt_number",
        ),
    },
    "application.updated": {
        "ko": _Template(
            "[입학원서] $round_name 원서 수정 완료 (접수번호 $receipt_number)",
            "$name 님,\n\n$round_name 원서의 수정 내용이 저장되었습니다.\n"
            "접수번호: $receipt_number",
        ),
        "en": _Template(
            "Application updated: $round_name (receipt $receipt_number)",
            "Hello $name,\n\nthe changes to your application to $round_name are saved.\n"
            "Receipt number: $receipt_number",
        ),
    },
    "application.withdrawn": {
        "ko": _Template(
            "[입학원서] $round_name 원서 취소 완료",
            "$name 님,\n\n$round_name 원서(접수번호 $receipt_number)가 취소되었습니다.",
        ),
        "en": _Template(
            "Application withdrawn: $round_name",
            "Hello $name,\n\nyour application to $round_name (receipt $receipt_number) is "
            "withdrawn.",
        ),
    },
    "application.status_changed": {
        "ko": _Template(
            "[입학원서] $round_name 진행 상태: $status",
            "$name 님,\n\n$round_name 원서(접수번호 $receipt_number)의 상태가 "
            "'$status'(으)로 바뀌었습니다.",
        ),
        "en": _Template(
            "Application status: $status ($round_name)",
            "Hello $name,\n\nthe status of your application to $round_name "
            "(receipt $receipt_number) is now: $status.",
        ),
    },
}

_STATUS = {
    "ko": {
        "draft": "작성 중",
        "submitted": "접수 완료",
        "under_review": "심사 중",
        "waitlisted": "예비 합격",
        "accepted": "합격",
        "rejected": "불합격",
        "withdrawn": "취소",
    },
    "en": {
        "draft": "draft",
        "submitted": "submitted",
        "under_review": "under review",
        "waitlisted": "waitlisted",
        "accepted": "accepted",
        "rejected": "not accepted",
        "withdrawn": "withdrawn",
    },
}

KINDS = frozenset(_TEMPLATES)


def _text(value: Any) -> str:
    return "-" if value is None else str(value)


class Notifier:
    """Turns an outbox message and its recipient into a mail."""

    def __init__(self, *, default_locale: str = "ko") -> None:
        if default_locale not in LOCALES:
            raise ValueError(f"default locale must be one of {LOCALES}")
        self._default = default_locale

    def locale_for(self, contact: Contact) -> str:
        return contact.locale if contact.locale in LOCALES else self._default

    def compose(self, message: OutboxMessage, contact: Contact) -> Mail:
        """Raises ``UnknownNotification`` for a kind without templates and
        ``NotificationError`` for a payload that lacks what its template shows."""
        by_locale = _TEMPLATES.get(message.kind)
        if by_locale is None:
            raise UnknownNotification(f"no mail template for kind {message.kind!r}")
        locale = self.locale_for(contact)
        template = by_locale[locale]
        values = self._values(message.kind, message.payload, contact, locale)
        try:
            subject = Template(template.subject).substitute(values)
            text = Template(template.text).substitute(values) + _FOOTER[locale]
        except KeyError as exc:
            raise NotificationError(
                f"the payload of a {message.kind!r} message lacks {exc.args[0]!r}"
            ) from exc
        return Mail(
            to=contact.email,
            # A subject is one line, whatever a payload holds.
            subject=" ".join(subject.split()),
            text=text,
            dedupe_key=message.dedupe_key,
        )

    @staticmethod
    def _values(
        kind: str, payload: Mapping[str, Any], contact: Contact, locale: str
    ) -> dict[str, str]:
        values = {key: _text(value) for key, value in payload.items()}
        values["name"] = contact.name
        if kind == "applicant.verify_email":
            link = payload.get("verify_url") or payload.get("token")
            if link is not None:
                values["link"] = str(link)
        if "status" in payload:
            values["status"] = _STATUS[locale].get(str(payload["status"]), values["status"])
        return values
