"""The hover card's reads, kept by each web process while nothing they came from has changed.

A card is the most frequent request of all: every name in every list opens one as the pointer
passes, the same few again and again. Its reads (the viewer, whose session is checked against
the row on every request, kept or not; their company's name; the person; the person's meetings
of the next hours) are kept under portal.freshness's stamp, for at most KEEP_FOR, so a card
kept costs no read at all (on PostgreSQL, no round trip). What the card says at the moment
("In a meeting until", the local time) is worked out from them for each request. The browser
keeps a card for a minute besides (views.CARD_CACHE_CONTROL): a change shows up on a card
opened afresh at once, and on one kept by the browser within the minute.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass

from portal.calendar import busy
from portal.db import CompanyReader
from portal.directory import services
from portal.directory.services import CompanyName, Person

KEEP_FOR = dt.timedelta(seconds=30)
KEEP_AT_MOST = 4096
# The tables a card's reads come from: migration 0014's triggers tell every web process of
# their changes on PostgreSQL (a test checks that each has them).
TABLES = ("users", "company", "calendar_event", "event_participant")


@dataclass(frozen=True, slots=True)
class Card:
    """The person a card is about (None: nobody to this viewer) and their meetings (None if
    not read), as of `now`."""

    person: Person | None
    meetings: busy.Meetings | None
    now: dt.datetime

    def busy_until(self) -> dt.datetime | None:
        return busy.busy_at(self.meetings, self.now) if self.meetings is not None else None


@dataclass(frozen=True, slots=True)
class _Read:
    viewing: services.Viewing
    meetings: busy.Meetings | None
    at: dt.datetime


async def card_reads(
    reader: CompanyReader, viewer_id: int, person_id: int | None, now: dt.datetime
) -> tuple[Person | None, CompanyName | None, Card]:
    """The viewer, their company's name and the card of `person_id` at `now`: kept from an
    earlier read while current, read (and kept) otherwise."""
    kept = reader.kept("cards", keep_for=KEEP_FOR.total_seconds(), at_most=KEEP_AT_MOST)
    key = (viewer_id, person_id)
    read: _Read | None = kept.get(key)
    # The meetings read hold every moment from then for KEEP_FOR; a clock set back holds none.
    if read is None or not read.at <= now < read.at + KEEP_FOR:
        stamp = kept.stamp()
        read = await _read(reader, viewer_id, person_id, now)
        kept.keep(key, stamp, read)
    viewing = read.viewing
    return viewing.viewer, viewing.company, Card(viewing.person, read.meetings, now)


async def _read(
    reader: CompanyReader, viewer_id: int, person_id: int | None, now: dt.datetime
) -> _Read:
    along = [] if person_id is None else busy.meetings_reads(person_id, now, good_for=KEEP_FOR)
    viewing = await services.viewer_and_person(reader, viewer_id, person_id, *along)
    meetings = None
    if viewing.person is not None and viewing.person.active:
        meetings = await busy.meetings(
            reader, viewing.person.id, now, first=viewing.along, good_for=KEEP_FOR
        )
    return _Read(dataclasses.replace(viewing, along=[]), meetings, now)
