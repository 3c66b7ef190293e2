"""VTIMEZONEs from the zone database: yearly RRULEs where they hold, never RDATE lists, and
read back (by the VTIMEZONE alone, not the zone's name) to the zone database's offsets."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import icalendar
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portal.calendar.vtimezone import Zones, tzid, vtimezone
from portal.timezones import time_zones

UTC = dt.UTC


def _read_back(zone: str, first: int, last: int) -> tuple[bytes, dt.tzinfo]:
    timezone = vtimezone(zone, first, last)
    assert timezone is not None
    text = timezone.to_ical()
    parsed = icalendar.Timezone.from_ical(text)
    assert isinstance(parsed, icalendar.Timezone)
    return text, parsed.to_tz(lookup_tzid=False)


def _offsets_agree(tz: dt.tzinfo, zone: str, first: int, last: int, step_days: int = 5) -> None:
    real = ZoneInfo(zone)
    moment = dt.datetime(first, 1, 1, 12, tzinfo=UTC)
    while moment.year <= last:
        assert moment.astimezone(tz).utcoffset() == moment.astimezone(real).utcoffset(), moment
        moment += dt.timedelta(days=step_days)


@pytest.mark.parametrize("zone", ["UTC", "Africa/Abidjan", "Atlantic/Reykjavik", "No/Such_Zone"])
def test_zones_written_in_utc_have_no_vtimezone(zone: str) -> None:
    assert tzid(zone) is None
    assert vtimezone(zone, 2026, 2026) is None


def test_a_zone_is_named_by_its_own_name() -> None:
    assert tzid("Europe/Berlin") == "Europe/Berlin"
    timezone = vtimezone("Europe/Berlin", 2026, 2026)
    assert timezone is not None
    assert timezone["TZID"] == "Europe/Berlin"


def test_a_daylight_saving_zone_is_one_rule_each_way_from_the_year_before() -> None:
    text, _ = _read_back("America/New_York", 2026, 2031)
    assert b"RDATE" not in text
    timezone = icalendar.Timezone.from_ical(text)
    assert isinstance(timezone, icalendar.Timezone)
    (daylight,) = timezone.walk("DAYLIGHT")
    (standard,) = timezone.walk("STANDARD")
    assert daylight["RRULE"].to_ical() == b"FREQ=YEARLY;BYDAY=2SU;BYMONTH=3"
    assert standard["RRULE"].to_ical() == b"FREQ=YEARLY;BYDAY=1SU;BYMONTH=11"
    # From the year before: a January time needs the previous autumn's onset.
    assert daylight.decoded("DTSTART") == dt.datetime(2025, 3, 9, 2, 0)
    assert standard.decoded("DTSTART") == dt.datetime(2025, 11, 2, 2, 0)


@pytest.mark.parametrize(
    ("zone", "year"),
    [
        ("America/Mexico_City", 2023),  # DST abolished in October 2022
        ("Asia/Gaza", 2026),  # Ramadan-dependent dates: no yearly rule fits
        ("Asia/Tokyo", 2026),  # no DST at all
        ("Australia/Lord_Howe", 2026),  # half-hour DST, southern hemisphere
        ("Europe/Dublin", 2026),  # "negative" DST in the zone database
        ("Africa/Casablanca", 2026),  # DST suspended for Ramadan, a month at a time
    ],
)
def test_vtimezones_of_unusual_zones_match_the_zone_database(zone: str, year: int) -> None:
    text, tz = _read_back(zone, year, year)
    assert b"RDATE" not in text
    _offsets_agree(tz, zone, year, year, step_days=1)


@settings(max_examples=80, deadline=None)
@given(
    zone=st.sampled_from([zone for zone in time_zones() if tzid(zone) is not None]),
    first=st.integers(1990, 2036),
    years=st.integers(0, 6),
)
def test_any_zones_vtimezone_gives_the_real_offsets(zone: str, first: int, years: int) -> None:
    text, tz = _read_back(zone, first, first + years)
    assert b"RDATE" not in text
    _offsets_agree(tz, zone, first, first + years)


def test_zones_note_the_years_their_times_fall_in() -> None:
    zones = Zones()
    moment = dt.datetime(2026, 12, 31, 23, 30, tzinfo=UTC)
    berlin = zones.local(moment, "Europe/Berlin")
    assert berlin == dt.datetime(2027, 1, 1, 0, 30, tzinfo=ZoneInfo("Europe/Berlin"))
    assert zones.local(moment, "UTC").tzinfo is UTC
    assert zones.local(moment, "Africa/Abidjan").tzinfo is UTC
    zones.local(dt.datetime(2029, 6, 1, tzinfo=UTC), "Europe/Berlin")
    zones.local(dt.datetime(2028, 6, 1, tzinfo=UTC), "America/New_York")
    assert zones.years == {"Europe/Berlin": (2027, 2029), "America/New_York": (2028, 2028)}
    assert [timezone["TZID"] for timezone in zones.timezones()] == [
        "America/New_York",
        "Europe/Berlin",
    ]
