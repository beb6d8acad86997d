"""The enrollment rules: one section per course, no time clash, a credit limit, a window."""

from __future__ import annotations

from datetime import timedelta

import pytest

from rushgate.domain import errors
from rushgate.domain.model import Holding, HoldingStatus, Meeting, SectionRef, StudentProfile
from rushgate.domain.rules import ensure_can_hold, ensure_window_open
from tests.support import T0, meeting, window


def ref(
    section_id: str = "CS101-01",
    *,
    course_code: str | None = None,
    credits: int = 3,
    meetings: tuple[Meeting, ...] | None = None,
) -> SectionRef:
    return SectionRef(
        section_id,
        course_code or section_id.split("-")[0],
        credits,
        meetings if meetings is not None else (meeting(),),
    )


def held(section: SectionRef, status: HoldingStatus = HoldingStatus.ENROLLED) -> Holding:
    return Holding(section, status)


def profile(max_credits: int = 18, class_year: int = 2) -> StudentProfile:
    return StudentProfile("s1", class_year, max_credits)


def test_error_codes_are_public_api() -> None:
    assert {
        cls.__name__: cls.code
        for cls in (
            errors.NotFound,
            errors.Conflict,
            errors.InvalidRequest,
            errors.WindowClosed,
            errors.SectionFull,
            errors.WaitlistFull,
            errors.AlreadyEnrolled,
            errors.TimeConflict,
            errors.CreditLimit,
            errors.IdempotencyKeyReused,
            errors.InvalidCredentials,
            errors.Forbidden,
        )
    } == {
        "NotFound": "not_found",
        "Conflict": "conflict",
        "InvalidRequest": "invalid_request",
        "WindowClosed": "window_closed",
        "SectionFull": "section_full",
        "WaitlistFull": "waitlist_full",
        "AlreadyEnrolled": "already_enrolled",
        "TimeConflict": "time_conflict",
        "CreditLimit": "credit_limit",
        "IdempotencyKeyReused": "idempotency_key_reused",
        "InvalidCredentials": "invalid_credentials",
        "Forbidden": "forbidden",
    }


def test_domain_error_keeps_detail_and_context() -> None:
    error = errors.SectionFull("no seats", section_id="X")
    assert str(error) == "no seats"
    assert error.detail == "no seats"
    assert error.context == {"section_id": "X"}


def test_nothing_held_is_fine() -> None:
    ensure_can_hold(profile(), ref(), [])


@pytest.mark.parametrize("status", list(HoldingStatus))
def test_same_course_other_section_is_already_enrolled(status: HoldingStatus) -> None:
    other = ref("CS101-02", meetings=(meeting("FRI"),))
    with pytest.raises(errors.AlreadyEnrolled) as caught:
        ensure_can_hold(profile(), ref("CS101-01"), [held(other, status)])
    assert caught.value.code == "already_enrolled"
    assert caught.value.context["held_section_id"] == "CS101-02"
    assert caught.value.context["held_status"] == status.value


def test_same_section_again_is_already_enrolled() -> None:
    with pytest.raises(errors.AlreadyEnrolled):
        ensure_can_hold(profile(), ref(), [held(ref())])


def test_course_rule_comes_before_time_and_credits() -> None:
    # Same course, same time, and over the credit limit: the course rule speaks first.
    with pytest.raises(errors.AlreadyEnrolled):
        ensure_can_hold(profile(max_credits=3), ref("CS101-01"), [held(ref("CS101-02"))])


@pytest.mark.parametrize("status", list(HoldingStatus))
def test_time_conflict(status: HoldingStatus) -> None:
    clash = ref("MATH200-01", meetings=(meeting("TUE"), meeting("MON", "10:00", "11:00")))
    with pytest.raises(errors.TimeConflict) as caught:
        ensure_can_hold(profile(), ref(), [held(clash, status)])
    assert caught.value.code == "time_conflict"
    assert caught.value.context == {"conflicting_section_id": "MATH200-01", "day": "MON"}


def test_touching_and_other_day_meetings_do_not_conflict() -> None:
    touching = ref("MATH200-01", meetings=(meeting("MON", "10:15", "11:30"),))
    other_day = ref("PHYS100-01", meetings=(meeting("WED", "09:00", "10:15"),))
    ensure_can_hold(profile(), ref(), [held(touching), held(other_day)])


def test_sections_without_meetings_never_conflict() -> None:
    ensure_can_hold(profile(), ref(meetings=()), [held(ref("MATH200-01"))])


@pytest.mark.parametrize("status", list(HoldingStatus))
def test_credit_limit_exact_is_allowed_one_over_refused(status: HoldingStatus) -> None:
    holdings = [
        held(ref("MATH200-01", credits=4, meetings=(meeting("TUE"),)), status),
        held(ref("PHYS100-01", credits=4, meetings=(meeting("WED"),))),
    ]
    ensure_can_hold(profile(max_credits=11), ref(credits=3), holdings)
    with pytest.raises(errors.CreditLimit) as caught:
        ensure_can_hold(profile(max_credits=10), ref(credits=3), holdings)
    assert caught.value.code == "credit_limit"
    assert caught.value.context == {"max_credits": 10, "would_have": 11}


def test_zero_credit_limit_still_allows_zero_credit_sections() -> None:
    ensure_can_hold(profile(max_credits=0), ref(credits=0), [])
    with pytest.raises(errors.CreditLimit):
        ensure_can_hold(profile(max_credits=0), ref(credits=1), [])


def test_window_open_and_closed_codes() -> None:
    w = window(T0, hours=1, by_year={4: T0 - timedelta(hours=1)})
    ensure_window_open(w, profile(), T0)
    for now in (T0 - timedelta(seconds=1), T0 + timedelta(hours=1)):
        with pytest.raises(errors.WindowClosed) as caught:
            ensure_window_open(w, profile(), now)
        assert caught.value.code == "window_closed"
        assert caught.value.context == {
            "opens_at": T0.isoformat(),
            "closes_at": (T0 + timedelta(hours=1)).isoformat(),
        }


def test_window_for_seniors_opens_at_their_time() -> None:
    early = T0 - timedelta(hours=1)
    w = window(T0, hours=1, by_year={4: early})
    ensure_window_open(w, profile(class_year=4), early)
    with pytest.raises(errors.WindowClosed) as caught:
        ensure_window_open(w, profile(class_year=3), early)
    assert caught.value.context["opens_at"] == T0.isoformat()
    with pytest.raises(errors.WindowClosed) as caught:
        ensure_window_open(w, profile(class_year=4), early - timedelta(seconds=1))
    assert caught.value.context["opens_at"] == early.isoformat()
