"""The event form: what it sent (EventInput), checked all at once into what is stored (Checked):
texts, times and repeat rule, participants, reminders."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from portal.accounts.models import User
from portal.calendar.invitees import Guest, guests
from portal.calendar.models import DESCRIPTION_MAX, LOCATION_MAX, TITLE_MAX
from portal.calendar.times import EventTimes, Repeat, collect, event_times, repeat_rule
from portal.forms import FormErrors

MAX_REMINDERS = 5
REMINDER_UNITS = {"minutes": 1, "hours": 60, "days": 24 * 60}
REMINDER_MAX_MINUTES = 4 * 7 * 24 * 60

_AMOUNT = re.compile(r"[0-9]{1,6}")


@dataclass
class EventInput:
    """The event form as typed: every value a string (or list of them) until it is checked."""

    title: str = ""
    description: str = ""
    location: str = ""
    start_date: str = ""
    start_time: str = ""
    end_date: str = ""
    end_time: str = ""
    time_zone: str = ""
    all_day: bool = False
    participant_ids: list[str] = field(default_factory=list)
    emails: str = ""
    # (amount, unit) with unit one of REMINDER_UNITS.
    reminders: list[tuple[str, str]] = field(default_factory=list)
    # "" | "daily" | "weekly" | "monthly_date" | "monthly_weekday"
    repeat: str = ""
    weekdays: list[str] = field(default_factory=list)
    # "never" | "on" | "after"
    ends: str = "never"
    until: str = ""
    count: str = ""
    uses_room: bool = False
    # The create form's per-Save key: the same Save arriving again finds the first event.
    request_key: str = ""


@dataclass
class Checked:
    """The form, checked: what is stored."""

    title: str
    description: str
    location: str
    times: EventTimes
    rrule: str
    guests: list[Guest]
    reminders: set[int]
    uses_room: bool
    notes: list[str]


async def check(
    session: AsyncSession,
    organizer: User,
    data: EventInput,
    *,
    repeats: bool = True,
    invited: frozenset[str] = frozenset(),
) -> Checked:
    """Every field of the form checked at once; UnknownPerson (a 404) before the rest.
    `invited`: the addresses already invited, who stay invited even if since deactivated."""
    errors: dict[str, str] = {}
    invitees, notes = await guests(
        session, organizer, data.participant_ids, data.emails, errors, invited
    )
    title, description, location = _texts(data, errors)
    times = collect(errors, lambda: _times(data))
    rule = None
    if times is not None:
        repeat = Repeat(
            data.repeat if repeats else "", data.weekdays, data.ends, data.until, data.count
        )
        rule = collect(errors, lambda: repeat_rule(repeat, times))
    reminders = collect(errors, lambda: _reminder_minutes(data.reminders))
    if errors or rule is None or reminders is None:
        raise FormErrors(errors)
    return Checked(
        title=title,
        description=description,
        location=location,
        times=rule.times,
        rrule=rule.rrule,
        guests=invitees,
        reminders=reminders,
        uses_room=data.uses_room,
        notes=[*rule.times.notes, *rule.notes, *notes],
    )


def _texts(data: EventInput, errors: dict[str, str]) -> tuple[str, str, str]:
    """The title, description and location as stored; messages for those too long."""
    title = " ".join(data.title.split())
    if not title:
        errors["title"] = "Enter a title."
    elif len(title) > TITLE_MAX:
        errors["title"] = f"Keep the title to {TITLE_MAX} characters (it has {len(title)})."
    description = data.description.replace("\r\n", "\n").strip()
    if len(description) > DESCRIPTION_MAX:
        errors["description"] = f"Keep the description to {DESCRIPTION_MAX} characters."
    location = " ".join(data.location.split())
    if len(location) > LOCATION_MAX:
        errors["location"] = f"Keep the location to {LOCATION_MAX} characters."
    return title, description, location


def _times(data: EventInput) -> EventTimes:
    return event_times(
        start_date=data.start_date,
        start_time=data.start_time,
        end_date=data.end_date,
        end_time=data.end_time,
        time_zone=data.time_zone,
        all_day=data.all_day,
    )


def _reminder_minutes(rows: list[tuple[str, str]]) -> set[int]:
    """Minutes before the start of each reminder; a row with no amount is no reminder."""
    minutes: set[int] = set()
    for amount, unit in rows:
        if not amount.strip():
            continue
        if not _AMOUNT.fullmatch(amount.strip()) or unit not in REMINDER_UNITS:
            raise FormErrors(
                {"reminders": "Enter each reminder as a number of minutes, hours or days."}
            )
        total = int(amount) * REMINDER_UNITS[unit]
        if not 1 <= total <= REMINDER_MAX_MINUTES:
            raise FormErrors({"reminders": "A reminder can be from 1 minute to 4 weeks before."})
        minutes.add(total)
    if len(minutes) > MAX_REMINDERS:
        raise FormErrors({"reminders": f"An event can have at most {MAX_REMINDERS} reminders."})
    return minutes
