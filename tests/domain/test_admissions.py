"""Admission applications: windows, status moves, receipts, personal data, uploads, Q&A."""

from __future__ import annotations

import ast
import unicodedata
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rushgate.domain import admissions
from rushgate.domain.admissions import (
    AdmissionRound,
    ApplicationStatus,
    DocumentKind,
    FilingWindow,
    PersonalInfo,
    ReceiptNumber,
    Track,
    check_applicant_edit,
    check_document,
    check_question,
    check_receipt_prefix,
    check_staff_transition,
    check_submit,
    check_withdraw,
    default_receipt_prefix,
    format_receipt,
    is_valid_receipt_prefix,
    mask_phone,
    normalize_phone,
    parse_receipt,
    safe_filename,
    sniff_document,
    staff_can_set,
    validate_personal,
)
from rushgate.domain.errors import (
    DocumentTooLarge,
    DomainError,
    InvalidRequest,
    InvalidTransition,
    UnsupportedDocument,
    ValidationFailed,
    WindowClosed,
)

S = ApplicationStatus
OPENS = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
CLOSES = datetime(2026, 11, 6, 18, 0, tzinfo=UTC)
WINDOW = FilingWindow(OPENS, CLOSES)
SECOND = timedelta(seconds=1)
TODAY = date(2026, 11, 3)

# --------------------------------------------------------------------------- filing window


def test_window_boundaries_are_half_open() -> None:
    assert not WINDOW.accepts(OPENS - SECOND)
    assert WINDOW.accepts(OPENS)
    assert WINDOW.accepts(CLOSES - SECOND)
    assert WINDOW.accepts(CLOSES - timedelta(microseconds=1))
    assert not WINDOW.accepts(CLOSES)
    assert not WINDOW.accepts(CLOSES + SECOND)


def test_window_compares_instants_not_wall_clocks() -> None:
    seoul = timezone(timedelta(hours=9))
    # 18:00 UTC is 03:00 the next day in Seoul: still the same instant.
    assert not WINDOW.accepts(CLOSES.astimezone(seoul))
    assert WINDOW.accepts((CLOSES - SECOND).astimezone(seoul))


@pytest.mark.parametrize(
    ("opens", "closes"),
    [
        pytest.param(OPENS, OPENS, id="empty"),
        pytest.param(CLOSES, OPENS, id="reversed"),
        pytest.param(OPENS.replace(tzinfo=None), CLOSES, id="naive-open"),
        pytest.param(OPENS, CLOSES.replace(tzinfo=None), id="naive-close"),
    ],
)
def test_window_refuses_bad_bounds(opens: datetime, closes: datetime) -> None:
    with pytest.raises(ValueError, match="window"):
        FilingWindow(opens, closes)


def test_window_is_a_frozen_value() -> None:
    assert FilingWindow(OPENS, CLOSES) == WINDOW
    assert hash(FilingWindow(OPENS, CLOSES)) == hash(WINDOW)
    with pytest.raises(AttributeError):
        WINDOW.opens_at = CLOSES  # type: ignore[misc]


# --------------------------------------------------------------------------- rounds, tracks


def make_round(prefix: str = "2027-A", tracks: tuple[Track, ...] | None = None) -> AdmissionRound:
    return AdmissionRound(
        code="2027-early",
        name="2027학년도 전기",
        window=WINDOW,
        tracks=tracks
        if tracks is not None
        else (Track("general", "일반전형", 120), Track("arts", "예술특기자", None)),
        required_documents=("transcript", "recommendation"),
        receipt_prefix=prefix,
    )


def test_round_finds_its_tracks() -> None:
    admission_round = make_round()
    assert admission_round.track("general") == Track("general", "일반전형", 120)
    assert admission_round.track("arts").capacity is None


def test_unknown_track_is_an_invalid_request_naming_the_field() -> None:
    with pytest.raises(InvalidRequest) as caught:
        make_round().track("science")
    assert caught.value.code == "invalid_request"
    assert caught.value.context["field"] == "track"
    assert caught.value.context["track"] == "science"
    assert caught.value.context["known"] == ["general", "arts"]


def test_track_codes_are_case_sensitive() -> None:
    with pytest.raises(InvalidRequest):
        make_round().track("GENERAL")


def test_round_refuses_duplicate_track_codes() -> None:
    tracks = (Track("general", "A", 1), Track("general", "B", 2))
    with pytest.raises(InvalidRequest) as caught:
        make_round(tracks=tracks)
    assert caught.value.context == {"field": "tracks", "track": "general"}


def test_track_capacity_cannot_be_negative() -> None:
    assert Track("x", "x", 0).capacity == 0
    with pytest.raises(ValueError, match="negative"):
        Track("x", "x", -1)


def test_round_refuses_a_bad_prefix() -> None:
    with pytest.raises(InvalidRequest) as caught:
        make_round(prefix="-2027")
    assert caught.value.context["field"] == "receipt_prefix"


def test_default_receipt_prefix_uses_the_opening_year() -> None:
    assert default_receipt_prefix("2027-early", datetime(2027, 1, 5, tzinfo=UTC)) == "2027-A"
    assert default_receipt_prefix("x", OPENS) == "2026-A"
    assert is_valid_receipt_prefix(default_receipt_prefix("x", OPENS))


@pytest.mark.parametrize(
    "prefix", ["A", "2027-A", "X1", "A-B-C", "ABCDEFGHIJKLMNOP", "0", "2027--A"]
)
def test_valid_prefixes(prefix: str) -> None:
    assert is_valid_receipt_prefix(prefix)
    assert check_receipt_prefix(prefix) == prefix


@pytest.mark.parametrize(
    "prefix",
    [
        "",
        "-",
        "-A",
        "A-",
        "ABCDEFGHIJKLMNOPQ",  # 17
        "2027-a",
        "2027 A",
        "2027_A",
        "가",
        "A\n",
        "A\x00",
        "Ａ",  # full-width
    ],
)
def test_invalid_prefixes(prefix: str) -> None:
    assert not is_valid_receipt_prefix(prefix)
    with pytest.raises(InvalidRequest):
        check_receipt_prefix(prefix)


# --------------------------------------------------------------------------- staff moves

ALL = list(ApplicationStatus)
STAFF_ALLOWED = {
    (S.SUBMITTED, S.UNDER_REVIEW),
    (S.SUBMITTED, S.ACCEPTED),
    (S.SUBMITTED, S.REJECTED),
    (S.SUBMITTED, S.WAITLISTED),
    (S.UNDER_REVIEW, S.ACCEPTED),
    (S.UNDER_REVIEW, S.REJECTED),
    (S.UNDER_REVIEW, S.WAITLISTED),
    (S.WAITLISTED, S.ACCEPTED),
    (S.WAITLISTED, S.REJECTED),
    # Idempotent re-sets of statuses staff can set.
    (S.UNDER_REVIEW, S.UNDER_REVIEW),
    (S.WAITLISTED, S.WAITLISTED),
    (S.ACCEPTED, S.ACCEPTED),
    (S.REJECTED, S.REJECTED),
}


def test_status_values_are_the_public_contract() -> None:
    assert [s.value for s in ALL] == [
        "draft",
        "submitted",
        "under_review",
        "waitlisted",
        "accepted",
        "rejected",
        "withdrawn",
    ]
    assert S("under_review") is S.UNDER_REVIEW


@pytest.mark.parametrize("target", ALL, ids=str)
@pytest.mark.parametrize("current", ALL, ids=str)
def test_staff_transition_matrix(current: ApplicationStatus, target: ApplicationStatus) -> None:
    expected = (current, target) in STAFF_ALLOWED
    assert staff_can_set(current, target) is expected
    if expected:
        assert check_staff_transition(current, target) is None
    else:
        with pytest.raises(InvalidTransition) as caught:
            check_staff_transition(current, target)
        assert caught.value.code == "invalid_transition"
        assert caught.value.context == {"current": current.value, "target": target.value}


def test_decisions_are_final_except_waitlisted_to_accepted() -> None:
    for decided in (S.ACCEPTED, S.REJECTED):
        assert not any(staff_can_set(decided, t) for t in ALL if t is not decided)
    assert staff_can_set(S.WAITLISTED, S.ACCEPTED)


def test_staff_never_touch_drafts_or_withdrawals() -> None:
    for untouchable in (S.DRAFT, S.WITHDRAWN):
        assert not any(staff_can_set(untouchable, t) for t in ALL)
        assert not any(staff_can_set(c, untouchable) for c in ALL)


# --------------------------------------------------------------------------- applicant moves

TIMES = {
    "before-open": OPENS - SECOND,
    "at-open": OPENS,
    "close-1s": CLOSES - SECOND,
    "at-close": CLOSES,
    "close+1s": CLOSES + SECOND,
}
OK, CLOSED, REFUSED = "ok", "closed", "refused"
INSIDE = {"before-open": CLOSED, "at-open": OK, "close-1s": OK, "at-close": CLOSED}
INSIDE["close+1s"] = CLOSED
ALWAYS_REFUSED = dict.fromkeys(TIMES, REFUSED)

EDIT_EXPECTED = {
    S.DRAFT: {**dict.fromkeys(TIMES, OK), "at-close": CLOSED, "close+1s": CLOSED},
    S.SUBMITTED: INSIDE,
    S.UNDER_REVIEW: ALWAYS_REFUSED,
    S.WAITLISTED: ALWAYS_REFUSED,
    S.ACCEPTED: ALWAYS_REFUSED,
    S.REJECTED: ALWAYS_REFUSED,
    S.WITHDRAWN: ALWAYS_REFUSED,
}


def outcome(call: object) -> str:
    assert callable(call)
    try:
        call()
    except WindowClosed:
        return CLOSED
    except InvalidTransition:
        return REFUSED
    return OK


@pytest.mark.parametrize("when", TIMES)
@pytest.mark.parametrize("status", ALL, ids=str)
def test_applicant_edit_matrix(status: ApplicationStatus, when: str) -> None:
    got = outcome(lambda: check_applicant_edit(status, WINDOW, TIMES[when]))
    assert got == EDIT_EXPECTED[status][when]


def test_draft_can_be_saved_long_before_opening() -> None:
    check_applicant_edit(S.DRAFT, WINDOW, OPENS - timedelta(days=30))


def test_window_closed_carries_the_window() -> None:
    with pytest.raises(WindowClosed) as caught:
        check_applicant_edit(S.SUBMITTED, WINDOW, CLOSES)
    assert caught.value.code == "window_closed"
    assert caught.value.context == {
        "opens_at": OPENS.isoformat(),
        "closes_at": CLOSES.isoformat(),
    }


# Submit: ok → already_submitted False; "again" → True.
AGAIN = "again"
SUBMIT_EXPECTED = {
    S.DRAFT: INSIDE,
    S.SUBMITTED: dict.fromkeys(TIMES, AGAIN),
    S.UNDER_REVIEW: ALWAYS_REFUSED,
    S.WAITLISTED: ALWAYS_REFUSED,
    S.ACCEPTED: ALWAYS_REFUSED,
    S.REJECTED: ALWAYS_REFUSED,
    S.WITHDRAWN: ALWAYS_REFUSED,
}


def flagged(call: object) -> str:
    assert callable(call)
    try:
        already = call()
    except WindowClosed:
        return CLOSED
    except InvalidTransition:
        return REFUSED
    assert isinstance(already, bool)
    return AGAIN if already else OK


@pytest.mark.parametrize("when", TIMES)
@pytest.mark.parametrize("status", ALL, ids=str)
def test_submit_matrix(status: ApplicationStatus, when: str) -> None:
    got = flagged(lambda: check_submit(status, WINDOW, TIMES[when]))
    assert got == SUBMIT_EXPECTED[status][when]


def test_submit_at_the_last_second_and_not_after() -> None:
    assert check_submit(S.DRAFT, WINDOW, CLOSES - SECOND) is False
    with pytest.raises(WindowClosed):
        check_submit(S.DRAFT, WINDOW, CLOSES)
    with pytest.raises(WindowClosed):
        check_submit(S.DRAFT, WINDOW, CLOSES + SECOND)


def test_withdrawn_cannot_resubmit() -> None:
    with pytest.raises(InvalidTransition) as caught:
        check_submit(S.WITHDRAWN, WINDOW, OPENS)
    assert caught.value.context == {"current": "withdrawn", "action": "submitted"}


WITHDRAW_EXPECTED = {
    S.DRAFT: dict.fromkeys(TIMES, OK),
    S.SUBMITTED: dict.fromkeys(TIMES, OK),
    S.UNDER_REVIEW: dict.fromkeys(TIMES, OK),
    S.WAITLISTED: dict.fromkeys(TIMES, OK),
    S.ACCEPTED: ALWAYS_REFUSED,
    S.REJECTED: ALWAYS_REFUSED,
    S.WITHDRAWN: dict.fromkeys(TIMES, AGAIN),
}


@pytest.mark.parametrize("when", TIMES)
@pytest.mark.parametrize("status", ALL, ids=str)
def test_withdraw_matrix(status: ApplicationStatus, when: str) -> None:
    got = flagged(lambda: check_withdraw(status, WINDOW, TIMES[when]))
    assert got == WITHDRAW_EXPECTED[status][when]


# --------------------------------------------------------------------------- receipts


@pytest.mark.parametrize(
    ("prefix", "sequence", "text"),
    [
        ("2027-A", 1, "2027-A-000001"),
        ("2027-A", 42, "2027-A-000042"),
        ("2027-A", 999_999, "2027-A-999999"),
        ("2027-A", 1_000_000, "2027-A-1000000"),
        ("X", 123_456_789, "X-123456789"),
    ],
)
def test_format_and_parse_receipts(prefix: str, sequence: int, text: str) -> None:
    assert format_receipt(prefix, sequence) == text
    assert parse_receipt(text) == (prefix, sequence)
    assert str(ReceiptNumber(prefix, sequence)) == text
    assert ReceiptNumber.parse(text) == ReceiptNumber(prefix, sequence)


@pytest.mark.parametrize(("prefix", "sequence"), [("2027-A", 0), ("2027-A", -1), ("-A", 1)])
def test_format_refuses_bad_parts(prefix: str, sequence: int) -> None:
    with pytest.raises(ValueError, match="receipt"):
        format_receipt(prefix, sequence)


def test_parse_forgives_blanks_and_case() -> None:
    assert parse_receipt("  2027-a-000007\n") == ("2027-A", 7)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "2027-A",
        "2027-A-",
        "2027-A-00001",  # too few digits
        "2027-A-0000001",  # not canonical: 1 is written 000001
        "2027-A-000000",  # sequences start at 1
        "-A-000001",
        "2027-A_000001",
        "2027-A-00000１",  # full-width digit
        "2027-A-٠٠٠٠٠١",  # Arabic-Indic digits: int() would take them
        "2027-A-000001x",
        "2027-A-000001\x00",
        "ABCDEFGHIJKLMNOPQ-000001",  # 17-character prefix
        "A-" + "1" * 100,
        "2027 A-000001",
        "\ufb00-000001",  # a ligature that upper-cases to "FF"
        "\u00df-000001",  # "ß" upper-cases to "SS"
    ],
)
def test_parse_refuses(text: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_receipt(text)
    assert caught.value.context["field"] == "receipt"


prefixes = st.from_regex(r"[A-Z0-9](?:[A-Z0-9-]{0,14}[A-Z0-9])?", fullmatch=True)


@given(prefix=prefixes, sequence=st.integers(min_value=1, max_value=10**30))
def test_receipt_round_trip(prefix: str, sequence: int) -> None:
    text = format_receipt(prefix, sequence)
    assert parse_receipt(text) == (prefix, sequence)
    assert format_receipt(*parse_receipt(text)) == text
    assert text.endswith(str(sequence))  # never truncated
    assert len(text.rsplit("-", 1)[1]) == max(6, len(str(sequence)))


@given(st.text(max_size=40))
def test_parse_only_ever_refuses_with_invalid_request(text: str) -> None:
    try:
        prefix, sequence = parse_receipt(text)
    except InvalidRequest:
        return
    assert format_receipt(prefix, sequence) == text.strip().upper()


# --------------------------------------------------------------------------- phones


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("010-1234-5678", "01012345678"),
        ("01012345678", "01012345678"),
        ("010 1234 5678", "01012345678"),
        ("010.1234.5678", "01012345678"),
        ("(010) 1234-5678", "01012345678"),
        ("02-123-4567", "021234567"),
        ("(02) 1234-5678", "0212345678"),
        ("031-123-4567", "0311234567"),
        ("+82 10 1234 5678", "+821012345678"),
        ("+82-10-1234-5678", "+821012345678"),
        ("+1 (415) 555-0100", "+14155550100"),
        ("  010-1234-5678  ", "01012345678"),
        ("０１０－１２３４－５６７８", "01012345678"),  # full-width from a Korean IME
        ("123456789", "123456789"),  # 9 digits
        ("+123456789012345", "+123456789012345"),  # 15 digits
    ],
)
def test_phone_normalisation(raw: str, normal: str) -> None:
    assert normalize_phone(raw) == normal


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "12345678",  # 8 digits
        "+1234567890123456",  # 16 digits
        "010-1234-567a",
        "010/1234/5678",
        "010_1234_5678",
        "++821012345678",
        "82+1012345678",
        "010-1234-5678+",
        "+0101234567",  # no country code starts with 0
        "010-1234-5678\x00",
        "010\t1234\t5678",
        "010-1234-5678 ext 12",
        "٠١٠١٢٣٤٥٦٧٨",  # Arabic-Indic digits
        "-" * 40 + "01012345678",
    ],
)
def test_phone_refusals(raw: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        normalize_phone(raw)
    assert caught.value.code == "validation_failed"
    [error] = caught.value.errors
    assert error["field"] == "phone"
    assert error["message"]


def test_phone_error_names_the_given_field() -> None:
    with pytest.raises(ValidationFailed) as caught:
        normalize_phone("12", field="guardian_phone")
    assert caught.value.context["errors"] == [
        {"field": "guardian_phone", "message": "must have 9 to 15 digits"}
    ]


@pytest.mark.parametrize(
    ("phone", "masked"),
    [
        ("01012345678", "010-****-5678"),
        ("021234567", "02-***-4567"),
        ("0212345678", "02-****-5678"),
        ("0311234567", "031-***-4567"),
        ("+821012345678", "+********-5678"),
        ("123456789", "*****-6789"),
        ("010-1234-5678", "010-****-5678"),
        ("1234", "****"),
        ("", "****"),
    ],
)
def test_mask_phone_keeps_only_the_last_four_digits(phone: str, masked: str) -> None:
    assert mask_phone(phone) == masked


@given(st.text(alphabet="0123456789", min_size=9, max_size=15), st.booleans())
def test_mask_phone_never_shows_more_than_the_last_four(digits: str, plus: bool) -> None:
    phone = ("+" if plus else "") + digits
    masked = mask_phone(phone)
    shown = [ch for ch in masked if ch.isdigit()]
    assert masked.endswith(digits[-4:])
    # A domestic number may keep its 2- or 3-digit area code and nothing else.
    assert len(shown) <= 4 + (3 if digits.startswith("0") and not plus else 0)
    assert masked.count("*") + len(shown) == len(digits)


# --------------------------------------------------------------------------- personal data

GOOD = {
    "name": "홍길동",
    "birth_date": date(2011, 5, 17),
    "phone": "010-1234-5678",
    "guardian_name": "홍판서",
    "guardian_phone": "+82 10 9876 5432",
    "middle_school": "서울중학교",
    "address": "서울특별시 종로구 세종대로 1",
}


def personal(**changes: object) -> PersonalInfo:
    fields = {**GOOD, **changes}
    return PersonalInfo.create(**fields, today=TODAY)  # type: ignore[arg-type]


def failures(**changes: object) -> list[dict[str, str]]:
    with pytest.raises(ValidationFailed) as caught:
        personal(**changes)
    assert caught.value.code == "validation_failed"
    assert caught.value.errors == caught.value.context["errors"]
    return caught.value.errors


def bad_fields(**changes: object) -> list[str]:
    return [error["field"] for error in failures(**changes)]


def test_personal_info_is_normalised() -> None:
    info = personal(
        name="  홍  길동 ",
        phone="(010) 1234-5678",
        middle_school=" 서울중학교\u3000",
        address=" 서울특별시   종로구 ",
    )
    assert info == PersonalInfo(
        name="홍 길동",
        birth_date=date(2011, 5, 17),
        phone="01012345678",
        guardian_name="홍판서",
        guardian_phone="+821098765432",
        middle_school="서울중학교",
        address="서울특별시 종로구",
    )


def test_validate_personal_is_the_same_as_create() -> None:
    assert validate_personal(**GOOD, today=TODAY) == personal()  # type: ignore[arg-type]
    args = list(GOOD.values())
    assert validate_personal(*args, TODAY) == personal()  # type: ignore[arg-type]


def test_decomposed_hangul_is_composed() -> None:
    decomposed = unicodedata.normalize("NFD", "홍길동")
    assert len(decomposed) == 9
    assert personal(name=decomposed).name == "홍길동"
    # 50 composed syllables fit even when typed decomposed (150 code points).
    assert len(personal(name=unicodedata.normalize("NFD", "가" * 50)).name) == 50


def test_every_bad_field_is_listed_at_once() -> None:
    errors = failures(
        name="",
        birth_date=date(2030, 1, 1),
        phone="12",
        guardian_name=" ",
        guardian_phone="call me",
        middle_school="x" * 101,
        address="",
    )
    assert [e["field"] for e in errors] == [
        "name",
        "birth_date",
        "phone",
        "guardian_name",
        "guardian_phone",
        "middle_school",
        "address",
    ]
    assert all(isinstance(e["message"], str) and e["message"] for e in errors)
    assert all(set(e) == {"field", "message"} for e in errors)


def test_good_fields_are_not_listed() -> None:
    assert bad_fields(phone="nope", address="") == ["phone", "address"]


@pytest.mark.parametrize(
    "field", ["name", "phone", "guardian_name", "guardian_phone", "middle_school", "address"]
)
@pytest.mark.parametrize(
    "bad",
    ["\x00", "\x1b", "\x7f", "\x85", "\n", "\t", "\u2028", "\u202e", "\ud800"],
    ids=repr,
)
def test_control_characters_are_refused_anywhere(field: str, bad: str) -> None:
    good = str(GOOD[field])
    for value in (bad + good, good[:2] + bad + good[2:], good + bad):
        assert bad_fields(**{field: value}) == [field]


def test_nul_in_a_birth_date_string_is_refused() -> None:
    assert bad_fields(birth_date="2011-05-17\x00") == ["birth_date"]


@pytest.mark.parametrize(
    ("field", "maximum"),
    [("name", 50), ("guardian_name", 50), ("middle_school", 100), ("address", 200)],
)
def test_text_length_limits(field: str, maximum: int) -> None:
    assert getattr(personal(**{field: "가" * maximum}), field) == "가" * maximum
    assert getattr(personal(**{field: " 가 "}), field) == "가"
    assert bad_fields(**{field: "가" * (maximum + 1)}) == [field]
    assert bad_fields(**{field: ""}) == [field]
    assert bad_fields(**{field: " \u3000 "}) == [field]


def test_non_text_is_a_field_error_not_a_crash() -> None:
    assert bad_fields(name=None, phone=12345678901, birth_date=20110517) == [
        "name",
        "birth_date",
        "phone",
    ]


@pytest.mark.parametrize(
    ("birth_date", "ok"),
    [
        pytest.param(date(2021, 11, 3), True, id="exactly-5"),
        pytest.param(date(2021, 11, 4), False, id="5-tomorrow"),
        pytest.param(date(1926, 11, 3), True, id="exactly-100"),
        pytest.param(date(1926, 11, 4), True, id="100-and-364-days"),
        pytest.param(date(1925, 11, 3), False, id="101"),
        pytest.param(TODAY, False, id="born-today"),
        pytest.param(TODAY + timedelta(days=1), False, id="future"),
        pytest.param(date(1899, 12, 31), False, id="before-1900"),
        pytest.param("2011-05-17", True, id="iso-text"),
        pytest.param(" 2011-05-17 ", True, id="iso-text-blanks"),
        pytest.param("2011-02-30", False, id="no-such-day"),
        pytest.param("20110517", False, id="basic-format"),
        pytest.param("2011-5-17", False, id="unpadded"),
        pytest.param("", False, id="empty"),
        pytest.param(datetime(2011, 5, 17, 12, tzinfo=UTC), True, id="datetime"),
    ],
)
def test_birth_date_bounds(birth_date: object, ok: bool) -> None:
    if ok:
        expected = birth_date if type(birth_date) is date else date(2011, 5, 17)
        assert type(personal(birth_date=birth_date).birth_date) is date
        assert personal(birth_date=birth_date).birth_date == expected
    else:
        assert bad_fields(birth_date=birth_date) == ["birth_date"]


def test_before_1900_is_refused_even_if_today_were_earlier() -> None:
    info_today = date(1950, 1, 1)
    with pytest.raises(ValidationFailed) as caught:
        PersonalInfo.create(**{**GOOD, "birth_date": date(1899, 6, 1)}, today=info_today)  # type: ignore[arg-type]
    assert caught.value.errors[0]["message"] == "must not be before 1900-01-01"
    ok = PersonalInfo.create(**{**GOOD, "birth_date": date(1900, 1, 1)}, today=info_today)  # type: ignore[arg-type]
    assert ok.birth_date == date(1900, 1, 1)


def test_leap_day_birthday_turns_a_year_older_on_1_march() -> None:
    born = date(2020, 2, 29)
    assert admissions.age_on(born, date(2025, 2, 28)) == 4
    assert admissions.age_on(born, date(2025, 3, 1)) == 5
    assert admissions.age_on(born, date(2024, 2, 29)) == 4


def test_repr_does_not_leak_personal_data() -> None:
    info = personal()
    text = repr(info)
    for secret in ("길동", "1234", "9876", "서울", "2011", "홍판서", "중학교"):
        assert secret not in text
    assert "010-****-5678" in text
    assert info.masked_phone == "010-****-5678"
    assert mask_phone(info.guardian_phone) == "+********-5432"


# --------------------------------------------------------------------------- documents

PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"
EXE = b"MZ\x90\x00\x03\x00\x00\x00"
ELF = b"\x7fELF\x02\x01\x01\x00"
MAX = 10 * 1024 * 1024


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        (PDF, DocumentKind.PDF),
        (b"%PDF-", DocumentKind.PDF),
        (JPEG, DocumentKind.JPEG),
        (b"\xff\xd8\xff\xe1Exif", DocumentKind.JPEG),
        (PNG, DocumentKind.PNG),
        (EXE, None),
        (ELF, None),
        (b"", None),
        (b"%PDF", None),  # cut short
        (b"\xff\xd8", None),
        (b"\x89PNG\r\n\x1a", None),
        (b" %PDF-1.4", None),  # must be at the very start
        (b"%pdf-1.4", None),
        (b"GIF89a", None),
        (b"PK\x03\x04", None),  # zip / docx
        (b"<html>", None),
    ],
)
def test_sniffing(head: bytes, kind: DocumentKind | None) -> None:
    assert sniff_document(head) is kind


def test_kinds_and_content_types() -> None:
    assert [k.value for k in DocumentKind] == ["pdf", "jpeg", "png"]
    assert DocumentKind.PDF.content_type == "application/pdf"
    assert DocumentKind.JPEG.content_type == "image/jpeg"
    assert DocumentKind.PNG.content_type == "image/png"
    assert DocumentKind.JPEG.extensions == {".jpg", ".jpeg"}
    assert len(PNG) >= admissions.SNIFF_BYTES == 8


def check(
    filename: str = "scan.pdf",
    declared_type: str | None = "application/pdf",
    head: bytes = PDF,
    size: int = 1000,
    max_bytes: int = MAX,
) -> DocumentKind:
    return check_document(
        filename=filename, declared_type=declared_type, head=head, size=size, max_bytes=max_bytes
    )


@pytest.mark.parametrize(
    ("filename", "declared", "head", "kind"),
    [
        ("scan.pdf", "application/pdf", PDF, DocumentKind.PDF),
        ("SCAN.PDF", "Application/PDF", PDF, DocumentKind.PDF),
        ("scan.pdf", None, PDF, DocumentKind.PDF),
        ("scan.pdf", "", PDF, DocumentKind.PDF),
        ("scan.pdf", "application/octet-stream", PDF, DocumentKind.PDF),
        ("scan.pdf", "application/pdf; charset=binary", PDF, DocumentKind.PDF),
        ("photo.jpg", "image/jpeg", JPEG, DocumentKind.JPEG),
        ("photo.JPEG", "image/jpg", JPEG, DocumentKind.JPEG),
        ("photo.jpeg", "image/pjpeg", JPEG, DocumentKind.JPEG),
        ("shot.png", "image/png", PNG, DocumentKind.PNG),
        ("C:\\fakepath\\성적증명서.pdf", "application/pdf", PDF, DocumentKind.PDF),
    ],
)
def test_accepted_documents(
    filename: str, declared: str | None, head: bytes, kind: DocumentKind
) -> None:
    assert check(filename, declared, head) is kind


@pytest.mark.parametrize(
    ("filename", "declared", "head", "reason"),
    [
        pytest.param("scan.pdf", "application/pdf", EXE, "unknown_format", id="renamed-exe"),
        pytest.param("scan.pdf", None, ELF, "unknown_format", id="renamed-elf"),
        pytest.param("scan.pdf", "application/octet-stream", EXE, "unknown_format", id="exe-oct"),
        pytest.param("a.png", "image/png", b"GIF89a", "unknown_format", id="gif"),
        pytest.param("scan.pdf", "image/png", PDF, "type_mismatch", id="pdf-said-png"),
        pytest.param("a.png", "image/jpeg", PNG, "type_mismatch", id="png-said-jpeg"),
        pytest.param("a.pdf", "application/x-msdownload", PDF, "type_mismatch", id="pdf-said-exe"),
        pytest.param("a.pdf", "text/html", PDF, "type_mismatch", id="pdf-said-html"),
        pytest.param("photo.jpg", "image/jpeg", PDF, "type_mismatch", id="pdf-as-jpeg"),
        pytest.param("photo.jpg", None, PNG, "extension_mismatch", id="png-named-jpg"),
        pytest.param("scan.png", "application/pdf", PDF, "extension_mismatch", id="pdf-named-png"),
        pytest.param("scan.pdf.exe", None, PDF, "extension_mismatch", id="exe-extension"),
        pytest.param("scan", None, PDF, "extension_mismatch", id="no-extension"),
        pytest.param(".pdf", None, PDF, "extension_mismatch", id="only-extension"),
        pytest.param("scan.pdf ", None, PDF, "ok", id="trailing-blank-dropped"),
    ],
)
def test_refused_documents(filename: str, declared: str | None, head: bytes, reason: str) -> None:
    if reason == "ok":
        assert check(filename, declared, head) is DocumentKind.PDF
        return
    with pytest.raises(UnsupportedDocument) as caught:
        check(filename, declared, head)
    assert caught.value.code == "unsupported_media_type"
    assert caught.value.context["reason"] == reason


def test_sizes() -> None:
    assert check(size=1) is DocumentKind.PDF
    assert check(size=MAX) is DocumentKind.PDF
    with pytest.raises(DocumentTooLarge) as too_large:
        check(size=MAX + 1)
    assert too_large.value.code == "payload_too_large"
    assert too_large.value.context["size"] == MAX + 1
    assert too_large.value.context["max_bytes"] == MAX
    with pytest.raises(UnsupportedDocument) as empty:
        check(size=0, head=b"")
    assert empty.value.context["reason"] == "empty"
    # Too large is reported even when the content would also be refused.
    with pytest.raises(DocumentTooLarge):
        check(head=EXE, size=MAX + 1)
    with pytest.raises(ValueError, match="size"):
        check(size=-1)


def test_errors_name_the_safe_filename_only() -> None:
    with pytest.raises(UnsupportedDocument) as caught:
        check(filename="../../etc/\x00passwd.pdf", head=EXE)
    assert caught.value.context["filename"] == "passwd.pdf"


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("scan.pdf", "scan.pdf"),
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\me\\성적.pdf", "성적.pdf"),
        ("dir/", "document"),
        ("", "document"),
        ("   ", "document"),
        ("..", "document"),
        (".hidden.pdf", "hidden.pdf"),
        ("scan.pdf...", "scan.pdf"),
        ("sc\x00an\x1f.pdf", "scan.pdf"),
        ("scan\u202efdp.exe", "scanfdp.exe"),  # right-to-left override removed
        ('a<b>c:d"e|f?g*.pdf', "a_b_c_d_e_f_g_.pdf"),
        ("line\nbreak.pdf", "linebreak.pdf"),
        (unicodedata.normalize("NFD", "한글.pdf"), "한글.pdf"),
    ],
)
def test_safe_filename(name: str, safe: str) -> None:
    assert safe_filename(name) == safe


def test_long_filenames_keep_their_extension() -> None:
    long = "가" * 300 + ".pdf"
    safe = safe_filename(long)
    assert len(safe) == 100
    assert safe.endswith(".pdf")
    assert safe_filename("x" * 300) == "x" * 100
    assert safe_filename("x" * 100) == "x" * 100


@given(st.text(max_size=300))
def test_safe_filename_is_always_safe(name: str) -> None:
    safe = safe_filename(name)
    assert 1 <= len(safe) <= 100
    assert "/" not in safe
    assert "\\" not in safe
    assert safe not in (".", "..")
    assert not safe.startswith(".")
    assert not admissions.has_forbidden_characters(safe)
    assert safe_filename(safe) == safe  # stable when stored and sanitised again


# --------------------------------------------------------------------------- questions


def test_question_is_normalised() -> None:
    title, body = check_question("  원서 접수  문의 ", "\n안녕하세요.\r\n\t서류 질문입니다.\r끝\n ")
    assert title == "원서 접수 문의"
    assert body == "안녕하세요.\n\t서류 질문입니다.\n끝"


def test_question_limits() -> None:
    assert check_question("t" * 120, "b" * 5000) == ("t" * 120, "b" * 5000)
    # \r\n counts as one character once normalised.
    assert len(check_question("t", "a\r\n" * 2500)[1]) == 2 * 2500 - 1


@pytest.mark.parametrize(
    ("title", "body", "fields"),
    [
        ("", "body", ["title"]),
        ("   ", "body", ["title"]),
        ("t" * 121, "body", ["title"]),
        ("title", "", ["body"]),
        ("title", " \n\t ", ["body"]),
        ("title", "b" * 5001, ["body"]),
        ("", "", ["title", "body"]),
        ("t\x00", "b\x00", ["title", "body"]),
        ("two\nlines", "body", ["title"]),
        ("tab\there", "body", ["title"]),
        ("title", "nul\x00inside", ["body"]),
        ("title", "escape \x1b[31m red", ["body"]),
        ("title", "bell\x07", ["body"]),
        ("title", "spoof \u202e", ["body"]),
        ("title", "separator\u2028", ["body"]),
        (None, 12, ["title", "body"]),
    ],
)
def test_question_refusals(title: object, body: object, fields: list[str]) -> None:
    with pytest.raises(ValidationFailed) as caught:
        check_question(title, body)  # type: ignore[arg-type]
    assert [e["field"] for e in caught.value.errors] == fields


# --------------------------------------------------------------------------- errors, purity


def test_new_error_codes() -> None:
    assert InvalidTransition.code == "invalid_transition"
    assert ValidationFailed.code == "validation_failed"
    assert UnsupportedDocument.code == "unsupported_media_type"
    assert DocumentTooLarge.code == "payload_too_large"
    for error in (InvalidTransition, ValidationFailed, UnsupportedDocument, DocumentTooLarge):
        assert issubclass(error, DomainError)
    assert ValidationFailed("x").errors == []


def test_module_imports_nothing_impure() -> None:
    tree = ast.parse(Path(admissions.__file__).read_text(encoding="utf-8"))
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
    forbidden = (
        "rushgate.services",
        "rushgate.adapters",
        "rushgate.http",
        "sqlalchemy",
        "fastapi",
        "starlette",
        "pydantic",
    )
    assert imported
    assert not [m for m in imported if m.split(".")[0] in forbidden or m.startswith(forbidden)]
