"""Imports every domain's tables so that the metadata (and Alembic) knows them all."""

from portal.accounts.models import Company, LoginThrottle, User
from portal.mail.models import OutboxAttachment, OutboxMessage

__all__ = ["Company", "LoginThrottle", "OutboxAttachment", "OutboxMessage", "User"]
