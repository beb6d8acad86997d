"""Meetings overlap as half-open intervals on one day; windows open per class year."""

from __future__ import annotations

from datetime import timedelta

import pytest

from rushgate.domain.model import Day, Meeting, RegistrationWindow
from tests.support import T0, meeting, window


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        pytest.param(("MON", "09:00", "10:15"), ("MON", "09:00", "10:15"), True, id="same"),
        pytest.param(("MON", "09:00", "10:15"), ("MON", "10:00", "11:00"), True, id="partial"),
        pytest.param(("MON", "09:00", "12:00"), ("MON", "10:00", "11:00"), True, id="contains"),
        pytest.param(("MON", "09:00", "09:01"), ("MON", "09:00", "10:00"), True, id="same-start"),
        pytest.param(("MON", "09:00", "10:15"), ("MON", "10:15", "11:30"), False, id="touching"),
        pytest.param(("MON", "10:15", "11:30"), ("MON", "09:00", "10:15"), False, id="touching2"),
        pytest.param(("MON", "09:00", "10:15"), ("TUE", "09:00", "10:15"), False, id="other-day"),
        pytest.param(("MON", "08:00", "09:00"), ("MON", "13:00", "14:00"), False, id="apart"),
        pytest.param(("MON", "10:14", "11:00"), ("MON", "09:00", "10:15"), True, id="one-min"),
    ],
)
def test_overlap(a: tuple[str, str, str], b: tuple[str, str, str], expected: bool) -> None:
    first, second = meeting(*a), meeting(*b)
    assert first.overlaps(second) is expected
    assert second.overlaps(first) is expected, "overlap must be symmetric"


@pytest.mark.parametrize(("start", "end"), [("10:00", "10:00"), ("11:00", "10:00")])
def test_meeting_must_end_after_it_starts(start: str, end: str) -> None:
    with pytest.raises(ValueError, match="end after"):
        meeting("MON", start, end)


def test_meeting_is_a_value() -> None:
    assert meeting() == meeting()
    assert hash(meeting()) == hash(meeting())
    assert meeting().day is Day.MON
    assert isinstance(meeting(), Meeting)


def test_window_is_half_open() -> None:
    w = window(T0, hours=2)
    assert not w.is_open_for(2, T0 - timedelta(microseconds=1))
    assert w.is_open_for(2, T0)
    assert w.is_open_for(2, T0 + timedelta(hours=2) - timedelta(microseconds=1))
    assert not w.is_open_for(2, T0 + timedelta(hours=2))


def test_class_year_opens_earlier_for_seniors_only() -> None:
    early = T0 - timedelta(hours=1)
    w = window(T0, hours=2, by_year={4: early})
    assert w.opens_for(4) == early
    assert w.opens_for(1) == T0
    between = T0 - timedelta(minutes=30)
    assert w.is_open_for(4, between)
    assert not w.is_open_for(1, between)
    assert not w.is_open_for(4, early - timedelta(seconds=1))
    # Everybody closes together.
    closes = T0 + timedelta(hours=2)
    assert not w.is_open_for(4, closes)
    assert w.is_open_for(1, closes - timedelta(seconds=1))


def test_class_year_can_also_open_later() -> None:
    late = T0 + timedelta(hours=1)
    w = RegistrationWindow(T0, T0 + timedelta(hours=2), {1: late})
    assert not w.is_open_for(1, T0)
    assert w.is_open_for(1, late)
    assert w.is_open_for(2, T0)
