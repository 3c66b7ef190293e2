"""The feed's own VEVENT writer, held to icalendar: what icalendar reads from the feed is what
it reads from the invitation icalendar built for the same event."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import icalendar
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portal.accounts.models import User
from portal.calendar import contentlines, ics
from portal.calendar.models import (
    ACCEPTED,
    DECLINED,
    NEEDS_ACTION,
    TENTATIVE,
    CalendarEvent,
    EventParticipant,
)

UTC = dt.UTC
STAMP = dt.datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
JOIN = "https://portal.test/calendar/join/tok-ada"
# UTC itself, a zone icalendar writes as UTC, odd offsets and odd daylight-saving rules.
ZONES = [
    "UTC",
    "Africa/Abidjan",
    "Europe/Berlin",
    "America/New_York",
    "Asia/Kolkata",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
    "America/Argentina/ComodRivadavia",
]

# Text that needs escaping, quoting or folding: unicode of every width, the TEXT and parameter
# specials, every kind of line break, control characters, and long runs of all of them.
_tricky = st.sampled_from(
    [",", ";", ":", "\\", "\n", "\r\n", "\r", '"', "'", "^", "^n", "\\n", "\t", "\x00", "\x1b",
     "\x7f", "\x85", "\u2028", "é", "ß", "€", "日本", "🎉", "👩‍👩‍👧", "e\u0301", " ", "  "]
)  # fmt: skip
_text = st.lists(st.one_of(_tricky, st.text(max_size=12)), max_size=40).map("".join)
# icalendar turns a typed backslash + N into a line break (it reads it as an escaped newline);
# the writer keeps it (test_a_backslash_n_stays_as_typed), so it is left out of the comparison.
_comparable_text = _text.filter(lambda text: "\\N" not in text)
_naive = st.datetimes(dt.datetime(1999, 1, 1), dt.datetime(2037, 12, 31))


def _utc(moment: dt.datetime, zone: str, all_day: bool) -> dt.datetime:
    if all_day:
        moment = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return moment.replace(tzinfo=ZoneInfo(zone)).astimezone(UTC)


@st.composite
def _calendars(draw: st.DrawFn) -> dict[str, Any]:
    """A series (or single event) with exceptions, its organizer and participants."""
    zone, all_day = draw(st.sampled_from(ZONES)), draw(st.booleans())
    start = _utc(draw(_naive), zone, all_day)
    length = dt.timedelta(days=draw(st.integers(1, 3))) if all_day else dt.timedelta(
        minutes=draw(st.integers(1, 600)), microseconds=draw(st.integers(0, 999_999))
    )  # fmt: skip
    weeks = draw(st.integers(1, 30))
    repeats = draw(st.booleans())
    until = (start + dt.timedelta(weeks=weeks)).strftime("%Y%m%d" if all_day else "%Y%m%dT%H%M%SZ")
    uses_room = draw(st.booleans())
    series = _row(
        zone,
        all_day,
        start,
        start + length,
        id=1,
        uid=draw(st.sampled_from(["series-1@portal.test", "a,b;c\\d@x"])),
        sequence=draw(st.integers(0, 40)),
        title=draw(_comparable_text),
        description=draw(_comparable_text),
        location=draw(_comparable_text),
        rrule=draw(st.sampled_from([f"FREQ=WEEKLY;COUNT={weeks}", f"FREQ=DAILY;UNTIL={until}",
                                    "FREQ=MONTHLY;BYDAY=-1FR;COUNT=5"])) if repeats else "",
        uses_room=uses_room,
    )  # fmt: skip
    exceptions = []
    if repeats:
        for number, week in enumerate(draw(st.sets(st.integers(1, weeks), max_size=4)), start=2):
            original = start + dt.timedelta(weeks=week)
            moved = original + dt.timedelta(days=draw(st.integers(-2, 2)))
            exceptions.append(
                _row(
                    zone,
                    all_day,
                    moved,
                    moved + length,
                    id=number,
                    series_id=1,
                    recurrence_id=original,
                    cancelled_at=STAMP if draw(st.booleans()) else None,
                    title=draw(_comparable_text),
                    location=draw(_comparable_text),
                    uses_room=uses_room,
                )
            )
    organizer = User(id=1, company_id=1, email="boss@acme.test", display_name=draw(_text))
    participants = [
        EventParticipant(
            id=number,
            company_id=1,
            event_id=1,
            email=draw(st.emails()),
            name=draw(st.one_of(st.just(""), _text)),
            partstat=draw(st.sampled_from([NEEDS_ACTION, ACCEPTED, DECLINED, TENTATIVE])),
            join_token=f"t{number}",
        )
        for number in range(draw(st.integers(0, 4)))
    ]
    join_url = draw(st.sampled_from([None, JOIN, JOIN + "?a=1&b=%2C"]))
    return {
        "series": series,
        "exceptions": exceptions,
        "organizer": organizer,
        "participants": participants,
        "join_url": join_url,
    }


def _row(
    zone: str, all_day: bool, start: dt.datetime, end: dt.datetime, **fields: Any
) -> CalendarEvent:
    values: dict[str, Any] = {
        "company_id": 1,
        "organizer_id": 1,
        "uid": "series-1@portal.test",
        "title": "Planning",
        "time_zone": zone,
        "all_day": all_day,
        "starts_at": start,
        "ends_at": end,
        "last_ends_at": end + dt.timedelta(weeks=60),
        "updated_at": STAMP,
    }
    return CalendarEvent(**(values | fields))


def _invitation(calendar: dict[str, Any]) -> str:
    return ics.event_calendar("REQUEST", **calendar, dtstamp=STAMP)


def _feed(calendar: dict[str, Any]) -> str:
    return ics.feed_calendar([ics.FeedEntry(**calendar)], name="Feed")


def _read(component: icalendar.cal.component.Component) -> list[tuple[str, bytes, dict[str, str]]]:
    """Each property as icalendar reads it: name, value (written back), parameters."""
    return [
        (name, value.to_ical(), dict(value.params))
        for name, value in component.property_items(recursive=False)
        if name not in {"BEGIN", "END"}
    ]


def _physical_lines(text: str) -> list[bytes]:
    data = text.encode()
    assert data.endswith(b"\r\n")
    lines = data[:-2].split(b"\r\n")
    assert all(b"\r" not in line and b"\n" not in line for line in lines)
    return lines


@settings(max_examples=300, deadline=None)
@given(calendar=_calendars())
def test_icalendar_reads_the_feed_as_it_reads_the_invitation(calendar: dict[str, Any]) -> None:
    invitation, feed = ics.parse(_invitation(calendar)), ics.parse(_feed(calendar))
    assert [_read(event) for event in feed.walk("VEVENT")] == [
        _read(event) for event in invitation.walk("VEVENT")
    ]
    assert [tz.to_ical() for tz in feed.walk("VTIMEZONE")] == [
        tz.to_ical() for tz in invitation.walk("VTIMEZONE")
    ]


@settings(max_examples=300, deadline=None)
@given(calendar=_calendars())
def test_the_feed_is_well_formed_and_writes_times_as_the_invitation_does(
    calendar: dict[str, Any],
) -> None:
    text = _feed(calendar)
    lines = _physical_lines(text)
    assert all(len(line) <= 75 for line in lines)
    # Folded only between characters: each physical line is UTF-8 on its own.
    for line in lines:
        line.decode()
    timed = ("DTSTART", "DTEND", "DTSTAMP", "RECURRENCE-ID", "EXDATE", "RRULE", "SEQUENCE")

    def times(text: str) -> list[str]:
        unfolded = text.replace("\r\n ", "").split("\r\n")
        return [line for line in unfolded if line.startswith(timed)]

    assert times(text) == times(_invitation(calendar))


def _single(**fields: Any) -> CalendarEvent:
    start = dt.datetime(2026, 6, 1, 9, tzinfo=UTC)
    return _row("Europe/Berlin", False, start, start + dt.timedelta(hours=1), **fields)


def _feed_vevent(event: CalendarEvent, *people: EventParticipant, join: str | None = None) -> str:
    boss = User(id=1, company_id=1, email="boss@acme.test", display_name="Grace Hopper")
    text = ics.feed_calendar([ics.FeedEntry(event, [], boss, list(people), join)], name="x")
    return text[text.index("BEGIN:VEVENT") :]


def test_text_is_escaped_and_line_breaks_are_written_as_backslash_n() -> None:
    text = _feed_vevent(_single(title="a,b;c\\d\r\ne\nf\rg"))
    assert "SUMMARY:a\\,b\\;c\\\\d\\ne\\nf\\ng\r\n" in text


def test_a_backslash_n_stays_as_typed() -> None:
    # icalendar writes "C:\Notes" as "C:\notes", which every reader turns into a line break.
    text = _feed_vevent(_single(title="C:\\Notes"))
    assert "SUMMARY:C:\\\\Notes\r\n" in text


def test_control_characters_are_left_out() -> None:
    text = _feed_vevent(_single(title="a\x00b\x1bc\x7fd\x85e\tf"))
    assert "SUMMARY:abcde\tf\r\n" in text


def test_long_lines_fold_at_75_octets_between_characters() -> None:
    title = "€" * 60 + "a" * 30 + "日本" * 30
    text = _feed_vevent(_single(title=title, description="x" * 500))
    lines = _physical_lines(text)
    assert max(len(line) for line in lines) == 75
    assert all(len(line) <= 75 for line in lines)
    unfolded = text.replace("\r\n ", "")
    assert f"SUMMARY:{title}\r\n" in unfolded
    assert f"DESCRIPTION:{'x' * 500}\r\n" in unfolded


@pytest.mark.parametrize("offset", range(6))
def test_a_fold_never_splits_an_escape(offset: int) -> None:
    title = "a" * offset + ",;\\" * 60
    text = _feed_vevent(_single(title=title))
    for line in _physical_lines(text):
        body = line[1:] if line.startswith(b" ") else line
        run = len(body) - len(body.rstrip(b"\\"))
        assert run % 2 == 0, line  # no backslash left waiting for its next line
    assert f"SUMMARY:{contentlines._text(title)}" in text.replace("\r\n ", "")


def test_names_are_quoted_and_carets_escaped() -> None:
    guest = EventParticipant(
        id=1, company_id=1, event_id=1, email="g@example.org", name="O'Neil; ^Boss^, Jr: X",
        partstat=ACCEPTED, join_token="g",
    )  # fmt: skip
    text = _feed_vevent(_single(), guest)
    assert 'CN="O\'Neil; ^^Boss^^, Jr: X"' in text.replace("\r\n ", "")
    (event,) = ics.parse(f"BEGIN:VCALENDAR\r\n{text}").walk("VEVENT")
    assert event["ATTENDEE"].params["CN"] == "O'Neil; ^Boss^, Jr: X"
    assert event["ATTENDEE"].params["PARTSTAT"] == "ACCEPTED"


def test_a_link_with_a_line_break_is_refused() -> None:
    with pytest.raises(ValueError):
        _feed_vevent(_single(uses_room=True), join="https://x.test/\r\nATTENDEE:mailto:evil")


def test_a_time_without_a_zone_is_refused() -> None:
    event = contentlines.Vevent(
        summary="x",
        start=dt.datetime(2026, 1, 1),
        end=dt.datetime(2026, 1, 1),
        stamp=STAMP,
        uid="u",
        recurrence_id=None,
        sequence=0,
        rule="",
        excluded=[],
        description="",
        location="",
        url="",
        status="CONFIRMED",
        attendees=(),
        organizer=contentlines.Address("mailto:a@b.c", ()),
    )
    with pytest.raises(ValueError):
        contentlines.write(event)
