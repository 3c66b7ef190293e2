"""Reading the event form's dates, times and repeats: DST days, impossible dates, the cap."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest

from portal.calendar.models import CalendarEvent
from portal.calendar.recurrence import MAX_OCCURRENCES, last_end, series_starts
from portal.calendar.times import (
    EventTimes,
    Repeat,
    event_times,
    instant,
    parse_date,
    parse_time,
    repeat_rule,
)
from portal.forms import FormErrors

UTC = dt.UTC


def timed(day: str, start: str, end: str, zone: str = "Europe/Berlin") -> EventTimes:
    return event_times(
        start_date=day, start_time=start, end_date="", end_time=end, time_zone=zone, all_day=False
    )


def refused(read: Callable[[], object]) -> dict[str, str]:
    with pytest.raises(FormErrors) as error:
        read()
    return error.value.errors


@pytest.mark.parametrize(
    ("zone", "day", "clock", "utc", "taken"),
    [
        (
            "Europe/Berlin",
            dt.date(2026, 3, 29),
            dt.time(2, 30),
            dt.datetime(2026, 3, 29, 1, 30),
            "03:30",
        ),
        (
            "America/New_York",
            dt.date(2026, 3, 8),
            dt.time(2, 30),
            dt.datetime(2026, 3, 8, 7, 30),
            "03:30",
        ),
    ],
)
def test_a_time_in_the_spring_gap_is_the_instant_after_it(
    zone: str, day: dt.date, clock: dt.time, utc: dt.datetime, taken: str
) -> None:
    moment, note = instant(day, clock, zone)
    assert moment == utc.replace(tzinfo=UTC)
    assert note is not None and f"the event starts at {taken}." in note
    assert "clocks go forward" in note and zone in note


def test_the_berlin_gap_note_says_exactly_what_happened() -> None:
    times = timed("2026-03-29", "02:30", "04:00")
    assert times.notes == [
        "02:30 does not exist on 29 Mar 2026 in Europe/Berlin (clocks go forward); "
        "the event starts at 03:30."
    ]


@pytest.mark.parametrize(
    ("zone", "day", "clock", "first", "second"),
    [
        ("Europe/Berlin", dt.date(2026, 10, 25), dt.time(2, 30), "UTC+02:00", "UTC+01:00"),
        ("America/New_York", dt.date(2026, 11, 1), dt.time(1, 30), "UTC-04:00", "UTC-05:00"),
    ],
)
def test_a_time_that_happens_twice_is_the_first_and_the_note_names_both_offsets(
    zone: str, day: dt.date, clock: dt.time, first: str, second: str
) -> None:
    moment, note = instant(day, clock, zone)
    assert moment.astimezone(dt.timezone(dt.timedelta(hours=int(first[3:6])))).time() == clock
    assert note is not None and "clocks go back" in note
    assert f"the first {clock:%H:%M} ({first}), not the second ({second})" in note


def test_ordinary_times_have_no_note() -> None:
    moment, note = instant(dt.date(2026, 7, 1), dt.time(9), "America/New_York")
    assert moment == dt.datetime(2026, 7, 1, 13, tzinfo=UTC) and note is None


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("2026-02-30", "There is no 30 February 2026."),
        ("2025-02-29", "There is no 29 February 2025."),
        ("2026-13-01", "Enter the start date as YYYY-MM-DD."),
        ("\u0662\u0660\u0662\u0666-01-01", "Enter the start date as YYYY-MM-DD."),
        ("2026-\u0660\u0661-01", "Enter the start date as YYYY-MM-DD."),
        ("2026-1-1", "Enter the start date as YYYY-MM-DD."),
        ("", "Enter the start date."),
        ("0001-01-01", "Pick a start date between 1970 and 2999."),
    ],
)
def test_bad_dates_are_refused_with_a_message(raw: str, message: str) -> None:
    assert refused(lambda: parse_date(raw, "start_date", "start date")) == {"start_date": message}


@pytest.mark.parametrize("raw", ["24:00", "9:60", "\u0669:00", "09.00", "nine", "09:00:00"])
def test_bad_times_are_refused(raw: str) -> None:
    assert "start_time" in refused(lambda: parse_time(raw, "start_time"))


def test_end_must_be_after_start_and_every_bad_field_is_named() -> None:
    assert refused(lambda: timed("2026-12-01", "10:00", "10:00")) == {
        "end_time": "The event must end after it starts."
    }
    errors = refused(
        lambda: event_times(
            start_date="2026-02-30",
            start_time="x",
            end_date="",
            end_time="10:00",
            time_zone="Mars/Olympus",
            all_day=False,
        )
    )
    # The empty end date is the start's day: its one message is on the start date.
    assert set(errors) == {"start_date", "start_time", "time_zone"}
    assert "not a time zone we know" in errors["time_zone"]


def test_an_all_day_event_is_midnights_of_its_zone_the_end_exclusive() -> None:
    times = event_times(
        start_date="2026-03-28",
        start_time="",
        end_date="2026-03-29",
        end_time="",
        time_zone="Europe/Berlin",
        all_day=True,
    )
    assert times.starts_at == dt.datetime(2026, 3, 27, 23, tzinfo=UTC)
    # Midnight after the spring change is an hour earlier in UTC.
    assert times.ends_at == dt.datetime(2026, 3, 29, 22, tzinfo=UTC)
    assert refused(
        lambda: event_times(
            start_date="2026-03-28",
            start_time="",
            end_date="2026-03-27",
            end_time="",
            time_zone="Europe/Berlin",
            all_day=True,
        )
    ) == {"end_date": "The event must end after it starts."}


def _series(times: EventTimes, rrule: str) -> CalendarEvent:
    return CalendarEvent(
        company_id=1,
        organizer_id=1,
        uid="x",
        title="x",
        time_zone=times.time_zone,
        all_day=times.all_day,
        starts_at=times.starts_at,
        ends_at=times.ends_at,
        last_ends_at=times.ends_at,
        rrule=rrule,
    )


def test_never_ending_weekly_is_bounded_at_two_years_and_says_so() -> None:
    times = timed("2026-11-30", "09:00", "10:00")
    rule = repeat_rule(Repeat("weekly", [], "never", "", ""), times)
    assert rule.rrule == "FREQ=WEEKLY;BYDAY=MO;UNTIL=20281127T080000Z"
    assert rule.notes == [
        "Repeats until 27 Nov 2028: a series is limited to 2 years or 500 occurrences."
    ]
    starts = series_starts(_series(times, rule.rrule))
    # 09:00 in Berlin all along: 08:00 UTC in winter, 07:00 in summer.
    assert starts[-1] == dt.datetime(2028, 11, 27, 8, tzinfo=UTC)
    assert dt.datetime(2027, 7, 5, 7, tzinfo=UTC) in starts


def test_never_ending_daily_stops_at_five_hundred() -> None:
    times = timed("2026-11-30", "09:00", "10:00")
    rule = repeat_rule(Repeat("daily", [], "never", "", ""), times)
    assert len(series_starts(_series(times, rule.rrule))) == MAX_OCCURRENCES
    assert rule.notes == [
        "Repeats until 12 Apr 2028: a series is limited to 2 years or 500 occurrences."
    ]


@pytest.mark.parametrize(
    ("repeat", "expected", "capped"),
    [
        (Repeat("daily", [], "after", "", "10"), "FREQ=DAILY;COUNT=10", False),
        (Repeat("daily", [], "after", "", "999999"), "FREQ=DAILY;UNTIL=20280412T070000Z", True),
        (
            Repeat("weekly", [], "after", "", "200"),
            "FREQ=WEEKLY;BYDAY=MO;UNTIL=20281127T080000Z",
            True,
        ),
        (Repeat("daily", [], "on", "2026-12-03", ""), "FREQ=DAILY;UNTIL=20261203T225959Z", False),
        (
            Repeat("weekly", [], "on", "2040-01-01", ""),
            "FREQ=WEEKLY;BYDAY=MO;UNTIL=20281127T080000Z",
            True,
        ),
        (Repeat("monthly_date", [], "after", "", "3"), "FREQ=MONTHLY;BYMONTHDAY=30;COUNT=3", False),
        # 30 Nov 2026 is the fifth Monday: the month's last.
        (Repeat("monthly_weekday", [], "after", "", "3"), "FREQ=MONTHLY;BYDAY=-1MO;COUNT=3", False),
    ],
)
def test_repeat_rules_are_bounded(repeat: Repeat, expected: str, capped: bool) -> None:
    rule = repeat_rule(repeat, timed("2026-11-30", "09:00", "10:00"))
    assert rule.rrule == expected
    assert bool(rule.notes) == capped


def test_monthly_on_the_second_tuesday() -> None:
    rule = repeat_rule(
        Repeat("monthly_weekday", [], "after", "", "2"), timed("2026-12-08", "09:00", "10:00")
    )
    assert rule.rrule == "FREQ=MONTHLY;BYDAY=2TU;COUNT=2"


def test_weekly_on_other_days_starts_on_the_first_of_them() -> None:
    times = timed("2026-11-30", "09:00", "10:00")  # a Monday
    rule = repeat_rule(Repeat("weekly", ["FR", "WE"], "after", "", "4"), times)
    assert rule.rrule == "FREQ=WEEKLY;BYDAY=WE,FR;COUNT=4"
    assert rule.times.starts_at == dt.datetime(2026, 12, 2, 8, tzinfo=UTC)
    assert rule.times.ends_at == dt.datetime(2026, 12, 2, 9, tzinfo=UTC)
    assert "The first occurrence is on Wed 2 Dec 2026" in rule.notes[0]


def test_all_day_series_end_on_a_date() -> None:
    times = event_times(
        start_date="2026-11-30",
        start_time="",
        end_date="",
        end_time="",
        time_zone="Europe/Berlin",
        all_day=True,
    )
    rule = repeat_rule(Repeat("weekly", [], "never", "", ""), times)
    assert rule.rrule == "FREQ=WEEKLY;BYDAY=MO;UNTIL=20281127"
    series = _series(times, rule.rrule)
    assert last_end(series) == dt.datetime(2028, 11, 27, 23, tzinfo=UTC)


@pytest.mark.parametrize(
    ("repeat", "field"),
    [
        (Repeat("hourly", [], "never", "", ""), "repeat"),
        (Repeat("weekly", ["XX"], "never", "", ""), "weekdays"),
        (Repeat("daily", [], "after", "", "0"), "count"),
        (Repeat("daily", [], "after", "", "\u0663"), "count"),
        (Repeat("daily", [], "on", "2026-02-30", ""), "until"),
        (Repeat("daily", [], "on", "2026-11-01", ""), "until"),
        (Repeat("daily", [], "sometime", "", ""), "ends"),
    ],
)
def test_bad_repeat_choices_are_refused(repeat: Repeat, field: str) -> None:
    times = timed("2026-11-30", "09:00", "10:00")
    assert field in refused(lambda: repeat_rule(repeat, times))
