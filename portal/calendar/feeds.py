"""Each person's secret calendar feed: the address to subscribe to, and what it serves.

A feed is polled by calendar apps every few minutes to hours, mostly to hear that nothing
changed: `feed_state` answers that with one small query (its ETag and Last-Modified), and only
a changed feed is built, in a handful of queries whatever its size.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from collections import OrderedDict, defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import CompoundSelect, func, select, true, union
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from portal.accounts.models import Company, User
from portal.calendar.ics import FeedEntry, feed_calendar
from portal.calendar.links import join_link
from portal.calendar.models import CalendarEvent, CalendarFeed, EventParticipant
from portal.db import add_or_find, utcnow
from portal.settings import Settings

# A feed carries the events that ended at most this long ago, and everything after.
FEED_HISTORY = dt.timedelta(days=90)
TOKEN_MAX = 64


def _new_token() -> str:
    return secrets.token_urlsafe(32)


async def _feed_of(session: AsyncSession, user: User) -> CalendarFeed | None:
    found = await session.execute(select(CalendarFeed).where(col(CalendarFeed.user_id) == user.id))
    return found.scalar_one_or_none()


async def feed_token(session: AsyncSession, user: User) -> str:
    """The person's feed token, made on first use (the caller commits)."""
    feed = await _feed_of(session, user)
    if feed is not None:
        return feed.token
    feed = CalendarFeed(company_id=user.company_id, user_id=user.id or 0, token=_new_token())
    # The same person's page open twice may make the first one at once.
    existing = await add_or_find(session, feed, lambda: _feed_of(session, user))
    return (existing or feed).token


async def reset_feed(session: AsyncSession, user: User) -> str:
    """A new token for the person's feed; the old address answers 404 from now on."""
    feed = await _feed_of(session, user)
    if feed is None:
        return await feed_token(session, user)
    feed.token = _new_token()
    feed.created_at = utcnow()
    await session.flush()
    return feed.token


@dataclass(frozen=True)
class FeedState:
    """Whose feed a token opens, and the validators that say whether it changed."""

    token: str
    user_id: int
    company_id: int
    name: str
    since: dt.datetime
    etag: str
    last_modified: dt.datetime


def _series_ids(user_id: int, company_id: int, since: dt.datetime) -> CompoundSelect[Any]:
    """The ids of the series (and single events) in the person's feed.

    Two selects, each read through its own index (organizer and end; the person's
    invitations), where one with OR would read every event of the company.
    """
    # The session is unscoped (the token says whose feed it is): the company is said here.
    current = (
        col(CalendarEvent.company_id) == company_id,
        col(CalendarEvent.series_id).is_(None),
        col(CalendarEvent.last_ends_at) > since,
    )
    invited = select(col(EventParticipant.event_id)).where(
        col(EventParticipant.company_id) == company_id, col(EventParticipant.user_id) == user_id
    )
    return union(
        select(col(CalendarEvent.id)).where(col(CalendarEvent.organizer_id) == user_id, *current),
        select(col(CalendarEvent.id)).where(col(CalendarEvent.id).in_(invited), *current),
    )


async def feed_state(
    session: AsyncSession, token: str, *, now: dt.datetime | None = None
) -> FeedState | None:
    """The feed `token` opens (None for an unknown, reset or deactivated person's token) with
    its ETag and Last-Modified: a lookup by token and one aggregate query, nothing built."""
    if not token or len(token) > TOKEN_MAX:
        return None
    found = (
        await session.execute(
            select(CalendarFeed, col(User.display_name), col(Company.name))
            .join(User, col(User.id) == col(CalendarFeed.user_id))
            .join(Company, col(Company.id) == col(CalendarFeed.company_id))
            .where(col(CalendarFeed.token) == token, col(User.active).is_(True))
        )
    ).one_or_none()
    if found is None:
        return None
    feed, person_name, company_name = found
    since = (now or utcnow()) - FEED_HISTORY
    ids = _series_ids(feed.user_id, feed.company_id, since).cte("feed_series")
    # Each aggregate reads the feed's rows by index: its series, their exceptions (by
    # series_id) and their participants (by event).
    aggregates = [
        select(func.max(column), func.count())
        .select_from(table)
        .where(key.in_(select(ids.c.id)))
        .subquery()
        for column, table, key in (
            (col(CalendarEvent.updated_at), CalendarEvent, col(CalendarEvent.id)),
            (col(CalendarEvent.updated_at), CalendarEvent, col(CalendarEvent.series_id)),
            (col(EventParticipant.responded_at), EventParticipant, col(EventParticipant.event_id)),
        )
    ]
    # One row each, joined side by side.
    joined = aggregates[0].join(aggregates[1], true()).join(aggregates[2], true())
    row = (await session.execute(select(joined))).one()
    changed = [_aware(moment) for moment in row[0::2] if moment is not None]
    versions = "|".join([token, *map(str, changed), *map(str, row[1::2])])
    return FeedState(
        token=token,
        user_id=feed.user_id,
        company_id=feed.company_id,
        name=f"{company_name}: {person_name}",
        since=since,
        etag='"' + hashlib.sha256(versions.encode()).hexdigest()[:32] + '"',
        last_modified=max([*changed, feed.created_at]).replace(microsecond=0),
    )


def _aware(moment: dt.datetime | str) -> dt.datetime:
    """An aggregate's time: SQLite hands max() back as text, untyped."""
    if isinstance(moment, str):
        moment = dt.datetime.fromisoformat(moment)
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


# Many calendar apps poll without If-None-Match: the text built for a version (an ETag) is
# kept, so asking again for an unchanged feed costs only its validators. Bounded in size.
BUILT_FEEDS_MAX_CHARS = 32 * 1024 * 1024
_built: OrderedDict[tuple[str, str], str] = OrderedDict()


async def build_feed(session: AsyncSession, settings: Settings, state: FeedState) -> str:
    """The feed's iCalendar text, built again only when its version changed."""
    key = (settings.base_url, state.etag)
    text = _built.get(key)
    if text is None:
        text = await _build(session, settings, state)
        _built[key] = text
        while sum(map(len, _built.values())) > BUILT_FEEDS_MAX_CHARS and len(_built) > 1:
            _built.popitem(last=False)
    _built.move_to_end(key)
    return text


async def _build(session: AsyncSession, settings: Settings, state: FeedState) -> str:
    """The person's series with their exceptions, organizers and participants, read in four
    queries whatever the number of events."""
    ids = _series_ids(state.user_id, state.company_id, state.since)
    series = list(
        (
            await session.execute(
                select(CalendarEvent)
                .where(col(CalendarEvent.id).in_(ids))
                .order_by(col(CalendarEvent.starts_at), col(CalendarEvent.id))
            )
        ).scalars()
    )
    exceptions: defaultdict[int, list[CalendarEvent]] = defaultdict(list)
    for exception in (
        await session.execute(select(CalendarEvent).where(col(CalendarEvent.series_id).in_(ids)))
    ).scalars():
        exceptions[exception.series_id or 0].append(exception)
    invited: defaultdict[int, list[EventParticipant]] = defaultdict(list)
    for participant in (
        await session.execute(
            select(EventParticipant)
            .where(col(EventParticipant.event_id).in_(ids))
            .order_by(col(EventParticipant.id))
        )
    ).scalars():
        invited[participant.event_id].append(participant)
    organizer_ids = select(col(CalendarEvent.organizer_id)).where(col(CalendarEvent.id).in_(ids))
    organizers = {
        user.id: user
        for user in (
            await session.execute(select(User).where(col(User.id).in_(organizer_ids)))
        ).scalars()
    }
    entries = [
        FeedEntry(
            event,
            exceptions[event.id or 0],
            organizers[event.organizer_id],
            invited[event.id or 0],
            join_url=_join_url(settings, state, event, invited[event.id or 0]),
        )
        for event in series
        if event.organizer_id in organizers
    ]
    return feed_calendar(entries, name=state.name)


def _join_url(
    settings: Settings,
    state: FeedState,
    event: CalendarEvent,
    participants: list[EventParticipant],
) -> str | None:
    """The feed owner's way into the room: their own join link, or for the organizer the room."""
    if not event.uses_room:
        return None
    if event.organizer_id == state.user_id:
        return event.room_url or None
    own = next((p for p in participants if p.user_id == state.user_id), None)
    return join_link(settings, own) if own is not None else None


@dataclass(frozen=True)
class Feed:
    text: str
    etag: str
    last_modified: dt.datetime


async def feed_for(session: AsyncSession, settings: Settings, token: str) -> Feed | None:
    """The whole feed `token` opens, or None (not found)."""
    state = await feed_state(session, token)
    if state is None:
        return None
    return Feed(await build_feed(session, settings, state), state.etag, state.last_modified)
