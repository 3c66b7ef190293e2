"""Meet Now: invite colleagues (and guests by email) to the host's personal room."""

from __future__ import annotations

import datetime as dt
import re
import secrets
from dataclasses import dataclass, field
from typing import Literal, Protocol

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from portal.accounts.models import Company, User
from portal.conferencing.services import required, resolve_room
from portal.db import add_or_find, utcnow
from portal.directory.people import (
    addresses,
    colleagues_by_email,
    deactivated_refusal,
    people,
    person_ids,
)
from portal.forms import FormErrors
from portal.mail.messages import render_email
from portal.mail.outbox import enqueue
from portal.mail.redaction import declare_secret_link
from portal.meetings.models import (
    MESSAGE_MAX,
    REQUEST_KEY_MAX,
    Meeting,
    MeetingInvitee,
    MeetingJoin,
)
from portal.notifications.services import notify
from portal.pagination import Page, paginate
from portal.settings import Settings

MAX_INVITEES = 50
# An instant meeting has no end time; this long after it starts its links say it is over
# instead of sending people into an empty room.
JOIN_LINK_LIFETIME = dt.timedelta(hours=12)
# Guests (addresses of no one in the company) are counted over this window for the limit
# PORTAL_GUEST_INVITES_PER_HOUR: Meet Now must not be a way to mail the world.
GUEST_LIMIT_WINDOW = dt.timedelta(hours=1)
# A link opened again within this time (a reload, a second tab) is the same join.
JOIN_REPEAT_WINDOW = dt.timedelta(minutes=1)

# A join link lets its holder in as the invitee: hidden where admins read the outbox.
JOIN_PATH = "/join/"
declare_secret_link(JOIN_PATH, "join the meeting")

_REQUEST_KEY = re.compile(r"[A-Za-z0-9_-]+")


@dataclass
class MeetNowRequest:
    """What the host sent: colleagues' ids, guests' addresses, a message, a per-Send key."""

    invitee_ids: list[str]
    emails: str = ""
    message: str = ""
    request_key: str = ""


@dataclass
class StartedMeeting:
    meeting: Meeting
    invitees: list[MeetingInvitee]
    # False when the same Send arrived again: nothing new was sent.
    created: bool = True
    notes: list[str] = field(default_factory=list)
    # The host's own link where the provider gives one (a GoTo meeting's start link).
    host_url: str = ""

    @property
    def host_room_url(self) -> str:
        """Where the host's tab goes."""
        return self.host_url or self.meeting.room_url


@dataclass
class _Guest:
    email: str
    user: User | None = None


def new_request_key() -> str:
    """A new key for a form, so that the same Send (or Save) arriving twice acts once."""
    return secrets.token_urlsafe(16)


def is_request_key(key: str, max_length: int) -> bool:
    """Whether `key` could be one new_request_key made, and fits a column of `max_length`."""
    return 8 <= len(key) <= max_length and _REQUEST_KEY.fullmatch(key) is not None


class Someone(Protocol):
    """A person as may_invite reads them: an ORM row, or a lean page's record."""

    @property
    def id(self) -> int | None: ...

    @property
    def active(self) -> bool: ...


def may_invite(host: Someone, person: Someone) -> bool:
    """Whether `host` may invite `person`: an active colleague other than the host."""
    return person.active and person.id != host.id


async def start_meeting(
    session: AsyncSession,
    settings: Settings,
    company: Company,
    host: User,
    request: MeetNowRequest,
) -> StartedMeeting:
    """Invite people to the host's room: one email each, a notice for colleagues.

    Raises FormErrors for bad input and UnknownPerson for an id outside the company;
    in both cases nothing is written. Adds and flushes; the caller commits.
    """
    key = request.request_key.strip()
    if not is_request_key(key, REQUEST_KEY_MAX):
        raise FormErrors({"form": "This form has expired. Reload the page and send again."})
    existing = await _meeting_for_key(session, host, key)
    if existing is not None:
        return existing
    message = " ".join(request.message.split())
    if len(message) > MESSAGE_MAX:
        raise FormErrors({"message": f"Keep the message under {MESSAGE_MAX} characters."})
    guests, notes = await _invitees(session, host, request)
    await _check_guest_limit(session, settings, host, sum(1 for g in guests if g.user is None))
    # HostMustAct when the host has no room yet (and what they must do about it).
    room = required(await resolve_room(session, settings, host, topic=message))
    meeting = Meeting(
        company_id=host.company_id,
        host_id=host.id or 0,
        room_url=room.url,
        message=message,
        request_key=key,
    )
    # A double-click racing this one may insert the same key first.
    existing = await add_or_find(session, meeting, lambda: _meeting_for_key(session, host, key))
    if existing is not None:
        return existing
    invitees = [_invite(session, settings, company, host, meeting, guest) for guest in guests]
    await session.flush()
    for invitee, guest in zip(invitees, guests, strict=True):
        if guest.user is not None:
            await notify(
                session,
                recipient=guest.user,
                actor=host,
                kind="meet_now",
                text=f"{host.display_name} invites you to meet now"
                + (f": {message}" if message else ""),
                url=f"/join/{invitee.join_token}",
            )
    return StartedMeeting(meeting, invitees, notes=notes, host_url=room.host_url)


async def _check_guest_limit(
    session: AsyncSession, settings: Settings, host: User, new_guests: int
) -> None:
    """Refuse a Send that would take the host past their guests an hour (emails outside)."""
    if not new_guests:
        return
    # Two Sends of one host at once wait for each other here (SQLite's writes already do), so
    # both cannot count the same room under the limit.
    await session.execute(select(col(User.id)).where(col(User.id) == host.id).with_for_update())
    since = utcnow() - GUEST_LIMIT_WINDOW
    sent = (
        await session.execute(
            select(func.count())
            .select_from(MeetingInvitee)
            .join(Meeting, col(Meeting.id) == col(MeetingInvitee.meeting_id))
            .where(
                col(Meeting.host_id) == host.id,
                col(Meeting.started_at) >= since,
                col(MeetingInvitee.user_id).is_(None),
            )
        )
    ).scalar_one()
    limit = settings.guest_invites_per_hour
    if sent + new_guests > limit:
        raise FormErrors(
            {
                "emails": f"You can invite at most {limit} guests by email an hour, "
                f"and {max(limit - sent, 0)} more now. Invite fewer, or try again later."
            }
        )


async def _meeting_for_key(session: AsyncSession, host: User, key: str) -> StartedMeeting | None:
    meeting = (
        await session.execute(
            select(Meeting).where(col(Meeting.host_id) == host.id, col(Meeting.request_key) == key)
        )
    ).scalar_one_or_none()
    if meeting is None:
        return None
    invitees = await _invitees_of(session, [meeting.id or 0])
    return StartedMeeting(meeting, invitees.get(meeting.id or 0, []), created=False)


async def _invitees(
    session: AsyncSession, host: User, request: MeetNowRequest
) -> tuple[list[_Guest], list[str]]:
    """The distinct people to invite, checked; notes say what was left out and why."""
    notes: list[str] = []
    ids = person_ids(request.invitee_ids)
    typed = addresses(request.emails)
    if host.id in ids or host.email in typed:
        notes.append("You are the host, so you were not invited to your own room.")
    ids = [person_id for person_id in ids if person_id != host.id]
    picked = await people(session, ids)
    known = {person.email for person in picked} | {host.email}
    colleagues = await colleagues_by_email(session, [a for a in typed if a not in known])
    # The host is left out above with a note; anyone else refused here is deactivated, whether
    # picked by name or typed as an address.
    refused = deactivated_refusal(
        person for person in [*picked, *colleagues.values()] if not may_invite(host, person)
    )
    if refused:
        raise FormErrors({"invitees": refused})
    guests = [_Guest(person.email, person) for person in picked]
    for address in typed:
        if address in known:
            continue
        known.add(address)
        guests.append(_Guest(address, colleagues.get(address)))
    if not guests:
        raise FormErrors({"invitees": "Pick at least one colleague or enter an email address."})
    if len(guests) > MAX_INVITEES:
        raise FormErrors(
            {
                "invitees": f"You can invite at most {MAX_INVITEES} people at once; "
                f"you picked {len(guests)}."
            }
        )
    return guests, notes


def _invite(
    session: AsyncSession,
    settings: Settings,
    company: Company,
    host: User,
    meeting: Meeting,
    guest: _Guest,
) -> MeetingInvitee:
    invitee = MeetingInvitee(
        company_id=meeting.company_id,
        meeting_id=meeting.id or 0,
        user_id=guest.user.id if guest.user else None,
        email=guest.email,
        name=guest.user.display_name if guest.user else "",
        join_token=secrets.token_urlsafe(32),
        opens_at=meeting.started_at,
        closes_at=meeting.started_at + JOIN_LINK_LIFETIME,
    )
    session.add(invitee)
    link = f"{settings.base_url}{JOIN_PATH}{invitee.join_token}"
    content = render_email(
        settings.templates_dir,
        "meet_now",
        {
            "name": invitee.name,
            "host_name": host.display_name,
            "company_name": company.name,
            "message": meeting.message,
            "link": link,
            "hours": int(JOIN_LINK_LIFETIME.total_seconds() // 3600),
        },
    )
    enqueue(
        session,
        settings,
        company_id=meeting.company_id,
        to_address=invitee.email,
        to_name=invitee.name,
        content=content,
        template="meet_now",
        reply_to=host.email,
    )
    return invitee


# Where a join link stands: before its window, in it, or after it.
LinkState = Literal["not_yet_open", "open", "ended"]


@dataclass
class JoinTarget:
    """Where a join link leads: the room, or the news that it is not open yet or is over."""

    meeting: Meeting
    host: User
    invitee: MeetingInvitee
    state: LinkState

    @property
    def ended(self) -> bool:
        return self.state == "ended"


# Link previews (chat apps), crawlers and mail scanners, by their User-Agent: the names of the
# common ones, then what the others call themselves. A browser says none of these.
_LINK_PREVIEW_AGENTS = re.compile(
    r"slackbot|slack-imgproxy|skypeuripreview|microsoftpreview|bingpreview|googlebot"
    r"|google-pagerenderer|googleimageproxy|facebookexternalhit|facebot|twitterbot"
    r"|linkedinbot|whatsapp|telegrambot|discordbot|redditbot|applebot|embedly|iframely"
    r"|preview|crawler|spider|\bbot\b|bot/|https?://",
    re.IGNORECASE,
)


def is_link_preview(user_agent: str) -> bool:
    """Whether a request for a link comes from a previewer or scanner rather than a person."""
    return not user_agent.strip() or _LINK_PREVIEW_AGENTS.search(user_agent) is not None


async def use_join_link(
    session: AsyncSession, token: str, visitor: User | None, *, record: bool = True
) -> JoinTarget:
    """Say where the link leads and, inside its window, record the click (the caller commits).

    A click is recorded once a minute per invitee, and not at all when `record` is False (a
    link preview). LookupError for a link that never existed. `session` is unscoped: the link
    itself says which company it belongs to.
    """
    invitee = (
        await session.execute(select(MeetingInvitee).where(col(MeetingInvitee.join_token) == token))
    ).scalar_one_or_none()
    if invitee is None:
        raise LookupError(token)
    meeting = await session.get(Meeting, invitee.meeting_id)
    host = await session.get(User, meeting.host_id) if meeting else None
    if meeting is None or host is None:
        raise LookupError(token)
    now = utcnow()
    if now < invitee.opens_at:
        return JoinTarget(meeting, host, invitee, "not_yet_open")
    if now >= invitee.closes_at:
        return JoinTarget(meeting, host, invitee, "ended")
    if record and not await _joined_since(session, invitee, now - JOIN_REPEAT_WINDOW):
        # A visitor from another company is recorded as a guest, not linked to their account.
        same_company = visitor is not None and visitor.company_id == invitee.company_id
        session.add(
            MeetingJoin(
                company_id=invitee.company_id,
                invitee_id=invitee.id or 0,
                user_id=visitor.id if visitor and same_company else None,
                joined_at=now,
            )
        )
        if invitee.first_joined_at is None:
            invitee.first_joined_at = now
        await session.flush()
    return JoinTarget(meeting, host, invitee, "open")


async def _joined_since(session: AsyncSession, invitee: MeetingInvitee, since: dt.datetime) -> bool:
    found = await session.execute(
        select(col(MeetingJoin.id))
        .where(col(MeetingJoin.invitee_id) == invitee.id, col(MeetingJoin.joined_at) >= since)
        .limit(1)
    )
    return found.first() is not None


async def _invitees_of(
    session: AsyncSession, meeting_ids: list[int]
) -> dict[int, list[MeetingInvitee]]:
    rows = await session.execute(
        select(MeetingInvitee)
        .where(col(MeetingInvitee.meeting_id).in_(meeting_ids))
        .order_by(col(MeetingInvitee.id))
    )
    by_meeting: dict[int, list[MeetingInvitee]] = {}
    for invitee in rows.scalars():
        by_meeting.setdefault(invitee.meeting_id, []).append(invitee)
    return by_meeting


@dataclass
class HistoryEntry:
    meeting: Meeting
    invitees: list[tuple[MeetingInvitee, User | None]]

    @property
    def joined(self) -> int:
        return sum(1 for invitee, _ in self.invitees if invitee.first_joined_at is not None)


async def history(session: AsyncSession, host: User, page: int) -> Page[HistoryEntry]:
    """The host's instant meetings, newest first, with invitees and who joined."""
    meetings = await paginate(
        session,
        select(Meeting)
        .where(col(Meeting.host_id) == host.id)
        .order_by(col(Meeting.started_at).desc(), col(Meeting.id).desc()),
        page,
        20,
    )
    invitees = await _invitees_of(session, [meeting.id or 0 for meeting in meetings.items])
    user_ids = {i.user_id for group in invitees.values() for i in group if i.user_id}
    users = (
        {
            u.id: u
            for u in (
                await session.execute(select(User).where(col(User.id).in_(user_ids)))
            ).scalars()
        }
        if user_ids
        else {}
    )
    entries = [
        HistoryEntry(
            meeting,
            [
                (i, users.get(i.user_id) if i.user_id else None)
                for i in invitees.get(meeting.id or 0, [])
            ],
        )
        for meeting in meetings.items
    ]
    return Page(entries, meetings.number, meetings.size, meetings.total)
