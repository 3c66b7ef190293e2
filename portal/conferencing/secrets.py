"""The secret credential values of a company's connection, encrypted at rest with Fernet.

Keys come from settings (PORTAL_CONFERENCING_KEYS): the first encrypts, every one decrypts, so
a new key is put first and the old ones are dropped once `rotate` has re-encrypted every row
(each sync rotates its connection's token). With no key set, one is derived from the secret key
so the embedded default works with no configuration.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from portal.settings import Settings


class UnreadableSecrets(Exception):
    """The stored secrets cannot be decrypted with the configured keys (a key was dropped)."""

    def __str__(self) -> str:
        return (
            "The stored credentials cannot be decrypted with this portal's keys "
            "(PORTAL_CONFERENCING_KEYS changed?): enter the credentials again."
        )


def _derived_key(settings: Settings) -> bytes:
    digest = hmac.new(
        str(settings.secret_key).encode(), b"conferencing-credentials", hashlib.sha256
    ).digest()
    return base64.urlsafe_b64encode(digest)


def _fernet(settings: Settings) -> MultiFernet:
    keys = [str(key).encode() for key in settings.conferencing_keys] or [_derived_key(settings)]
    return MultiFernet([Fernet(key) for key in keys])


def encrypt(settings: Settings, company_id: int, values: dict[str, str]) -> str:
    """A token of `values`, bound to the company so it cannot be copied to another's row."""
    plain = json.dumps({"company_id": company_id, "values": values}, sort_keys=True)
    return _fernet(settings).encrypt(plain.encode()).decode()


def decrypt(settings: Settings, company_id: int, token: str) -> dict[str, str]:
    """The values `encrypt` was given for this company; raises UnreadableSecrets."""
    try:
        data = json.loads(_fernet(settings).decrypt(token.encode()))
    except (InvalidToken, ValueError):
        raise UnreadableSecrets() from None
    if data.get("company_id") != company_id:
        raise UnreadableSecrets()
    return {str(key): str(value) for key, value in data["values"].items()}


def rotate(settings: Settings, token: str) -> str:
    """The same token encrypted with the first key (a no-op in meaning, new bytes)."""
    try:
        return _fernet(settings).rotate(token.encode()).decode()
    except InvalidToken:
        raise UnreadableSecrets() from None
