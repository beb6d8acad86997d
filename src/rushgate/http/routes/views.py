"""Port records -> response bodies, shared by the routers."""

from __future__ import annotations

from collections.abc import Iterable

from rushgate.domain.model import Meeting
from rushgate.http.schemas import MeetingOut, SectionOut, TermOut, WaitingRoomSettings
from rushgate.services.ports.enrollment import SectionView
from rushgate.services.ports.registry import Term


def meetings_out(meetings: Iterable[Meeting]) -> list[MeetingOut]:
    return [
        MeetingOut(day=m.day, start=m.start.strftime("%H:%M"), end=m.end.strftime("%H:%M"))
        for m in meetings
    ]


def section_out(s: SectionView) -> SectionOut:
    return SectionOut(
        section_id=s.section_id,
        course_code=s.course_code,
        title=s.title,
        credits=s.credits,
        capacity=s.capacity,
        enrolled=s.enrolled,
        seats_left=s.seats_left,
        waitlist_capacity=s.waitlist_capacity,
        waitlisted=s.waitlisted,
        meetings=meetings_out(s.meetings),
    )


def term_out(t: Term) -> TermOut:
    return TermOut(
        code=t.code,
        name=t.name,
        opens_at=t.window.opens_at,
        closes_at=t.window.closes_at,
        class_year_opens_at=dict(t.window.class_year_opens_at),
        waiting_room=WaitingRoomSettings(
            enabled=t.waiting_room_enabled,
            admit_per_second=t.admit_per_second,
            max_active=t.max_active,
            admission_ttl_seconds=t.admission_ttl_seconds,
        ),
        admission_paused=t.admission_paused,
    )
