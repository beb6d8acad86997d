"""Row <-> domain conversions shared by repositories and reads."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, time
from typing import Any

from rushgate.domain.model import Day, Meeting, RegistrationWindow


def meetings_to_json(meetings: Iterable[Meeting]) -> list[dict[str, str]]:
    return [
        {"day": m.day.value, "start": m.start.strftime("%H:%M"), "end": m.end.strftime("%H:%M")}
        for m in meetings
    ]


def meetings_from_json(raw: Iterable[Mapping[str, str]]) -> tuple[Meeting, ...]:
    return tuple(
        Meeting(Day(m["day"]), time.fromisoformat(m["start"]), time.fromisoformat(m["end"]))
        for m in raw
    )


def window_to_json(window: RegistrationWindow) -> dict[str, str]:
    return {str(year): at.isoformat() for year, at in window.class_year_opens_at.items()}


def window_from_row(opens_at: datetime, closes_at: datetime, by_year: Any) -> RegistrationWindow:
    return RegistrationWindow(
        opens_at=opens_at,
        closes_at=closes_at,
        class_year_opens_at={
            int(year): datetime.fromisoformat(at) for year, at in (by_year or {}).items()
        },
    )
