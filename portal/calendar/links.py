"""Links into an event that leave the portal by email: each participant's join link."""

from __future__ import annotations

from portal.calendar.models import EventParticipant
from portal.mail.redaction import declare_secret_link
from portal.settings import Settings

# A join link lets its holder into the organizer's room as the participant: hidden where
# admins read the outbox.
JOIN_PATH = "/calendar/join/"
declare_secret_link(JOIN_PATH, "join the meeting")


def join_link(settings: Settings, participant: EventParticipant) -> str:
    """The participant's own link into the organizer's room."""
    return f"{settings.base_url}{JOIN_PATH}{participant.join_token}"
