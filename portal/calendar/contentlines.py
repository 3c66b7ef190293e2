"""A VEVENT written straight to RFC 5545 content lines, for feeds too big to build with icalendar.

icalendar takes about half a millisecond a VEVENT (objects for every property and parameter,
then folding character by character); a feed holds thousands. This writer knows only the
properties the portal writes, and writes them as icalendar does: TEXT escaped, parameters
RFC 6868-escaped and quoted, DATE / DATE-TIME with TZID / UTC forms, lines folded at 75 octets.
tests/calendar/test_contentlines.py holds it to icalendar's reading of the same VEVENT.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from typing import NamedTuple

import icalendar

# Control characters have no place in TEXT or a parameter; line breaks are escaped apart.
CONTROLS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_TEXT_SPECIAL = re.compile("[\\\\;,\r\n\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_NOT_URI = re.compile("[\x00-\x1f\x7f-\x9f]")
_PLAIN_PARAM = re.compile("[A-Za-z0-9-]+")


class Address(NamedTuple):
    """An ORGANIZER or ATTENDEE: a mailto URI and its parameters, in writing order."""

    uri: str
    params: tuple[tuple[str, str], ...]


class Vevent(NamedTuple):
    """The values of one VEVENT."""

    summary: str
    start: dt.date  # a date (all-day), a zone's wall-clock time, or a UTC time
    end: dt.date
    stamp: dt.datetime  # UTC
    uid: str
    recurrence_id: dt.date | None
    sequence: int
    rule: str  # an RRULE value; "" when it does not repeat
    excluded: list[dt.date]
    description: str
    location: str
    url: str
    status: str
    attendees: tuple[Address, ...]
    organizer: Address


def write(event: Vevent) -> str:
    """The VEVENT as folded content lines, each ending in CRLF, in icalendar's order."""
    lines = [
        "BEGIN:VEVENT\r\n",
        _fold(f"SUMMARY:{_text(event.summary)}"),
        _moment("DTSTART", event.start),
        _moment("DTEND", event.end),
        _moment("DTSTAMP", event.stamp),
        _fold(f"UID:{_text(event.uid)}"),
    ]
    if event.recurrence_id is not None:
        lines.append(_moment("RECURRENCE-ID", event.recurrence_id))
    lines.append(f"SEQUENCE:{int(event.sequence)}\r\n")
    if event.rule:
        lines.append(_rule(event.rule))
    if event.excluded:
        lines.append(_moments("EXDATE", event.excluded))
    lines += [_address("ATTENDEE", person) for person in event.attendees]
    # Left out when empty, as icalendar's are (control characters gone).
    if event.description and (description := _text(event.description)):
        lines.append(_fold(f"DESCRIPTION:{description}"))
    if event.location and (location := _text(event.location)):
        lines.append(_fold(f"LOCATION:{location}"))
    lines += [_address("ORGANIZER", event.organizer), f"STATUS:{_token(event.status)}\r\n"]
    if event.url:
        lines.append(_fold(f"URL:{_uri(event.url)}"))
    lines.append("END:VEVENT\r\n")
    return "".join(lines)


def _text(value: str) -> str:
    """A TEXT value: backslash, semicolon and comma escaped, each line break written as \\n."""
    if _TEXT_SPECIAL.search(value) is None:
        return value
    return (
        CONTROLS.sub("", value)
        .replace("\\", "\\\\")
        .replace(";", "\\;")
        .replace(",", "\\,")
        .replace("\r\n", "\\n")
        .replace("\n", "\\n")
        .replace("\r", "\\n")
    )


def _token(value: str) -> str:
    if not _PLAIN_PARAM.fullmatch(value):
        raise ValueError(f"not a plain word: {value!r}")
    return value


def _uri(value: str) -> str:
    """A URI as it is; one with a control character would break the line, so it is refused."""
    if _NOT_URI.search(value):
        raise ValueError(f"not a URI: {value!r}")
    return value


# The same people are on event after event of a feed: each is written once.
@functools.lru_cache(maxsize=8192)
def _address(name: str, address: Address) -> str:
    params = "".join(f";{key}={_param(value)}" for key, value in address.params)
    return _fold(f"{name}{params}:{_uri(address.uri)}")


def _param(value: str) -> str:
    """A parameter value, RFC 6868-escaped, quoted unless it is a plain word."""
    value = CONTROLS.sub("", value).replace("^", "^^").replace('"', "^'")
    value = value.replace("\r\n", "^n").replace("\n", "^n").replace("\r", "^n")
    return value if _PLAIN_PARAM.fullmatch(value) else f'"{value}"'


@functools.lru_cache(maxsize=1024)
def _rule(value: str) -> str:
    """The RRULE as icalendar writes it, read and written once per distinct rule."""
    return _fold(f"RRULE:{_uri(icalendar.vRecur.from_ical(value).to_ical().decode())}")


def _moment(name: str, moment: dt.date) -> str:
    """A DATE, a DATE-TIME on the wall clock of a TZID, or a UTC DATE-TIME (`Z`)."""
    params, value = _typed(moment)
    return _fold(f"{name}{params}:{value}")


def _moments(name: str, moments: list[dt.date]) -> str:
    """A list of values typed alike (EXDATE): all dates, all in one zone, or all UTC."""
    typed = [_typed(moment) for moment in moments]
    return _fold(f"{name}{typed[0][0]}:{','.join([value for _, value in typed])}")


def _typed(moment: dt.date) -> tuple[str, str]:
    """The parameter that types `moment` and its value."""
    if not isinstance(moment, dt.datetime):
        return ";VALUE=DATE", f"{moment.year:04}{moment.month:02}{moment.day:02}"
    if moment.tzinfo is dt.UTC:
        return "", f"{_digits(moment)}Z"
    if moment.tzinfo is None:
        raise ValueError(f"a time without a zone: {moment!r}")
    return f";TZID={moment.tzinfo}", _digits(moment)


def _digits(moment: dt.datetime) -> str:
    # %-formatting the fields is the quickest way (isoformat and timetuple ask the zone).
    return "%04d%02d%02dT%02d%02d%02d" % (  # noqa: UP031
        moment.year, moment.month, moment.day, moment.hour, moment.minute, moment.second
    )  # fmt: skip


def _fold(line: str) -> str:
    """`line` folded into lines of at most 75 octets, never inside a UTF-8 character or an
    escape (some clients misread a backslash or caret escape split by a fold)."""
    if len(line) <= 75 and (line.isascii() or len(line.encode()) <= 75):
        return line + "\r\n"
    data = line.encode()
    parts = []
    start, room = 0, 75
    while len(data) - start > room:
        cut = start + room
        while data[cut] & 0xC0 == 0x80:  # a UTF-8 continuation byte
            cut -= 1
        if data[cut - 1] in b"\\^" and _escapes_open(data[start:cut]):
            cut -= 1  # the escape goes whole onto the next line
        parts.append(data[start:cut])
        # A continuation line starts with the space that folds it.
        start, room = cut, 74
    parts.append(data[start:])
    return b"\r\n ".join(parts).decode() + "\r\n"


def _escapes_open(part: bytes) -> bool:
    """Whether `part` ends inside an escape: an odd run of backslashes (or carets) ends it."""
    run = len(part) - len(part.rstrip(part[-1:]))
    return run % 2 == 1 and run < len(part)
