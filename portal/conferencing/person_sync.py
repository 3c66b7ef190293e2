"""One person's own sync at a connection that links people automatically: their provider user,
looked up by their email when their Conferencing Accounts page opens (a job, which the page
polls), or again when they ask to be reassociated (at once, in their request)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from portal.accounts.models import EMAIL_MAX, User
from portal.conferencing import people
from portal.conferencing.connections import (
    credentials,
    keep_renewed_credentials,
    renewed_credentials,
)
from portal.conferencing.interfaces import (
    ConferencingError,
    NotFound,
    Provider,
    ProviderUser,
)
from portal.conferencing.mapping import email_key, other_accounts, status_reason
from portal.conferencing.models import (
    DEACTIVATED,
    FAILED,
    PERSON,
    PROVIDER_NAME_MAX,
    PROVIDER_USER_ID_MAX,
    ROOM_URL_MAX,
    RUNNING,
    SUCCEEDED,
    TAKEN,
    ConferencingConnection,
    ProviderAccount,
    SyncRun,
    reason_text,
)
from portal.conferencing.providers import KINDS, open_provider
from portal.conferencing.secrets import UnreadableSecrets
from portal.conferencing.sync import STALE_AFTER, sync_run
from portal.db import Database, add_or_find, utcnow
from portal.forms import FormErrors
from portal.jobs import Job, JobEnv, defer_after_commit
from portal.settings import Settings

log = logging.getLogger(__name__)

PERSON_SYNC_JOB = "sync_conferencing_person"
STOPPED = "The sync stopped without finishing: the portal restarted. Open the page again."
NOT_SERVED = "This connection no longer serves the person: nothing was looked up."


async def running_person_sync(
    session: AsyncSession, connection: ConferencingConnection, person: User
) -> SyncRun | None:
    query = select(SyncRun).where(
        col(SyncRun.connection_id) == connection.id,
        col(SyncRun.person_id) == person.id,
        col(SyncRun.status) == RUNNING,
    )
    return (await session.execute(query)).scalars().first()


def _finish(run: SyncRun, status: str, error: str = "") -> None:
    run.status, run.error, run.finished_at = status, error, utcnow()


async def request_person_sync(
    session: AsyncSession, connection: ConferencingConnection, person: User
) -> SyncRun:
    """The person's running sync at the connection: the one under way, or a new one whose job
    starts once the caller commits."""
    running = await running_person_sync(session, connection, person)
    if running is not None:
        if utcnow() - running.heartbeat_at < STALE_AFTER:
            return running
        _finish(running, FAILED, STOPPED)
        await session.flush()
    run = SyncRun(
        company_id=person.company_id,
        connection_id=connection.id or 0,
        trigger=PERSON,
        requested_by=person.id,
        person_id=person.id,
    )
    # The person's two tabs may open the page at the same moment: one run for both.
    twin = await add_or_find(session, run, lambda: running_person_sync(session, connection, person))
    if twin is not None:
        return twin
    defer_after_commit(session, PERSON_SYNC_JOB, company_id=person.company_id, run_id=run.id)
    return run


async def _look_up(
    settings: Settings,
    connection: ConferencingConnection,
    email: str,
    keep: Callable[[Provider], Awaitable[object]],
) -> ProviderUser | None:
    """look_up through an adapter over the connection's credentials (UnreadableSecrets), handed
    to `keep` once closed, whether the lookup succeeded or not: what the provider renewed on
    the way (Webex's refresh token) is the only thing that works from then on."""
    provider = open_provider(
        connection.provider, credentials(settings, connection), settings.provider_endpoints
    )
    try:
        return await look_up(provider, email)
    finally:
        await provider.aclose()
        await keep(provider)


async def look_up(provider: Provider, email: str) -> ProviderUser | None:
    """The provider user with this email (None: the provider has none); raises
    ConferencingError when the provider cannot be asked."""
    try:
        user = await provider.user_by_email(email)
    except NotFound:
        return None
    if not user.room_url:
        # Some providers' user carries no room link (RingCentral, Webex): ask for it so the
        # page can show it. Without it the room is asked for when the person hosts.
        with contextlib.suppress(ConferencingError):
            user = user._replace(room_url=await provider.personal_room(user.id))
    return user


async def run_person_sync(
    db: Database, settings: Settings, company_id: int, run_id: int
) -> SyncRun | None:
    """Do the run: look its person up by their email and store what was found; a provider that
    cannot be asked fails the run with its reason and changes nothing. Owns its transactions."""
    async with db.session(company_id=company_id) as session:
        run = await sync_run(session, run_id)
        connection = await session.get(ConferencingConnection, run.connection_id) if run else None
        person = await session.get(User, run.person_id) if run and run.person_id else None
        serving = await people.serving(session, person) if person else []
    if run is None or run.finished or connection is None or person is None:
        return run
    if connection.id not in {served.id for served in serving}:
        # An admin changed whom the connection serves since the page asked.
        await _fail(db, company_id, run_id, NOT_SERVED)
        return await _reread(db, company_id, run_id)
    try:
        found = await _look_up(
            settings,
            connection,
            person.email,
            lambda provider: _keep_credentials(db, settings, connection, provider),
        )
        async with db.transaction(company_id=company_id) as session:
            await _store(session, run_id, connection, person, found)
    except (ConferencingError, UnreadableSecrets) as error:
        await _fail(db, company_id, run_id, str(error))
    except Exception:
        log.exception("the conferencing sync %s of company %s failed", run_id, company_id)
        await _fail(db, company_id, run_id, "The sync failed unexpectedly: see the portal's log.")
    return await _reread(db, company_id, run_id)


async def _keep_credentials(
    db: Database, settings: Settings, connection: ConferencingConnection, provider: Provider
) -> None:
    """The credentials the provider renewed during the lookup (Webex's refresh token), kept in a
    short transaction of their own, whether the lookup succeeded or not; none is opened when
    nothing was renewed."""
    if renewed_credentials(settings, connection, provider):
        async with db.transaction(company_id=connection.company_id) as session:
            await keep_renewed_credentials(session, settings, connection, provider)


async def _reread(db: Database, company_id: int, run_id: int) -> SyncRun | None:
    async with db.session(company_id=company_id) as session:
        return await sync_run(session, run_id)


async def _fail(db: Database, company_id: int, run_id: int, error: str) -> None:
    async with db.transaction(company_id=company_id) as session:
        run = await sync_run(session, run_id)
        if run is not None and not run.finished:
            _finish(run, FAILED, error)


async def _store(
    session: AsyncSession,
    run_id: int,
    connection: ConferencingConnection,
    person: User,
    found: ProviderUser | None,
) -> None:
    run = await sync_run(session, run_id)
    if run is None or run.finished:
        return  # replaced as stale meanwhile: the run that replaced it stores its own answer
    run.users_seen = 0 if found is None else 1
    if found is not None:
        account = await _seen(session, connection, found)
        was_linked = account.user_id == person.id and not account.reason
        await _link_as_sync_would(session, connection, person, account, found)
        linked = account.user_id == person.id and not account.reason
        run.people_matched = int(linked)
        run.newly_mapped = int(linked and not was_linked)
    run.still_unmapped = 1 - run.people_matched
    _finish(run, SUCCEEDED)


async def _account_of(
    session: AsyncSession, connection: ConferencingConnection, provider_user_id: str
) -> ProviderAccount | None:
    query = select(ProviderAccount).where(
        col(ProviderAccount.connection_id) == connection.id,
        col(ProviderAccount.provider_user_id) == provider_user_id,
    )
    return (await session.execute(query)).scalars().first()


async def _seen(
    session: AsyncSession, connection: ConferencingConnection, found: ProviderUser
) -> ProviderAccount:
    """The found user's row, with what the provider says of them now (added when new)."""
    user_id = found.id[:PROVIDER_USER_ID_MAX]
    account = await _account_of(session, connection, user_id)
    if account is None:
        account = ProviderAccount(
            company_id=connection.company_id,
            connection_id=connection.id or 0,
            provider_user_id=user_id,
            status=found.status,
        )
        # The company-wide sync may store the same provider user at the same moment.
        twin = await add_or_find(
            session, account, lambda: _account_of(session, connection, user_id)
        )
        account = twin or account
    account.email = found.email[:EMAIL_MAX]
    account.email_key = email_key(found.email)[:EMAIL_MAX]
    account.name = found.name[:PROVIDER_NAME_MAX]
    account.status, account.licensed = found.status, found.licensed
    account.room_url = found.room_url if len(found.room_url) <= ROOM_URL_MAX else ""
    account.updated_at = utcnow()
    return account


def _usable_reason(found: ProviderUser, person: User) -> str:
    """Why the person's account cannot host yet ("" when it can), as sync says it."""
    return DEACTIVATED if not person.active else status_reason(found.status, found.licensed)


async def _active_person(session: AsyncSession, user_id: int | None) -> bool:
    if user_id is None:
        return False
    query = select(col(User.active)).where(col(User.id) == user_id)
    return bool((await session.execute(query)).scalar())


async def _link_as_sync_would(
    session: AsyncSession,
    connection: ConferencingConnection,
    person: User,
    account: ProviderAccount,
    found: ProviderUser,
) -> None:
    """The company-wide sync's rules for one provider user: an admin's hand choice and a link
    an earlier sync made stay; a person is linked to one provider user at most."""
    if account.user_id == person.id:
        account.reason = _usable_reason(found, person)
    elif account.manual or await _active_person(session, account.user_id):
        pass  # the admin's choice, or someone else's account since before their email changed
    elif await other_accounts(session, connection, person, account.id or 0):
        account.user_id, account.reason = None, TAKEN
    else:
        account.user_id, account.reason = person.id, _usable_reason(found, person)
    await session.flush()


async def reassociate(
    session: AsyncSession, settings: Settings, connection: ConferencingConnection, person: User
) -> str:
    """Look the person up again by their portal email and link the provider user found, in
    place of any other; a sentence says what was found. FormErrors when the provider cannot be
    asked or has no such user, or an admin chose by hand: nothing is changed then but the
    credentials the provider renewed on the way, which the caller keeps all the same."""
    label = KINDS[connection.provider].label
    try:
        found = await _look_up(
            settings,
            connection,
            person.email,
            lambda provider: keep_renewed_credentials(session, settings, connection, provider),
        )
    except (ConferencingError, UnreadableSecrets) as error:
        raise FormErrors({"form": f"{error} Nothing was changed."}) from None
    if found is None:
        raise FormErrors({"form": f"No {label} user has the email {person.email}: ask your admin."})
    # An admin's hand choice stays: refused before anything is written.
    account = await _account_of(session, connection, found.id[:PROVIDER_USER_ID_MAX])
    others = await other_accounts(session, connection, person, (account.id or 0) if account else 0)
    if any(other.manual for other in others) or (
        account is not None and account.manual and account.user_id != person.id
    ):
        raise FormErrors(
            {"form": f"Your admin chose your {label} account by hand: ask them to change it."}
        )
    was_linked = account is not None and account.user_id == person.id
    account = await _seen(session, connection, found)
    now = utcnow()
    for other in others:
        other.user_id, other.reason, other.manual, other.updated_at = None, TAKEN, False, now
    account.user_id, account.reason = person.id, _usable_reason(found, person)
    await session.flush()
    return _found_sentence(label, account, others, was_linked)


def _found_sentence(
    label: str, account: ProviderAccount, others: list[ProviderAccount], was_linked: bool
) -> str:
    if others:
        before = ", ".join(other.email or other.name or other.provider_user_id for other in others)
        said = f"Found your {label} account {account.email} (it was linked to {before})."
    elif was_linked:
        said = f"Found your {label} account {account.email}: it was linked already."
    else:
        said = f"Found your {label} account {account.email}: it is linked now."
    if account.reason:
        said += f" It cannot host yet: {reason_text(account.reason, label)}."
    return said


async def _job(env: JobEnv, company_id: int, run_id: int) -> None:
    await run_person_sync(env.db, env.settings, company_id, run_id)


SYNC_PERSON = Job(PERSON_SYNC_JOB, _job)
