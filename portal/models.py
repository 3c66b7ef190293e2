"""Imports every domain's tables so that the metadata (and Alembic) knows them all."""

from portal.accounts.models import Company, LoginThrottle, User
from portal.calendar.models import (
    CalendarEvent,
    CalendarFeed,
    EventJoin,
    EventParticipant,
    EventReminder,
    ReminderDelivery,
)
from portal.conferencing.models import (
    ConferencingChoice,
    ConferencingConnection,
    ConferencingLogin,
    ConferencingSettings,
    ConnectionMember,
    ProviderAccount,
    SyncRun,
)
from portal.mail.models import OutboxAttachment, OutboxMessage
from portal.meetings.models import Meeting, MeetingInvitee, MeetingJoin
from portal.notifications.models import Notification

__all__ = [
    "CalendarEvent",
    "CalendarFeed",
    "Company",
    "ConferencingChoice",
    "ConferencingConnection",
    "ConferencingLogin",
    "ConferencingSettings",
    "ConnectionMember",
    "EventJoin",
    "EventParticipant",
    "EventReminder",
    "LoginThrottle",
    "Meeting",
    "MeetingInvitee",
    "MeetingJoin",
    "Notification",
    "OutboxAttachment",
    "OutboxMessage",
    "ProviderAccount",
    "ReminderDelivery",
    "SyncRun",
    "User",
]
