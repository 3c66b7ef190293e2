"""Signing in: who may try, the throttles per address and per source, and the password check.

A try is counted before its password is checked, in a transaction of its own: parallel tries
cannot get past the throttle, and a try whose process dies still counts.
"""

from __future__ import annotations

import datetime as dt
import functools
import ipaddress
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from pwdlib import PasswordHash
from sqlalchemy import CursorResult, case, delete, null, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from portal.accounts.forms import InvalidEmail, normalize_email
from portal.accounts.models import (
    SOURCE_MAX,
    Company,
    LoginThrottle,
    SignInSourceThrottle,
    User,
)
from portal.accounts.passwords import verify_password
from portal.db import utcnow


@dataclass(frozen=True)
class Throttle:
    """How many failed sign-ins in a row are let through before each further one must wait."""

    after: int
    first_wait: dt.timedelta
    longest_wait: dt.timedelta

    def wait(self, failures: int) -> dt.timedelta:
        """None before `after` failures; then the first wait, doubling with each further one."""
        if failures < self.after:
            return dt.timedelta(0)
        # Capped before raising 2 to it: 30 seconds * 2 ** 47 is more than a timedelta holds.
        doublings = min(failures - self.after, MOST_DOUBLINGS)
        return min(self.first_wait * 2**doublings, self.longest_wait)


MOST_DOUBLINGS = 20  # a minute * 2 ** 20 is two years: beyond every longest wait
# Per email address, across companies: a person's own mistypes, or a guesser at one account.
ADDRESS_THROTTLE = Throttle(5, dt.timedelta(seconds=30), dt.timedelta(minutes=15))
# Per client address (an IPv6 /64), across every email address: a guesser trying many accounts.
SOURCE_THROTTLE = Throttle(30, dt.timedelta(minutes=1), dt.timedelta(hours=1))
SOURCE_FORGET_AFTER = dt.timedelta(minutes=15)
UNKNOWN_SOURCE = "unknown"


@dataclass
class SignInResult:
    user: User | None = None
    error: str | None = None
    # The same address and password in several companies: the person picks one.
    companies: list[Company] = field(default_factory=list)


def _wait_text(seconds: float) -> str:
    seconds = math.ceil(seconds)
    if seconds < 90:
        return f"{seconds} seconds"
    return f"{math.ceil(seconds / 60)} minutes"


Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _address(text: str | None) -> Address | None:
    try:
        address = ipaddress.ip_address((text or "").strip())
    except ValueError:
        return None
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped or address


def _host_of(hop: str) -> str:
    """The address in an X-Forwarded-For entry: `a.b.c.d`, `a.b.c.d:port`, `v6`, `[v6]:port`."""
    hop = hop.strip()
    if hop.startswith("["):
        return hop[1:].split("]", 1)[0]
    return hop.split(":", 1)[0] if hop.count(":") == 1 else hop


@functools.lru_cache(maxsize=8)
def _networks(proxies: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(proxy, strict=False) for proxy in proxies)


def sign_in_source(
    peer: str | None, forwarded_for: Sequence[str], trusted_proxies: Sequence[str]
) -> str:
    """Whom a sign-in counts against: the peer's address or, when the peer is a trusted proxy,
    the nearest address in X-Forwarded-For that is not one. An IPv6 address counts as its /64,
    which one subscriber usually holds whole."""
    address = _address(peer)
    if address is None:
        return (peer or UNKNOWN_SOURCE)[:SOURCE_MAX]
    trusted = _networks(tuple(trusted_proxies))
    hops = [hop for value in forwarded_for for hop in value.split(",")]
    # Each proxy appends the address it was reached from: read from the right, past our own.
    while hops and any(address in network for network in trusted):
        hop = _address(_host_of(hops.pop()))
        if hop is None:
            break  # not an address: count the try against the proxy that passed it on
        address = hop
    if address.version == 4:
        return str(address)
    return str(ipaddress.ip_network(f"{address}/64", strict=False))


def _not_waiting(locked_until: Any, now: dt.datetime) -> Any:
    return or_(locked_until.is_(None), locked_until <= now)


async def _seconds_waiting(
    session: AsyncSession, table: type[LoginThrottle | SignInSourceThrottle], key: str
) -> float:
    throttle = await session.get(table, key, populate_existing=True)
    locked_until: dt.datetime | None = getattr(throttle, "locked_until", None)
    if locked_until is None:
        return 0
    return max(0.0, (locked_until - utcnow()).total_seconds())


def _dialect_insert(session: AsyncSession) -> Any:
    return pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


async def _claim_for_address(session: AsyncSession, email: str, now: dt.datetime) -> float | None:
    """Count a try against the address, unless it must wait (None): the wait the try set."""
    claim = _dialect_insert(session)(LoginThrottle).values(email=email, failures=1)
    statement = claim.on_conflict_do_update(
        index_elements=["email"],
        set_={"failures": col(LoginThrottle.failures) + 1},
        where=_not_waiting(col(LoginThrottle.locked_until), now),
    ).returning(col(LoginThrottle.failures))
    failures = (await session.execute(statement)).scalar_one_or_none()
    if failures is None:
        return None
    wait = ADDRESS_THROTTLE.wait(failures)
    if wait:
        await session.execute(
            update(LoginThrottle)
            .where(col(LoginThrottle.email) == email)
            .values(locked_until=now + wait)
        )
    return wait.total_seconds()


async def _claim_for_source(session: AsyncSession, source: str, now: dt.datetime) -> float | None:
    """Count a try against the source, unless it must wait (None): the wait the try set."""
    failures = col(SignInSourceThrottle.failures)
    forgotten = col(SignInSourceThrottle.forget_at) <= now
    claim = _dialect_insert(session)(SignInSourceThrottle).values(
        source=source, failures=1, forget_at=now + SOURCE_FORGET_AFTER
    )
    statement = claim.on_conflict_do_update(
        index_elements=["source"],
        set_={
            "failures": case((forgotten, 1), else_=failures + 1),
            "forget_at": now + SOURCE_FORGET_AFTER,
        },
        where=_not_waiting(col(SignInSourceThrottle.locked_until), now),
    ).returning(failures)
    count = (await session.execute(statement)).scalar_one_or_none()
    if count is None:
        return None
    wait = SOURCE_THROTTLE.wait(count)
    if wait:
        await session.execute(
            update(SignInSourceThrottle)
            .where(col(SignInSourceThrottle.source) == source)
            .values(locked_until=now + wait, forget_at=now + wait + SOURCE_FORGET_AFTER)
        )
    return wait.total_seconds()


async def _release_claims(session: AsyncSession, attempt: SignInAttempt) -> None:
    """The password was right: clear the address's count, and take this try off the source's."""
    await session.execute(
        update(LoginThrottle)
        .where(col(LoginThrottle.email) == attempt.email)
        .values(failures=0, locked_until=None)
    )
    failures = col(SignInSourceThrottle.failures)
    # Only this try comes off: a guesser's own account must not buy the guesser more tries.
    await session.execute(
        update(SignInSourceThrottle)
        .where(col(SignInSourceThrottle.source) == attempt.source, failures > 0)
        .values(
            failures=failures - 1,
            locked_until=case(
                (failures <= SOURCE_THROTTLE.after, null()),
                else_=col(SignInSourceThrottle.locked_until),
            ),
        )
        .execution_options(synchronize_session=False)
    )


@dataclass
class SignInAttempt:
    """A claimed try: the address, the accounts it may be, and the wait it set if it fails."""

    email: str = ""
    candidates: list[User] = field(default_factory=list)
    error: str | None = None
    source: str = ""
    wait: float = 0


def _too_many(whose: str, seconds: float) -> SignInAttempt:
    return SignInAttempt(
        error=f"Too many failed sign-in attempts {whose}. Try again in {_wait_text(seconds)}."
    )


async def begin_sign_in(
    session: AsyncSession, raw_email: str, password: str, source: str
) -> SignInAttempt:
    """Claim a try for the address and the source, unless either must wait; read the accounts.

    The claim counts as a failure until the password proves right, and the caller commits it
    before checking the password: parallel tries cannot all slip past one look at the count,
    and a try whose process dies while checking still counts (its wait ends like any other).
    """
    try:
        email = normalize_email(raw_email)
    except InvalidEmail as error:
        return SignInAttempt(error=str(error))
    if not password:
        return SignInAttempt(error="Enter your password.")
    now = utcnow()
    # Looked at first, so that a try the source may not make costs the address nothing.
    if wait := await _seconds_waiting(session, SignInSourceThrottle, source):
        return _too_many("from your network", wait)
    address_wait = await _claim_for_address(session, email, now)
    if address_wait is None:
        return _too_many(f"for {email}", await _seconds_waiting(session, LoginThrottle, email))
    source_wait = await _claim_for_source(session, source, now)
    if source_wait is None:
        # Made to wait since it was looked at (PostgreSQL): the address's claim stays counted.
        wait = await _seconds_waiting(session, SignInSourceThrottle, source)
        return _too_many("from your network", wait)
    candidates = (await session.execute(select(User).where(col(User.email) == email))).scalars()
    return SignInAttempt(
        email, list(candidates), source=source, wait=max(address_wait, source_wait)
    )


async def check_password(
    hasher: PasswordHash, attempt: SignInAttempt, password: str
) -> list[tuple[User, str | None]]:
    """The candidates the password is right for, each with a new hash when it needs one.

    Outside any transaction: a check costs a hundred milliseconds. With no candidate a dummy
    hash is checked, so the time taken tells nobody whether the address has an account.
    """
    matches: list[tuple[User, str | None]] = []
    to_check: list[User | None] = list(attempt.candidates) or [None]
    for user in to_check:
        ok, new_hash = await verify_password(hasher, password, user.password_hash if user else None)
        if ok and user is not None:
            matches.append((user, new_hash))
    return matches


async def finish_sign_in(
    session: AsyncSession,
    attempt: SignInAttempt,
    matches: list[tuple[User, str | None]],
    company_id: int | None = None,
) -> SignInResult:
    """Sign in the person the password is right for; a wrong one was counted when claimed."""
    if not matches:
        message = "Wrong email or password."
        if attempt.wait:
            message += (
                f" Too many failed attempts: wait {_wait_text(attempt.wait)} before trying again."
            )
        return SignInResult(error=message)
    await _release_claims(session, attempt)
    active = [(u, h) for u, h in matches if u.active]
    if not active:
        return SignInResult(
            error="This account has been deactivated. Ask your company admin to reactivate it."
        )
    if company_id is not None:
        active = [(u, h) for u, h in active if u.company_id == company_id] or active
    if len(active) > 1:
        ids = [u.company_id for u, _ in active]
        companies = (
            await session.execute(select(Company).where(col(Company.id).in_(ids)))
        ).scalars()
        return SignInResult(companies=sorted(companies, key=lambda c: c.name))
    user, new_hash = active[0]
    if new_hash:
        await session.execute(
            update(User).where(col(User.id) == user.id).values(password_hash=new_hash)
        )
        user.password_hash = new_hash
    return SignInResult(user=user)


async def forget_quiet_sources(session: AsyncSession, now: dt.datetime) -> int:
    """Delete the sources whose count is forgotten anyway; how many there were.

    Without this the table keeps one row for every address that ever tried. An email
    address's count is kept until a right password clears it, so its rows stay.
    """
    result = await session.execute(
        delete(SignInSourceThrottle).where(col(SignInSourceThrottle.forget_at) <= now)
    )
    return int(cast(CursorResult[Any], result).rowcount)
