"""Jitsi Meet rooms: where a person's room is while their company has no conferencing account."""

from __future__ import annotations

import base64
import hashlib
import hmac

from portal.accounts.models import User
from portal.settings import Settings


def jitsi_room_url(settings: Settings, person: User) -> str:
    """The person's own Jitsi Meet room: stable, and unguessable without the secret key.

    The name is derived rather than stored so that every person has a room from the moment
    they exist; 128 bits of HMAC keep strangers from guessing their way into it.
    """
    digest = hmac.new(
        str(settings.secret_key).encode(),
        f"personal-room:{person.company_id}:{person.id}".encode(),
        hashlib.sha256,
    ).digest()[:16]
    name = base64.b32encode(digest).decode().rstrip("=").lower()
    return f"{settings.jitsi_url}/portal-{name}"
