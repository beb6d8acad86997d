"""Admission applications: filing windows, statuses, receipts, personal data, documents, Q&A.

Pure functions and values: the time (``now``/``today``) is always passed in, nothing is
looked up, and every refusal is a :class:`~rushgate.domain.errors.DomainError` with a code.
"""

from __future__ import annotations

import enum
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from types import MappingProxyType

from rushgate.domain.errors import (
    DocumentTooLarge,
    InvalidRequest,
    InvalidTransition,
    UnsupportedDocument,
    ValidationFailed,
    WindowClosed,
)

# --------------------------------------------------------------------------- windows, rounds


@dataclass(frozen=True, slots=True)
class FilingWindow:
    """When applications may be submitted and edited: ``[opens_at, closes_at)``."""

    opens_at: datetime
    closes_at: datetime

    def __post_init__(self) -> None:
        if self.opens_at.tzinfo is None or self.closes_at.tzinfo is None:
            raise ValueError("a filing window needs timezone-aware datetimes")
        if self.opens_at >= self.closes_at:
            raise ValueError("a filing window must close after it opens")

    def accepts(self, now: datetime) -> bool:
        return self.opens_at <= now < self.closes_at


@dataclass(frozen=True, slots=True)
class Track:
    """One programme an applicant can apply to (일반전형, 특기자전형, …).

    ``capacity`` is shown to applicants only; nothing here limits submissions by it.
    """

    code: str
    name: str
    capacity: int | None

    def __post_init__(self) -> None:
        if self.capacity is not None and self.capacity < 0:
            raise ValueError("a track's capacity cannot be negative")


RECEIPT_PREFIX_MAX = 16
_PREFIX_RE = re.compile(r"[A-Z0-9](?:[A-Z0-9-]{0,14}[A-Z0-9])?")


def is_valid_receipt_prefix(prefix: str) -> bool:
    """1 to 16 of ``[A-Z0-9-]``, not starting or ending with ``-``."""
    return _PREFIX_RE.fullmatch(prefix) is not None


def check_receipt_prefix(prefix: str) -> str:
    """``prefix`` itself, or :class:`InvalidRequest` naming the field (for admin input)."""
    if not is_valid_receipt_prefix(prefix):
        raise InvalidRequest(
            "a receipt prefix is 1-16 of A-Z, 0-9 and '-', not starting or ending with '-'",
            field="receipt_prefix",
            value=prefix[:32],
        )
    return prefix


def default_receipt_prefix(round_code: str, opens_at: datetime) -> str:
    """``"<year the round opens>-A"``; ``round_code`` is accepted for later, finer schemes."""
    return f"{opens_at.year}-A"


@dataclass(frozen=True, slots=True)
class AdmissionRound:
    """One admission round (e.g. 2027 고입 전기). Refuses a bad prefix or duplicate tracks
    with :class:`InvalidRequest`, since rounds are made from administrators' input."""

    code: str
    name: str
    window: FilingWindow
    tracks: tuple[Track, ...]
    required_documents: tuple[str, ...]
    receipt_prefix: str

    def __post_init__(self) -> None:
        check_receipt_prefix(self.receipt_prefix)
        codes = [t.code for t in self.tracks]
        if len(set(codes)) != len(codes):
            duplicate = next(c for c in codes if codes.count(c) > 1)
            raise InvalidRequest("track codes must be unique", field="tracks", track=duplicate)

    def track(self, code: str) -> Track:
        for track in self.tracks:
            if track.code == code:
                return track
        raise InvalidRequest(
            "this round has no such track",
            field="track",
            track=code,
            round=self.code,
            known=[t.code for t in self.tracks],
        )


# --------------------------------------------------------------------------- statuses


class ApplicationStatus(enum.StrEnum):
    DRAFT = "draft"
    SUBMITTED = "submitted"
    UNDER_REVIEW = "under_review"
    # 충원합격 candidates: staff may later announce them accepted (or rejected).
    WAITLISTED = "waitlisted"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"


_S = ApplicationStatus

#: Final decisions: nobody moves an application out of these.
DECIDED: frozenset[ApplicationStatus] = frozenset({_S.ACCEPTED, _S.REJECTED})

#: Moves staff may make (besides re-setting the current status, see :func:`staff_can_set`).
#: Drafts and withdrawn applications are the applicant's own; staff never touch them.
STAFF_TRANSITIONS: Mapping[ApplicationStatus, frozenset[ApplicationStatus]] = MappingProxyType(
    {
        _S.DRAFT: frozenset(),
        _S.SUBMITTED: frozenset({_S.UNDER_REVIEW, _S.WAITLISTED, _S.ACCEPTED, _S.REJECTED}),
        _S.UNDER_REVIEW: frozenset({_S.WAITLISTED, _S.ACCEPTED, _S.REJECTED}),
        _S.WAITLISTED: frozenset({_S.ACCEPTED, _S.REJECTED}),
        _S.ACCEPTED: frozenset(),
        _S.REJECTED: frozenset(),
        _S.WITHDRAWN: frozenset(),
    }
)

#: Statuses staff can set at all: the only ones a staff request (or its retry) targets.
STAFF_TARGETS: frozenset[ApplicationStatus] = frozenset(
    target for targets in STAFF_TRANSITIONS.values() for target in targets
)


def staff_can_set(current: ApplicationStatus, target: ApplicationStatus) -> bool:
    """Whether staff may set ``target`` on an application in ``current``.

    Setting the current status again is an allowed no-op when it is a status staff can set
    (a retried decision must not fail), so ``accepted -> accepted`` is fine but
    ``draft -> draft`` or ``submitted -> submitted`` is not: staff never set those.
    """
    if current == target:
        return target in STAFF_TARGETS
    return target in STAFF_TRANSITIONS[current]


def check_staff_transition(current: ApplicationStatus, target: ApplicationStatus) -> None:
    """:class:`InvalidTransition` unless :func:`staff_can_set` allows the move."""
    if not staff_can_set(current, target):
        raise InvalidTransition(
            f"staff cannot move an application from {current.value} to {target.value}",
            current=current.value,
            target=target.value,
        )


def _window_closed(window: FilingWindow, detail: str) -> WindowClosed:
    return WindowClosed(
        detail, opens_at=window.opens_at.isoformat(), closes_at=window.closes_at.isoformat()
    )


def _refuse(status: ApplicationStatus, action: str) -> InvalidTransition:
    return InvalidTransition(
        f"an application that is {status.value} cannot be {action}",
        current=status.value,
        action=action,
    )


def check_applicant_edit(status: ApplicationStatus, window: FilingWindow, now: datetime) -> None:
    """May the applicant save changes now?

    A draft may be saved any time before ``closes_at``, even before the window opens (to
    prepare); a submitted application only while the window accepts. Any later status
    refuses with :class:`InvalidTransition` whatever the time: the status, not the clock,
    is the reason. Past the deadline, draft and submitted refuse with :class:`WindowClosed`.
    """
    if status is _S.DRAFT:
        if now >= window.closes_at:
            raise _window_closed(window, "the filing deadline has passed")
        return
    if status is _S.SUBMITTED:
        if not window.accepts(now):
            raise _window_closed(window, "submitted applications can be edited only while open")
        return
    raise _refuse(status, "edited")


def check_submit(status: ApplicationStatus, window: FilingWindow, now: datetime) -> bool:
    """Check that the applicant may submit; returns ``already_submitted``.

    A draft submits only while the window accepts (:class:`WindowClosed` otherwise).
    Submitting a submitted application again returns ``True`` at any time, even after the
    deadline: it was filed in time, and a retried request must not tell the applicant it
    failed. Every other status (under review, decided, withdrawn) is refused with
    :class:`InvalidTransition`; a withdrawal is final, the applicant files anew instead.
    """
    if status is _S.SUBMITTED:
        return True
    if status is not _S.DRAFT:
        raise _refuse(status, "submitted")
    if not window.accepts(now):
        raise _window_closed(window, "applications are not being accepted now")
    return False


#: Statuses an applicant may withdraw from.
WITHDRAWABLE: frozenset[ApplicationStatus] = frozenset(
    {_S.DRAFT, _S.SUBMITTED, _S.UNDER_REVIEW, _S.WAITLISTED}
)


def check_withdraw(status: ApplicationStatus, window: FilingWindow, now: datetime) -> bool:
    """Check that the applicant may withdraw; returns ``already`` (withdrawn before).

    Allowed from draft, submitted, under review and waitlisted at any time, the window
    notwithstanding: a withdrawal never takes anything from anybody else. Refused from a
    decision (:class:`InvalidTransition`); declining an offer is a separate process.
    ``window`` and ``now`` are taken so that the call looks like its siblings.
    """
    if status is _S.WITHDRAWN:
        return True
    if status not in WITHDRAWABLE:
        raise _refuse(status, "withdrawn")
    return False


# --------------------------------------------------------------------------- receipts

_RECEIPT_RE = re.compile(r"(?P<prefix>[A-Z0-9-]{1,16})-(?P<sequence>[0-9]{6,})")
_RECEIPT_MAX_TEXT = 64


def format_receipt(prefix: str, sequence: int) -> str:
    """``"<prefix>-<sequence, at least 6 digits>"``; wider sequences are never truncated."""
    if not is_valid_receipt_prefix(prefix):
        raise ValueError(f"invalid receipt prefix {prefix!r}")
    if sequence < 1:
        raise ValueError("receipt sequences start at 1")
    return f"{prefix}-{sequence:06d}"


def parse_receipt(text: str) -> tuple[str, int]:
    """``(prefix, sequence)`` of a receipt number as :func:`format_receipt` writes it.

    Surrounding blanks and lower case are forgiven (people type these in); otherwise only
    the canonical form is accepted, so that one receipt has exactly one spelling.
    """
    # ASCII only before upper(): "ﬀ".upper() is "FF", and such look-alikes are not receipts.
    candidate = text.strip() if isinstance(text, str) and text.isascii() else ""
    candidate = candidate.upper()
    match = _RECEIPT_RE.fullmatch(candidate) if len(candidate) <= _RECEIPT_MAX_TEXT else None
    if match is not None:
        prefix, digits = match["prefix"], match["sequence"]
        sequence = int(digits)
        if is_valid_receipt_prefix(prefix) and sequence >= 1 and f"{sequence:06d}" == digits:
            return prefix, sequence
    raise InvalidRequest(
        "not a receipt number", field="receipt", value=str(text)[:_RECEIPT_MAX_TEXT]
    )


@dataclass(frozen=True, slots=True)
class ReceiptNumber:
    """A receipt number as a value; ``str()`` gives its canonical text."""

    prefix: str
    sequence: int

    def __post_init__(self) -> None:
        format_receipt(self.prefix, self.sequence)

    @classmethod
    def parse(cls, text: str) -> ReceiptNumber:
        return cls(*parse_receipt(text))

    def __str__(self) -> str:
        return format_receipt(self.prefix, self.sequence)


# --------------------------------------------------------------------------- text checks

# Bidirectional overrides and isolates: they make "exe.pdf" display as "pdf.exe" and
# names display differently from what is stored.
_BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)
# Cc: C0/C1 controls (NUL, ESC, DEL, …); Cs: lone surrogates; Zl/Zp: line separators
# that break one-line exports.
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})


def has_forbidden_characters(text: str, allow: str = "") -> bool:
    """Whether ``text`` holds control, surrogate, line-separator or bidi-control characters."""
    return any(
        ch not in allow
        and (ch in _BIDI_CONTROLS or unicodedata.category(ch) in _FORBIDDEN_CATEGORIES)
        for ch in text
    )


def _text_problem(
    value: object, maximum: int, normal: Callable[[str], str], *, allow: str = ""
) -> str | None:
    """Error message for a bad text field, else ``None``; lengths count normalised text."""
    if not isinstance(value, str):
        return "must be text"
    if has_forbidden_characters(value, allow):
        return "must not contain control characters"
    length = len(normal(value))
    if length == 0:
        return "must not be empty"
    if length > maximum:
        return f"must be at most {maximum} characters"
    return None


def _normal_text(value: str) -> str:
    # NFC: Hangul typed on macOS arrives decomposed (NFD); compose it so that lengths,
    # equality and search behave the same for every applicant.
    return unicodedata.normalize("NFC", value).strip()


def _normal_line(value: str) -> str:
    """One-line fields: also fold inner runs of blanks, so "홍  길동" is "홍 길동"."""
    return " ".join(_normal_text(value).split())


FieldErrors = list[dict[str, str]]


def _fail(detail: str, errors: FieldErrors) -> ValidationFailed:
    return ValidationFailed(detail, errors=errors)


# --------------------------------------------------------------------------- phones

PHONE_MIN_DIGITS = 9
PHONE_MAX_DIGITS = 15
_PHONE_MAX_TEXT = 32
_PHONE_SEPARATORS = frozenset(" -.()")


def _phone_problem(text: object) -> tuple[str | None, str | None]:
    """``(normalised, None)`` or ``(None, message)``."""
    if not isinstance(text, str):
        return None, "must be text"
    if has_forbidden_characters(text):
        return None, "must not contain control characters"
    # NFKC turns full-width digits and dashes from Korean IMEs into ASCII ones.
    raw = unicodedata.normalize("NFKC", text).strip()
    if not raw:
        return None, "must not be empty"
    if len(raw) > _PHONE_MAX_TEXT:
        return None, "is too long to be a phone number"
    plus = raw.startswith("+")
    body = raw[1:] if plus else raw
    digits: list[str] = []
    for ch in body:
        if ch in "0123456789":
            digits.append(ch)
        elif ch not in _PHONE_SEPARATORS:
            return None, "may hold only digits, spaces, '-', '.', '(', ')' and a leading '+'"
    number = "".join(digits)
    if not PHONE_MIN_DIGITS <= len(number) <= PHONE_MAX_DIGITS:
        return None, f"must have {PHONE_MIN_DIGITS} to {PHONE_MAX_DIGITS} digits"
    if plus and number.startswith("0"):
        return None, "an international number starts with its country code, not 0"
    return ("+" if plus else "") + number, None


def normalize_phone(text: str, *, field: str = "phone") -> str:
    """Digits only, with a leading ``+`` kept only if given: ``"010-1234-5678"`` →
    ``"01012345678"``, ``"+82 10 1234 5678"`` → ``"+821012345678"``.

    Raises :class:`ValidationFailed` listing ``field``.
    """
    number, problem = _phone_problem(text)
    if number is None:
        raise _fail("invalid phone number", [{"field": field, "message": problem or "invalid"}])
    return number


def mask_phone(phone: str) -> str:
    """For logs and lists: only the last four digits survive. Never raises.

    Korean domestic numbers keep their area or carrier code, which says nothing personal:
    ``"01012345678"`` → ``"010-****-5678"``, ``"021234567"`` → ``"02-***-4567"``. Anything
    else keeps just its ``+``: ``"+821012345678"`` → ``"+********-5678"``.
    """
    digits = "".join(ch for ch in str(phone) if ch in "0123456789")
    if len(digits) <= 4:
        return "****"
    head, last = digits[:-4], digits[-4:]
    if not str(phone).lstrip().startswith("+") and head.startswith("0"):
        area = 2 if head.startswith("02") else 3
        if len(head) > area:
            return f"{head[:area]}-{'*' * (len(head) - area)}-{last}"
    plus = "+" if str(phone).lstrip().startswith("+") else ""
    return f"{plus}{'*' * len(head)}-{last}"


# --------------------------------------------------------------------------- personal data

NAME_MAX = 50
SCHOOL_MAX = 100
ADDRESS_MAX = 200
EARLIEST_BIRTH_DATE = date(1900, 1, 1)
MIN_AGE = 5
MAX_AGE = 100


def age_on(birth_date: date, today: date) -> int:
    """Full years lived on ``today`` (a 29 February birthday counts from 1 March)."""
    before_birthday = (today.month, today.day) < (birth_date.month, birth_date.day)
    return today.year - birth_date.year - int(before_birthday)


def _birth_date_problem(value: object, today: date) -> tuple[date | None, str | None]:
    if isinstance(value, datetime):
        value = value.date()
    elif isinstance(value, str):
        text = value.strip()
        if (
            has_forbidden_characters(value)
            or re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", text) is None
        ):
            return None, "must be a date as YYYY-MM-DD"
        try:
            value = date.fromisoformat(text)
        except ValueError:
            return None, "is not a real date"
    if not isinstance(value, date):
        return None, "must be a date"
    if value > today:
        return None, "must not be in the future"
    if value < EARLIEST_BIRTH_DATE:
        return None, f"must not be before {EARLIEST_BIRTH_DATE.isoformat()}"
    age = age_on(value, today)
    if not MIN_AGE <= age <= MAX_AGE:
        return None, f"the applicant must be {MIN_AGE} to {MAX_AGE} years old"
    return value, None


@dataclass(frozen=True, slots=True, repr=False)
class PersonalInfo:
    """An applicant's personal data, normalised. Build it with :meth:`create` from input;
    the constructor trusts its arguments (rows read back from storage).

    ``repr`` masks everything but the name's first character and the phones' last digits,
    so that a stray log line does not leak personal data.
    """

    name: str
    birth_date: date
    phone: str
    guardian_name: str
    guardian_phone: str
    middle_school: str
    address: str

    def __repr__(self) -> str:
        return (
            f"PersonalInfo(name={self.name[:1]!r}…, phone={mask_phone(self.phone)!r}, "
            f"guardian_phone={mask_phone(self.guardian_phone)!r})"
        )

    @classmethod
    def create(
        cls,
        name: str,
        birth_date: date | str,
        phone: str,
        guardian_name: str,
        guardian_phone: str,
        middle_school: str,
        address: str,
        today: date,
    ) -> PersonalInfo:
        """Normalise and validate; :class:`ValidationFailed` lists every bad field at once."""
        errors: FieldErrors = []

        def text(field: str, value: object, maximum: int) -> str:
            problem = _text_problem(value, maximum, _normal_line)
            if problem is not None:
                errors.append({"field": field, "message": problem})
                return ""
            assert isinstance(value, str)
            return _normal_line(value)

        def phone_number(field: str, value: object) -> str:
            number, problem = _phone_problem(value)
            if number is None:
                errors.append({"field": field, "message": problem or "invalid"})
                return ""
            return number

        clean_name = text("name", name, NAME_MAX)
        born, problem = _birth_date_problem(birth_date, today)
        if born is None:
            errors.append({"field": "birth_date", "message": problem or "invalid"})
        clean_phone = phone_number("phone", phone)
        clean_guardian = text("guardian_name", guardian_name, NAME_MAX)
        clean_guardian_phone = phone_number("guardian_phone", guardian_phone)
        school = text("middle_school", middle_school, SCHOOL_MAX)
        clean_address = text("address", address, ADDRESS_MAX)
        if errors or born is None:
            raise _fail("some personal details are invalid", errors)
        return cls(
            name=clean_name,
            birth_date=born,
            phone=clean_phone,
            guardian_name=clean_guardian,
            guardian_phone=clean_guardian_phone,
            middle_school=school,
            address=clean_address,
        )

    @property
    def masked_phone(self) -> str:
        return mask_phone(self.phone)


def validate_personal(
    name: str,
    birth_date: date | str,
    phone: str,
    guardian_name: str,
    guardian_phone: str,
    middle_school: str,
    address: str,
    today: date,
) -> PersonalInfo:
    """The same as :meth:`PersonalInfo.create`."""
    return PersonalInfo.create(
        name, birth_date, phone, guardian_name, guardian_phone, middle_school, address, today
    )


# --------------------------------------------------------------------------- documents


class DocumentKind(enum.StrEnum):
    PDF = "pdf"
    JPEG = "jpeg"
    PNG = "png"

    @property
    def content_type(self) -> str:
        return _CONTENT_TYPES[self]

    @property
    def extensions(self) -> frozenset[str]:
        """File name endings (lower case, with the dot) that may carry this kind."""
        return _EXTENSIONS[self]


_CONTENT_TYPES: Mapping[DocumentKind, str] = MappingProxyType(
    {
        DocumentKind.PDF: "application/pdf",
        DocumentKind.JPEG: "image/jpeg",
        DocumentKind.PNG: "image/png",
    }
)
_EXTENSIONS: Mapping[DocumentKind, frozenset[str]] = MappingProxyType(
    {
        DocumentKind.PDF: frozenset({".pdf"}),
        DocumentKind.JPEG: frozenset({".jpg", ".jpeg"}),
        DocumentKind.PNG: frozenset({".png"}),
    }
)
# What browsers and old phones actually send for each kind.
_DECLARED_ALIASES: Mapping[str, DocumentKind] = MappingProxyType(
    {
        "application/pdf": DocumentKind.PDF,
        "application/x-pdf": DocumentKind.PDF,
        "image/jpeg": DocumentKind.JPEG,
        "image/jpg": DocumentKind.JPEG,
        "image/pjpeg": DocumentKind.JPEG,
        "image/png": DocumentKind.PNG,
        "image/x-png": DocumentKind.PNG,
    }
)
_MAGIC: tuple[tuple[bytes, DocumentKind], ...] = (
    (b"%PDF-", DocumentKind.PDF),
    (b"\xff\xd8\xff", DocumentKind.JPEG),
    (b"\x89PNG\r\n\x1a\n", DocumentKind.PNG),
)
#: How many leading bytes :func:`sniff_document` needs at most.
SNIFF_BYTES = max(len(magic) for magic, _ in _MAGIC)


def sniff_document(head: bytes) -> DocumentKind | None:
    """The kind the file's first bytes say it is; the name and declared type are not trusted."""
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    return None


FILENAME_MAX = 100
_FILENAME_FALLBACK = "document"
# Characters that are path syntax or illegal on Windows, where applicants download files.
_FILENAME_UNSAFE = frozenset('/\\<>:"|?*')


def safe_filename(name: str) -> str:
    """A file name fit to store and show: the base name only, no path separators, control
    or bidi characters, at most 100 characters (keeping the extension), else ``"document"``.
    """
    text = unicodedata.normalize("NFC", str(name))
    base = re.split(r"[/\\]", text)[-1]
    kept = "".join(
        "_" if ch in _FILENAME_UNSAFE else ch for ch in base if not has_forbidden_characters(ch)
    )
    # Leading dots would make ".." or hidden files; Windows drops trailing dots and blanks.
    kept = kept.strip().lstrip(".").rstrip(". ").strip()
    if not kept:
        return _FILENAME_FALLBACK
    if len(kept) > FILENAME_MAX:
        stem, dot, ext = kept.rpartition(".")
        if dot and stem and len(ext) <= 10:
            kept = stem[: FILENAME_MAX - len(ext) - 1].rstrip(". ") + "." + ext
        else:
            kept = kept[:FILENAME_MAX].rstrip(". ")
    return kept or _FILENAME_FALLBACK


def _extension(filename: str) -> str:
    stem, dot, ext = filename.rpartition(".")
    return f".{ext.lower()}" if dot and stem else ""


def _declared_kind(declared_type: str | None) -> tuple[str, DocumentKind | None] | None:
    """``None`` when there is no usable claim, else ``(media type, kind it names)``."""
    if declared_type is None:
        return None
    media = declared_type.split(";", 1)[0].strip().lower()
    if not media or media == "application/octet-stream":
        return None
    return media, _DECLARED_ALIASES.get(media)


def check_document(
    *, filename: str, declared_type: str | None, head: bytes, size: int, max_bytes: int
) -> DocumentKind:
    """The kind of an upload, from its first bytes, when its name and type agree with them.

    ``head`` is the start of the file (:data:`SNIFF_BYTES` suffice), ``size`` its full
    length. An empty file is :class:`UnsupportedDocument` (it is no document at all); one
    over ``max_bytes`` is :class:`DocumentTooLarge`, checked before the content so a client
    learns the cheap reason first. A missing or foreign extension is refused like a wrong
    one: the stored name is what applicants and staff later open.
    """
    if size < 0 or max_bytes < 1:
        raise ValueError("size must be >= 0 and max_bytes >= 1")
    shown = safe_filename(filename)
    if size == 0:
        raise UnsupportedDocument("the file is empty", reason="empty", filename=shown)
    if size > max_bytes:
        raise DocumentTooLarge(
            "the file is too large", size=size, max_bytes=max_bytes, filename=shown
        )
    accepted = ", ".join(k.content_type for k in DocumentKind)
    kind = sniff_document(head)
    if kind is None:
        raise UnsupportedDocument(
            f"only {accepted} files are accepted", reason="unknown_format", filename=shown
        )
    claim = _declared_kind(declared_type)
    if claim is not None and claim[1] is not kind:
        raise UnsupportedDocument(
            "the declared content type does not match the file",
            reason="type_mismatch",
            declared_type=claim[0],
            detected_type=kind.content_type,
            filename=shown,
        )
    extension = _extension(shown)
    if extension not in kind.extensions:
        raise UnsupportedDocument(
            "the file name's extension does not match the file",
            reason="extension_mismatch",
            extension=extension,
            detected_type=kind.content_type,
            filename=shown,
        )
    return kind


# --------------------------------------------------------------------------- questions

QUESTION_TITLE_MAX = 120
QUESTION_BODY_MAX = 5000


def check_question(title: str, body: str) -> tuple[str, str]:
    """``(title, body)`` normalised: stripped, NFC, the body's line ends as ``\\n``.

    The title is one line without control characters; the body may also hold ``\\n``,
    ``\\r`` and ``\\t``. :class:`ValidationFailed` lists both fields when both are bad.
    """
    errors: FieldErrors = []
    problem = _text_problem(title, QUESTION_TITLE_MAX, _normal_line)
    if problem is not None:
        errors.append({"field": "title", "message": problem})
    if isinstance(body, str):
        body = body.replace("\r\n", "\n").replace("\r", "\n")
    body_problem = _text_problem(body, QUESTION_BODY_MAX, _normal_text, allow="\n\t")
    if body_problem is not None:
        errors.append({"field": "body", "message": body_problem})
    if errors:
        raise _fail("the question is incomplete or invalid", errors)
    return _normal_line(title), _normal_text(body)
