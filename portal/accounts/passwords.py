"""Password rules and hashing; hashing runs in a thread, never on the event loop."""

from __future__ import annotations

import functools
from importlib import resources

from pwdlib import PasswordHash
from starlette.concurrency import run_in_threadpool

MIN_LENGTH = 8
MAX_LENGTH = 128

# Verified when no account matches, so a missing account costs the same time as a wrong password.
_TIMING_DECOY_PASSWORD = "not-a-real-password-decoy"  # noqa: S105


@functools.cache
def _common_passwords() -> frozenset[str]:
    text = resources.files("portal.accounts").joinpath("common_passwords.txt").read_text()
    return frozenset(line.strip().lower() for line in text.splitlines() if line.strip())


def password_problem(password: str, *, email: str = "", name: str = "") -> str | None:
    """Why a new password is refused, or None when it is acceptable."""
    if len(password) < MIN_LENGTH:
        return f"Use at least {MIN_LENGTH} characters."
    if len(password) > MAX_LENGTH:
        return f"Use at most {MAX_LENGTH} characters."
    lowered = password.lower()
    if lowered in _common_passwords():
        return "That password is one of the most common ones; choose another."
    if email and lowered in {email.lower(), email.split("@")[0].lower()}:
        return "Don't use your email address as your password."
    if name and lowered.replace(" ", "") == name.lower().replace(" ", ""):
        return "Don't use your name as your password."
    return None


async def hash_password(hasher: PasswordHash, password: str) -> str:
    return await run_in_threadpool(hasher.hash, password)


async def verify_password(
    hasher: PasswordHash, password: str, password_hash: str | None
) -> tuple[bool, str | None]:
    """(matches, a new hash when the parameters changed since this one was made)."""
    if not password_hash:
        await run_in_threadpool(hasher.verify, password, await _decoy_hash(hasher))
        return False, None
    return await run_in_threadpool(hasher.verify_and_update, password, password_hash)


_decoys: dict[int, str] = {}


async def _decoy_hash(hasher: PasswordHash) -> str:
    key = id(hasher)
    if key not in _decoys:
        _decoys[key] = await run_in_threadpool(hasher.hash, _TIMING_DECOY_PASSWORD)
    return _decoys[key]
