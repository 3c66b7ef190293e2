"""Signed, expiring links that let a person set their password once."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from portal.accounts.models import User
from portal.mail.redaction import declare_secret_link

SALT = "portal.set-password"
# Set-password and reset links sign their holder in: admins reading the outbox must not see them.
SET_PASSWORD_PATH = "/set-password/"  # noqa: S105 (a path, not a password)
declare_secret_link(SET_PASSWORD_PATH, "set a password")


class InvalidLink(ValueError):
    """The link is tampered with, expired or already used; str() is the message for the page."""


@dataclass(frozen=True)
class LinkClaim:
    user_id: int
    company_id: int
    fingerprint: str


def _fingerprint(user: User) -> str:
    # Bound to the current hash, so the link stops working once a password has been set with it,
    # and to the address it was sent to, so a link mailed to a mistyped address dies with it.
    bound = f"{user.password_hash or 'unset'}\n{user.email}"
    return hashlib.sha256(bound.encode()).hexdigest()[:16]


def make_set_password_token(secret: str, user: User) -> str:
    serializer = URLSafeTimedSerializer(secret, salt=SALT)
    return serializer.dumps([user.id, user.company_id, _fingerprint(user)])


def read_set_password_token(secret: str, token: str, *, max_age_hours: int) -> LinkClaim:
    serializer = URLSafeTimedSerializer(secret, salt=SALT)
    try:
        user_id, company_id, fingerprint = serializer.loads(token, max_age=max_age_hours * 3600)
    except SignatureExpired as error:
        raise InvalidLink(
            "This link has expired. Ask your company admin to send a new one, "
            "or use “Forgot your password?” on the sign-in page."
        ) from error
    except (BadSignature, ValueError, TypeError) as error:
        raise InvalidLink(
            "This link is not valid. Check that you copied the whole link."
        ) from error
    return LinkClaim(int(user_id), int(company_id), str(fingerprint))


def link_matches(claim: LinkClaim, user: User) -> bool:
    return user.active and claim.fingerprint == _fingerprint(user)
