"""Replies to an invitation: on the details page, or through a signed link from the email."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from portal.accounts.models import User
from portal.calendar.models import (
    ACCEPTED,
    ANSWERS,
    DECLINED,
    NEEDS_ACTION,
    TENTATIVE,
    CalendarEvent,
    EventParticipant,
)
from portal.db import utcnow
from portal.mail.redaction import declare_secret_link
from portal.notifications.services import notify
from portal.settings import Settings

SALT = "calendar-reply"
# A reply link answers for the participant without a sign-in: hidden where admins read the outbox.
REPLY_PATH = "/calendar/reply/"
declare_secret_link(REPLY_PATH, "answer the invitation")
# Long enough for an invitation read late; the link also dies when the event is over.
MAX_AGE = dt.timedelta(days=60)
# A token the portal makes is about 120 characters; anything far longer is not one.
TOKEN_MAX = 512

ANSWER_LABELS = {ACCEPTED: "Accept", TENTATIVE: "Tentative", DECLINED: "Decline"}
# A participant's answer as it stands, where ANSWER_LABELS are the buttons that give one.
REPLIES = {
    ACCEPTED: "Accepted",
    DECLINED: "Declined",
    TENTATIVE: "Tentative",
    NEEDS_ACTION: "No reply",
}
_ANSWERED = {ACCEPTED: "accepted", TENTATIVE: "tentatively accepted", DECLINED: "declined"}


class ReplyRefused(Exception):
    """A reply link that cannot be used: `status` and `message` for the page, and the event
    as it is now when the link is from an older invitation (`target`)."""

    def __init__(self, status: int, message: str, target: ReplyTarget | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.target = target


@dataclass(frozen=True)
class ReplyClaim:
    """What a reply link says: who answers what, to which version of which event."""

    company_id: int
    participant_id: int
    uid: str
    sequence: int
    answer: str


@dataclass
class ReplyTarget:
    """The participant a link answers for (and their account, if any), the event, its organizer."""

    participant: EventParticipant
    user: User | None
    series: CalendarEvent
    organizer: User
    answer: str

    @property
    def time_zone(self) -> str:
        """The zone the participant reads times in: their own, or the event's for a guest."""
        return self.user.time_zone if self.user else self.series.time_zone


def _serializer(settings: Settings) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(str(settings.secret_key), salt=SALT)


def reply_token(
    settings: Settings, participant: EventParticipant, series: CalendarEvent, answer: str
) -> str:
    """A signed token that records `answer` for `participant` to this version of `series`."""
    if answer not in ANSWERS:
        raise ValueError(f"not an answer: {answer!r}")
    if participant.id is None:
        raise ValueError("flush the participant before linking to it")
    return _serializer(settings).dumps(
        [participant.company_id, participant.id, series.uid, series.sequence, answer]
    )


def reply_link(
    settings: Settings, participant: EventParticipant, series: CalendarEvent, answer: str
) -> str:
    """The reply page's address for this answer (what the invitation's buttons link to)."""
    return f"{settings.base_url}{REPLY_PATH}{reply_token(settings, participant, series, answer)}"


def read_reply_token(settings: Settings, token: str) -> ReplyClaim:
    """The claim of a link the portal signed; ReplyRefused when tampered with or expired."""
    invalid = ReplyRefused(
        400, "This reply link is not valid. Check that you copied the whole link from the email."
    )
    if len(token) > TOKEN_MAX:
        raise invalid
    try:
        payload = _serializer(settings).loads(token, max_age=int(MAX_AGE.total_seconds()))
    except SignatureExpired as error:
        raise ReplyRefused(
            410,
            "This reply link has expired. Answer on the event's page in the portal, "
            "or ask the organizer to send the invitation again.",
        ) from error
    except BadSignature as error:
        raise invalid from error
    try:
        company_id, participant_id, uid, sequence, answer = payload
        claim = ReplyClaim(int(company_id), int(participant_id), str(uid), int(sequence), answer)
    except (ValueError, TypeError) as error:
        raise invalid from error
    if claim.answer not in ANSWERS:
        raise invalid
    return claim


async def reply_target(session: AsyncSession, claim: ReplyClaim) -> ReplyTarget:
    """The participant and event `claim` answers for, if the link may still be used.

    `session` is scoped to the claim's company. ReplyRefused when the participant or event is
    gone, the event was cancelled or is over, or a newer invitation replaced this one.
    """
    participant = await session.get(EventParticipant, claim.participant_id)
    series = await session.get(CalendarEvent, participant.event_id) if participant else None
    organizer = await session.get(User, series.organizer_id) if series else None
    if participant is None or series is None or organizer is None or series.uid != claim.uid:
        raise ReplyRefused(
            404, "This invitation no longer exists: the event was deleted or you were removed."
        )
    user = await session.get(User, participant.user_id) if participant.user_id else None
    target = ReplyTarget(participant, user, series, organizer, claim.answer)
    if series.cancelled_at is not None:
        raise ReplyRefused(410, "This event was cancelled.", target)
    if utcnow() >= series.last_ends_at:
        raise ReplyRefused(410, "This event is over.", target)
    if claim.sequence != series.sequence:
        raise ReplyRefused(
            409,
            "This invitation has changed since this email; use the newest one. "
            "The event as it is now:",
            target,
        )
    return target


async def participation(
    session: AsyncSession, user_id: int, event_id: int
) -> tuple[CalendarEvent, EventParticipant] | None:
    """The series `event_id` belongs to (it, or the series of the exception it is) and
    `user_id`'s invitation to it; None when they are not invited (or the event is not theirs
    to see: `session` is scoped to their company)."""
    event = await session.get(CalendarEvent, event_id)
    if event is None:
        return None
    series = await session.get(CalendarEvent, event.series_id) if event.series_id else event
    if series is None:
        return None
    participant = (
        await session.execute(
            select(EventParticipant).where(
                col(EventParticipant.event_id) == series.id,
                col(EventParticipant.user_id) == user_id,
            )
        )
    ).scalar_one_or_none()
    return (series, participant) if participant else None


async def record_reply(
    session: AsyncSession,
    participant: EventParticipant,
    series: CalendarEvent,
    answer: str,
    *,
    actor: User | None,
) -> bool:
    """Set the participant's answer and, when it changed, notify the organizer; True if changed.

    ValueError for an answer that is none of ACCEPTED, TENTATIVE, DECLINED.
    """
    if answer not in ANSWERS:
        raise ValueError(f"not an answer: {answer!r}")
    # Locked and read afresh: two clicks of one link at once must not both notify.
    await session.refresh(participant, with_for_update=True)
    if participant.partstat == answer:
        return False
    participant.partstat = answer
    participant.responded_at = utcnow()
    session.add(participant)
    await session.flush()
    organizer = await session.get(User, series.organizer_id)
    if organizer is not None:
        who = participant.name or (actor.display_name if actor else "") or participant.email
        await notify(
            session,
            recipient=organizer,
            actor=actor if actor is not None and actor.company_id == organizer.company_id else None,
            kind="calendar_reply",
            text=f"{who} {_ANSWERED[answer]} “{series.title}”",
            url=f"/calendar/events/{series.id}",
        )
    return True
