"""What a person's Conferencing Accounts page shows of each connection serving them, starting
their own sync where an account is not linked yet, and whether they must link one before
anything else (their landing page at sign-in)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from portal.accounts.models import User
from portal.conferencing import people
from portal.conferencing.connections import sitewide_settings
from portal.conferencing.mapping import usable_account
from portal.conferencing.models import (
    LOGIN_OK,
    LOGIN_REFUSED,
    NO_ACCOUNT,
    SUCCEEDED,
    ConferencingConnection,
    ConferencingLogin,
    ProviderAccount,
    SyncRun,
    reason_text,
)
from portal.conferencing.person_sync import STOPPED, request_person_sync
from portal.conferencing.providers import KINDS, ProviderKind
from portal.conferencing.sync import STALE_AFTER
from portal.db import utcnow

# A page opened again this soon after the person's own sync finished shows its answer rather
# than asking the provider once more: reloading is no reason to call it every time.
RESYNC_AFTER = dt.timedelta(minutes=1)
LINK_FIRST = "Your company asks everyone to link a conferencing account before hosting meetings."


@dataclass(frozen=True)
class Card:
    """One connection serving the person, as their page shows it."""

    connection: ConferencingConnection
    kind: ProviderKind
    email: str  # the person's, which automatic kinds look them up by
    # Their own sign-in (password kinds), or their host authorization (Webex in SSO mode).
    login: ConferencingLogin | None
    # Automatic kinds: the provider user linked to them, usable or not, and their latest sync.
    account: ProviderAccount | None
    run: SyncRun | None

    @property
    def title(self) -> str:
        return self.connection.name or self.kind.label

    @property
    def linked(self) -> bool:
        if self.kind.signs_in:
            return self.login is not None and bool(self.login.secret) and not self.refused
        return self.account is not None and not self.account.reason

    @property
    def refused(self) -> bool:
        """The provider stopped accepting the person's stored password."""
        return self.login is not None and self.login.state == LOGIN_REFUSED

    @property
    def host_authorized(self) -> bool:
        return people.host_authorized(self.login)

    def _stalled(self, now: dt.datetime) -> bool:
        return self.run is not None and now - self.run.heartbeat_at >= STALE_AFTER

    @property
    def syncing(self) -> bool:
        """The person's own sync is under way: the page polls until it ends."""
        run = self.run
        if run is None or run.finished or self.linked:
            return False
        return not self._stalled(utcnow())

    def wants_sync(self, now: dt.datetime) -> bool:
        """An automatic kind with no usable account and no recent answer to show."""
        if self.kind.signs_in or self.linked:
            return False
        run = self.run
        if run is None or self._stalled(now):
            return True
        return run.finished and now - (run.finished_at or now) >= RESYNC_AFTER

    @property
    def why_not(self) -> str:
        """Why an automatic kind has no usable account, for the person to read."""
        label = self.kind.label
        if self.account is not None and self.account.reason:
            return f"{reason_text(self.account.reason, label)}: ask your admin."
        run = self.run
        if run is None:
            return f"Your {label} account is not linked yet."
        if not run.finished:
            return STOPPED  # a sync that still runs shows as "Syncing…" instead of this
        if run.status != SUCCEEDED:
            return f"{label} could not be asked: {run.error}"
        if run.users_seen:
            return (
                f"The {label} user with your email ({self.email}) is linked to someone else: "
                "ask your admin."
            )
        return f"{reason_text(NO_ACCOUNT, label)} ({self.email}): ask your admin."


@dataclass(frozen=True)
class Overview:
    cards: list[Card]
    # The connection the person hosts on; several serving them and none chosen: `choose`.
    hosting: people.Hosting


async def _accounts(session: AsyncSession, person: User) -> dict[int, ProviderAccount]:
    """The person's provider users by connection: the usable one where there is one."""
    query = (
        select(ProviderAccount)
        .where(col(ProviderAccount.user_id) == person.id)
        .order_by(col(ProviderAccount.id))
    )
    found: dict[int, ProviderAccount] = {}
    for account in (await session.execute(query)).scalars():
        kept = found.get(account.connection_id)
        if kept is None or (kept.reason and not account.reason):
            found[account.connection_id] = account
    return found


async def _latest_runs(session: AsyncSession, person: User) -> dict[int, SyncRun]:
    """The person's latest own sync at each connection."""
    latest = (
        select(func.max(SyncRun.id))
        .where(col(SyncRun.person_id) == person.id)
        .group_by(col(SyncRun.connection_id))
    )
    query = select(SyncRun).where(col(SyncRun.id).in_(latest.scalar_subquery()))
    return {run.connection_id: run for run in (await session.execute(query)).scalars()}


async def overview(session: AsyncSession, person: User) -> Overview:
    """A card for each connection serving the person, and where they host."""
    hosting = await people.hosting(session, person)
    logins = await people.logins_of(session, person)
    accounts = await _accounts(session, person) if hosting.serving else {}
    runs = await _latest_runs(session, person) if hosting.serving else {}
    cards = [
        Card(
            connection=connection,
            kind=KINDS[connection.provider],
            email=person.email,
            login=logins.get(connection.id or 0),
            account=accounts.get(connection.id or 0),
            run=runs.get(connection.id or 0),
        )
        for connection in hosting.serving
    ]
    return Overview(cards, hosting)


async def card_of(session: AsyncSession, person: User, connection_id: int) -> Card | None:
    """The card of one connection, if it serves the person (None: not theirs to see)."""
    cards = (await overview(session, person)).cards
    return next((card for card in cards if card.connection.id == connection_id), None)


async def start_syncs(session: AsyncSession, person: User, shown: Overview) -> Overview:
    """The person's own sync at each connection that wants one (see Card.wants_sync); each
    job starts once the caller commits."""
    now = utcnow()
    cards = []
    for card in shown.cards:
        if card.wants_sync(now):
            card = dataclasses.replace(
                card, run=await request_person_sync(session, card.connection, person)
            )
        cards.append(card)
    return dataclasses.replace(shown, cards=cards)


async def must_link_account(session: AsyncSession, person: User) -> bool:
    """The company requires a conferencing account and the person has none where they host
    (or has not chosen where, among several); nothing is needed of someone no connection
    serves."""
    if not (await sitewide_settings(session, person.company_id)).require_account:
        return False
    hosting = await people.hosting(session, person)
    if hosting.connection is None:
        return hosting.choose
    if KINDS[hosting.connection.provider].signs_in:
        login = await people.login_of(session, hosting.connection, person)
        return login is None or not login.secret or login.state != LOGIN_OK
    return await usable_account(session, hosting.connection, person) is None
