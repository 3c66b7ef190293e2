"""The iCalendar the portal sends and serves, read back with icalendar field by field."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import icalendar
import pytest
from dateutil.rrule import rrulestr
from hypothesis import given, settings
from hypothesis import strategies as st

from portal.accounts.models import User
from portal.calendar import ics
from portal.calendar.models import ACCEPTED, CalendarEvent, EventParticipant
from portal.timezones import time_zones

UTC = dt.UTC
STAMP = dt.datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
JOIN = "https://portal.test/calendar/join/tok-ada"
BOSS = User(id=1, company_id=1, email="boss@acme.test", display_name="Grace Hopper")
ADA = EventParticipant(
    id=1, company_id=1, event_id=1, email="ada@acme.test", name="Ada Lovelace", join_token="a"
)
GUEST = EventParticipant(
    id=2, company_id=1, event_id=1, email="guest@example.org", partstat=ACCEPTED, join_token="g"
)


def _local(zone: str, *parts: int) -> dt.datetime:
    """A wall-clock time of `zone`, as the UTC time the database stores."""
    return dt.datetime(*parts, tzinfo=ZoneInfo(zone)).astimezone(UTC)


def _event(zone: str, start: dt.datetime, end: dt.datetime, **fields: Any) -> CalendarEvent:
    values: dict[str, Any] = {
        "id": 1,
        "company_id": 1,
        "organizer_id": 1,
        "uid": "series-1@portal.test",
        "title": "Planning",
        "time_zone": zone,
        "starts_at": start,
        "ends_at": end,
        "last_ends_at": end,
        "updated_at": STAMP,
    }
    return CalendarEvent(**(values | fields))


def _weekly(zone: str, start: dt.datetime, weeks: int, **fields: Any) -> CalendarEvent:
    """A one-hour weekly series of `weeks` occurrences starting at `start` (UTC)."""
    local = start.astimezone(ZoneInfo(zone))
    last = (local + dt.timedelta(weeks=weeks - 1)).astimezone(UTC)
    until = last.strftime("%Y%m%dT%H%M%SZ")
    return _event(
        zone,
        start,
        start + dt.timedelta(hours=1),
        rrule=f"FREQ=WEEKLY;UNTIL={until}",
        last_ends_at=last + dt.timedelta(hours=1),
        **fields,
    )


def _exception(series: CalendarEvent, original: dt.datetime, **fields: Any) -> CalendarEvent:
    """An exception row of `series` for the occurrence that started at `original` (UTC)."""
    start = fields.pop("starts_at", original)
    end = fields.pop("ends_at", start + dt.timedelta(hours=1))
    values: dict[str, Any] = {
        "id": 2,
        "series_id": series.id,
        "recurrence_id": original,
        "last_ends_at": end,
        "sequence": series.sequence,
    }
    return _event(series.time_zone, start, end, **(values | fields))


def _request(
    series: CalendarEvent, exceptions: list[CalendarEvent] | None = None, **kw: Any
) -> str:
    return ics.event_calendar(
        "REQUEST", series, exceptions or [], BOSS, [ADA, GUEST], dtstamp=STAMP, **kw
    )


def _vevents(text: str) -> list[icalendar.Event]:
    return list(ics.parse(text).walk("VEVENT"))


def _main(text: str) -> icalendar.Event:
    """The VEVENT of the series itself (the one without RECURRENCE-ID)."""
    (main,) = [event for event in _vevents(text) if "RECURRENCE-ID" not in event]
    return main


def _own_zone(text: str, tzid: str) -> dt.tzinfo:
    """The zone as the emitted VTIMEZONE defines it (not looked up by its name)."""
    (timezone,) = [tz for tz in ics.parse(text).walk("VTIMEZONE") if tz["TZID"] == tzid]
    return timezone.to_tz(lookup_tzid=False)


def _starts(event: icalendar.Event, tz: dt.tzinfo) -> list[dt.datetime]:
    """The VEVENT's occurrence starts (UTC), its RRULE expanded on the clock of `tz`."""
    wall = event.decoded("DTSTART").replace(tzinfo=None)
    rule = event["RRULE"].to_ical().decode()
    return [start.astimezone(UTC) for start in rrulestr(rule, dtstart=wall.replace(tzinfo=tz))]


def _wall_starts(zone: str, day: dt.date, time: dt.time, weeks: int) -> list[dt.datetime]:
    """Weekly starts (UTC) at the same wall-clock time of `zone`, by the zone database."""
    return [
        dt.datetime.combine(day + dt.timedelta(weeks=week), time, ZoneInfo(zone)).astimezone(UTC)
        for week in range(weeks)
    ]


def _offsets_agree(tz: dt.tzinfo, zone: str, year: int) -> None:
    real = ZoneInfo(zone)
    for month, day in [(1, 1), (1, 15), (4, 15), (7, 15), (10, 15), (12, 31)]:
        moment = dt.datetime(year, month, day, 12, tzinfo=UTC)
        assert moment.astimezone(tz).utcoffset() == moment.astimezone(real).utcoffset(), moment


def _rules(text: str) -> dict[str, tuple[list[int], list[str]]]:
    """Each VTIMEZONE observance's BYMONTH and BYDAY, by STANDARD / DAYLIGHT."""
    found = {}
    for part in ics.parse(text).walk():
        if part.name in {"STANDARD", "DAYLIGHT"}:
            rule = part["RRULE"]
            found[part.name] = ([int(m) for m in rule["BYMONTH"]], list(rule["BYDAY"]))
    return found


# --- A weekly series across a daylight-saving change --------------------------------------


@pytest.mark.parametrize(
    ("zone", "first", "summer", "rules"),
    [
        (
            "Europe/Berlin",
            (2026, 3, 16),
            3,  # 29 March: the third occurrence is the first in summer time
            {"DAYLIGHT": ([3], ["-1SU"]), "STANDARD": ([10], ["-1SU"])},
        ),
        (
            "America/New_York",
            (2026, 3, 2),
            2,  # 8 March
            {"DAYLIGHT": ([3], ["2SU"]), "STANDARD": ([11], ["1SU"])},
        ),
    ],
)
def test_a_weekly_series_stays_at_nine_across_the_change(
    zone: str, first: tuple[int, int, int], summer: int, rules: dict[str, Any]
) -> None:
    series = _weekly(zone, _local(zone, *first, 9, 0), weeks=7, sequence=3)
    text = _request(series)
    assert "RDATE" not in text
    (main,) = _vevents(text)
    assert main["DTSTART"].params["TZID"] == zone
    assert main.decoded("DTSTART").replace(tzinfo=None) == dt.datetime(*first, 9, 0)
    assert main["DTEND"].params["TZID"] == zone
    tz = _own_zone(text, zone)
    starts = _starts(main, tz)
    assert len(starts) == 7
    assert all(start.astimezone(ZoneInfo(zone)).hour == 9 for start in starts)
    assert starts == _wall_starts(zone, dt.date(*first), dt.time(9), weeks=7)
    # An hour earlier in UTC from the first summer-time occurrence on.
    assert starts[summer - 1] - starts[summer - 2] == dt.timedelta(weeks=1, hours=-1)
    assert _rules(text) == rules
    _offsets_agree(tz, zone, 2026)


def test_an_invitation_carries_what_mail_clients_read() -> None:
    series = _weekly("Europe/Berlin", _local("Europe/Berlin", 2026, 3, 16, 9, 0), 4, sequence=2)
    calendar = ics.parse(_request(series))
    assert calendar["METHOD"] == "REQUEST"
    assert calendar["VERSION"] == "2.0"
    assert calendar["PRODID"] == ics.PRODID
    assert calendar["CALSCALE"] == "GREGORIAN"
    (event,) = calendar.walk("VEVENT")
    assert event["UID"] == "series-1@portal.test"
    assert event["SEQUENCE"] == 2
    assert event.decoded("DTSTAMP") == STAMP
    assert event["DTSTAMP"].to_ical() == b"20260301T120000Z"
    assert event["SUMMARY"] == "Planning"
    assert event["STATUS"] == "CONFIRMED"
    assert event["ORGANIZER"] == "mailto:boss@acme.test"
    assert event["ORGANIZER"].params["CN"] == "Grace Hopper"
    ada, guest = event["ATTENDEE"]
    assert ada == "mailto:ada@acme.test"
    assert dict(ada.params) == {
        "CN": "Ada Lovelace",
        "CUTYPE": "INDIVIDUAL",
        "ROLE": "REQ-PARTICIPANT",
        "PARTSTAT": "NEEDS-ACTION",
        "RSVP": "TRUE",
    }
    # A guest without a name is named by their address.
    assert guest.params["CN"] == "guest@example.org"
    assert guest.params["PARTSTAT"] == "ACCEPTED"


def test_dtstamp_defaults_to_now_in_utc() -> None:
    single = _event(
        "Europe/Berlin",
        _local("Europe/Berlin", 2026, 6, 1, 9, 0),
        _local("Europe/Berlin", 2026, 6, 1, 10, 0),
    )
    before = dt.datetime.now(UTC).replace(microsecond=0)
    (event,) = _vevents(ics.event_calendar("REQUEST", single, [], BOSS, [ADA]))
    assert before <= event.decoded("DTSTAMP") <= dt.datetime.now(UTC)
    assert event["DTSTAMP"].to_ical().endswith(b"Z")


def test_an_event_in_utc_is_written_in_utc_without_a_vtimezone() -> None:
    single = _event(
        "UTC", dt.datetime(2026, 6, 1, 9, tzinfo=UTC), dt.datetime(2026, 6, 1, 10, tzinfo=UTC)
    )
    text = _request(single)
    assert "VTIMEZONE" not in text
    (event,) = _vevents(text)
    assert event["DTSTART"].to_ical() == b"20260601T090000Z"
    assert event["DTEND"].to_ical() == b"20260601T100000Z"


def test_an_all_day_event_is_dates_with_an_exclusive_end() -> None:
    zone = "Europe/Berlin"
    event = _event(
        zone, _local(zone, 2026, 5, 1, 0, 0), _local(zone, 2026, 5, 4, 0, 0), all_day=True
    )
    text = _request(event)
    (vevent,) = _vevents(text)
    assert vevent["DTSTART"].params["VALUE"] == "DATE"
    assert vevent.decoded("DTSTART") == dt.date(2026, 5, 1)
    assert vevent["DTEND"].params["VALUE"] == "DATE"
    assert vevent.decoded("DTEND") == dt.date(2026, 5, 4)  # 1, 2 and 3 May
    assert "VTIMEZONE" not in text


def test_an_all_day_series_excludes_a_cancelled_day_by_date() -> None:
    zone = "America/New_York"
    series = _event(
        zone,
        _local(zone, 2026, 3, 2, 0, 0),
        _local(zone, 2026, 3, 3, 0, 0),
        all_day=True,
        rrule="FREQ=WEEKLY;UNTIL=20260330",
    )
    gone = _exception(series, _local(zone, 2026, 3, 9, 0, 0), all_day=True, cancelled_at=STAMP)
    main = _main(_request(series, [gone]))
    assert main["RRULE"].to_ical() == b"FREQ=WEEKLY;UNTIL=20260330"
    assert main["EXDATE"].params["VALUE"] == "DATE"
    assert [d.dt for d in main["EXDATE"].dts] == [dt.date(2026, 3, 9)]


# --- Exceptions -----------------------------------------------------------------------------


def _series_with_exceptions() -> tuple[CalendarEvent, CalendarEvent, CalendarEvent]:
    zone = "Europe/Berlin"
    series = _weekly(zone, _local(zone, 2026, 3, 16, 9, 0), weeks=6, sequence=1)
    moved = _exception(
        series,
        _local(zone, 2026, 3, 30, 9, 0),
        starts_at=_local(zone, 2026, 3, 31, 14, 0),
        ends_at=_local(zone, 2026, 3, 31, 15, 30),
        title="Planning (moved)",
    )
    cancelled = _exception(series, _local(zone, 2026, 4, 6, 9, 0), id=3, cancelled_at=STAMP)
    return series, moved, cancelled


def test_a_moved_occurrence_gets_its_own_vevent_and_a_cancelled_one_an_exdate() -> None:
    series, moved, cancelled = _series_with_exceptions()
    text = _request(series, [moved, cancelled])
    main = _main(text)
    assert main["EXDATE"].params["TZID"] == "Europe/Berlin"
    assert [d.dt.replace(tzinfo=None) for d in main["EXDATE"].dts] == [dt.datetime(2026, 4, 6, 9)]
    (changed,) = [event for event in _vevents(text) if "RECURRENCE-ID" in event]
    assert changed["UID"] == main["UID"] == "series-1@portal.test"
    assert changed["RECURRENCE-ID"].params["TZID"] == main["DTSTART"].params["TZID"]
    assert changed.decoded("RECURRENCE-ID").replace(tzinfo=None) == dt.datetime(2026, 3, 30, 9)
    assert changed.decoded("DTSTART").replace(tzinfo=None) == dt.datetime(2026, 3, 31, 14)
    assert changed.decoded("DTEND").replace(tzinfo=None) == dt.datetime(2026, 3, 31, 15, 30)
    assert changed["SUMMARY"] == "Planning (moved)"
    assert changed["STATUS"] == "CONFIRMED"
    # What a client shows: the rule's dates, less the EXDATE, the moved one at its new time.
    tz = _own_zone(text, "Europe/Berlin")
    excluded = {d.dt.replace(tzinfo=tz).astimezone(UTC) for d in main["EXDATE"].dts}
    moved_from = changed.decoded("RECURRENCE-ID").replace(tzinfo=tz).astimezone(UTC)
    shown = [s for s in _starts(main, tz) if s not in excluded and s != moved_from]
    assert len(shown) == 4
    assert all(s.astimezone(ZoneInfo("Europe/Berlin")).hour == 9 for s in shown)


def test_an_update_raises_the_sequence_and_keeps_the_uid() -> None:
    series, moved, _ = _series_with_exceptions()
    before = _main(_request(series, [moved]))
    series.sequence, moved.sequence = 2, 2
    series.starts_at += dt.timedelta(hours=1)
    series.ends_at += dt.timedelta(hours=1)
    after_text = _request(series, [moved])
    after = _main(after_text)
    assert after["UID"] == before["UID"]
    assert after["SEQUENCE"] > before["SEQUENCE"]
    assert after.decoded("DTSTART").replace(tzinfo=None) == dt.datetime(2026, 3, 16, 10)
    assert {event["SEQUENCE"] for event in _vevents(after_text)} == {2}


# --- Cancellations ---------------------------------------------------------------------------


def test_cancelling_a_series_cancels_its_uid() -> None:
    series, moved, _ = _series_with_exceptions()
    series.sequence = 4
    text = ics.event_calendar("CANCEL", series, [moved], BOSS, [ADA], dtstamp=STAMP)
    calendar = ics.parse(text)
    assert calendar["METHOD"] == "CANCEL"
    (event,) = calendar.walk("VEVENT")
    assert event["UID"] == "series-1@portal.test"
    assert event["SEQUENCE"] == 4
    assert event["STATUS"] == "CANCELLED"
    assert "RECURRENCE-ID" not in event
    assert event["ATTENDEE"] == "mailto:ada@acme.test"


def test_cancelling_one_occurrence_names_it_by_recurrence_id() -> None:
    series, moved, cancelled = _series_with_exceptions()
    cancelled.sequence = 2
    text = ics.event_calendar(
        "CANCEL", series, [moved, cancelled], BOSS, [ADA, GUEST], only=cancelled, dtstamp=STAMP
    )
    assert ics.parse(text)["METHOD"] == "CANCEL"
    (event,) = _vevents(text)
    assert event["UID"] == series.uid
    assert event["STATUS"] == "CANCELLED"
    assert event["SEQUENCE"] == 2
    assert event["RECURRENCE-ID"].params["TZID"] == "Europe/Berlin"
    assert event.decoded("RECURRENCE-ID").replace(tzinfo=None) == dt.datetime(2026, 4, 6, 9)
    assert "VTIMEZONE" in text


# --- Names and rooms -------------------------------------------------------------------------


def test_quotes_and_line_breaks_leave_display_names() -> None:
    boss = User(id=1, company_id=1, email="boss@acme.test", display_name='Grace "Amazing" Hopper')
    guest = EventParticipant(
        id=3, company_id=1, event_id=1, email="x@example.org", name='Mr "X"\r\nY', join_token="x"
    )
    single = _event("UTC", STAMP, STAMP + dt.timedelta(hours=1))
    text = ics.event_calendar("REQUEST", single, [], boss, [guest], dtstamp=STAMP)
    assert "^'" not in text
    (event,) = _vevents(text)
    assert event["ORGANIZER"].params["CN"] == "Grace Amazing Hopper"
    assert event["ATTENDEE"].params["CN"] == "Mr X Y"


def test_the_room_link_is_the_location_url_and_last_line_of_the_description() -> None:
    single = _event(
        "UTC",
        STAMP,
        STAMP + dt.timedelta(hours=1),
        uses_room=True,
        location="Room 4.12",
        description="Agenda: budget",
    )
    (event,) = _vevents(_request(single, join_url=JOIN))
    assert event["LOCATION"] == f"{JOIN} / Room 4.12"
    assert event["URL"] == JOIN
    assert event["DESCRIPTION"] == f"Agenda: budget\n\nJoin: {JOIN}"


def test_the_room_link_alone_when_nothing_else_was_typed() -> None:
    single = _event("UTC", STAMP, STAMP + dt.timedelta(hours=1), uses_room=True)
    (event,) = _vevents(_request(single, join_url=JOIN))
    assert event["LOCATION"] == JOIN
    assert event["DESCRIPTION"] == f"Join: {JOIN}"


def test_no_room_no_link() -> None:
    single = _event("UTC", STAMP, STAMP + dt.timedelta(hours=1), location="Room 4.12")
    (event,) = _vevents(_request(single, join_url=JOIN))
    assert event["LOCATION"] == "Room 4.12"
    assert "URL" not in event
    assert "DESCRIPTION" not in event


# --- Time zones ------------------------------------------------------------------------------


@settings(max_examples=120, deadline=None)
@given(
    zone=st.sampled_from([zone for zone in time_zones() if zone != "UTC"]),
    day=st.dates(dt.date(2000, 1, 1), dt.date(2036, 12, 31)),
    weeks=st.integers(1, 80),
)
def test_any_zones_vtimezone_gives_the_real_offsets(zone: str, day: dt.date, weeks: int) -> None:
    start = dt.datetime.combine(day, dt.time(12), ZoneInfo(zone)).astimezone(UTC)
    series = _weekly(zone, start, weeks)
    text = _request(series)
    assert "RDATE" not in text
    if "VTIMEZONE" not in text:  # a zone icalendar writes as UTC
        assert _main(text)["DTSTART"].to_ical().endswith(b"Z")
        return
    tz = _own_zone(text, zone)
    for year in range(day.year, series.last_ends_at.year + 1):
        _offsets_agree(tz, zone, year)
    assert _starts(_main(text), tz) == _wall_starts(zone, day, dt.time(12), weeks)


# --- Feeds -----------------------------------------------------------------------------------


def test_a_feed_has_every_live_series_and_one_vtimezone_per_zone() -> None:
    series, moved, cancelled = _series_with_exceptions()
    zone = "Europe/Berlin"
    other = _event(
        zone,
        _local(zone, 2026, 7, 1, 9, 0),
        _local(zone, 2026, 7, 1, 10, 0),
        id=5,
        uid="other@portal.test",
    )
    gone = _event(
        zone,
        _local(zone, 2026, 7, 2, 9, 0),
        _local(zone, 2026, 7, 2, 10, 0),
        id=6,
        uid="gone@p",
        cancelled_at=STAMP,
    )
    entries = [
        ics.FeedEntry(series, [moved, cancelled], BOSS, [ADA]),
        ics.FeedEntry(other, [], BOSS, [ADA, GUEST]),
        ics.FeedEntry(gone, [], BOSS, [ADA]),
    ]
    text = ics.feed_calendar(entries, name="Ada's calendar")
    calendar = ics.parse(text)
    assert "METHOD" not in calendar
    assert calendar["X-WR-CALNAME"] == "Ada's calendar"
    assert [tz["TZID"] for tz in calendar.walk("VTIMEZONE")] == [zone]
    uids = [(event["UID"], "RECURRENCE-ID" in event) for event in calendar.walk("VEVENT")]
    assert sorted(uids) == [("other@portal.test", False), (series.uid, False), (series.uid, True)]
    assert "gone@p" not in text
    assert "RDATE" not in text
    # A feed's DTSTAMP is when the event last changed.
    assert {event.decoded("DTSTAMP") for event in calendar.walk("VEVENT")} == {STAMP}


def test_a_feed_shows_the_latest_answers_and_changes() -> None:
    zone = "Europe/Berlin"
    event = _event(zone, _local(zone, 2026, 7, 1, 9, 0), _local(zone, 2026, 7, 1, 10, 0))
    ada = EventParticipant(id=9, company_id=1, event_id=1, email="ada@acme.test", join_token="n")
    entry = ics.FeedEntry(event, [], BOSS, [ada])
    first = ics.feed_calendar([entry], name="Mine")
    assert ics.feed_calendar([entry], name="Mine") == first
    ada.partstat = ACCEPTED
    (vevent,) = _vevents(ics.feed_calendar([entry], name="Mine"))
    assert vevent["ATTENDEE"].params["PARTSTAT"] == "ACCEPTED"
    event.title = "Renamed"
    (vevent,) = _vevents(ics.feed_calendar([entry], name="Mine"))
    assert vevent["SUMMARY"] == "Renamed"


def test_a_feed_entry_carries_its_owners_room_link() -> None:
    event = _event("UTC", STAMP, STAMP + dt.timedelta(hours=1), uses_room=True)
    (vevent,) = _vevents(ics.feed_calendar([ics.FeedEntry(event, [], BOSS, [ADA], JOIN)], name="x"))
    assert vevent["URL"] == JOIN


def test_cancelling_one_occurrence_needs_an_exception() -> None:
    series, *_ = _series_with_exceptions()
    with pytest.raises(ValueError):
        ics.event_calendar("CANCEL", series, [], BOSS, [ADA], only=series)


def test_parse_refuses_what_is_not_a_calendar() -> None:
    with pytest.raises(ValueError):
        ics.parse("BEGIN:VEVENT\r\nUID:x\r\nEND:VEVENT\r\n")
