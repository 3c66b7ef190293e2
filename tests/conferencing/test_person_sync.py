"""One person's own sync (portal.conferencing.person_sync) against the Zoom and RingCentral
simulators: asking for it, the job, what it stores (never over an admin's hand choice), and
Reassociate."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from collections.abc import Iterator

import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.expression import Executable
from sqlmodel import col

from portal import features
from portal.accounts.models import Company, User
from portal.conferencing import person_sync
from portal.conferencing.jobs import JOBS
from portal.conferencing.models import (
    FAILED,
    NO_PERSON,
    NOT_LICENSED,
    PENDING_CONFIRMATION,
    PERSON,
    RUNNING,
    SUCCEEDED,
    TAKEN,
    ConferencingConnection,
    ProviderAccount,
    SyncRun,
)
from portal.conferencing.providers import base
from portal.conferencing.providers.base import RetryPolicy
from portal.conferencing.sync import STALE_AFTER
from portal.db import Database, utcnow
from portal.forms import FormErrors
from portal.jobs import InProcessRunner, JobEnv
from portal.jobs.base import AFTER_COMMIT
from portal.settings import Settings
from tests.conferencing.conftest import serve
from tests.conferencing.factories import ZOOM, add_account, add_connection
from tests.conferencing.ringcentral_simulator import (
    RingCentralAccount,
    ringcentral_app,
    ringcentral_endpoints,
)
from tests.conferencing.zoom_simulator import ZoomAccount
from tests.conftest import make_user

RINGCENTRAL = {"client_id": "rc-client", "client_secret": "rc-secret", "jwt": "rc-jwt"}


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """A provider that is down is tried again at once: the tests check what follows."""
    monkeypatch.setattr(base, "DEFAULT_RETRY", RetryPolicy(2, 0.01, 0.01, 0, 0.01))


@dataclasses.dataclass(frozen=True)
class Syncing:
    """One connection's person syncs, and what they stored, as the tests ask for them."""

    db: Database
    settings: Settings
    connection: ConferencingConnection

    @property
    def company_id(self) -> int:
        return self.connection.company_id

    async def request(self, person: User) -> tuple[SyncRun, dict[str, tuple[str, dict[str, int]]]]:
        """A person sync asked for and committed, with the jobs that commit was to start."""
        async with self.db.transaction(company_id=self.company_id) as session:
            run = await person_sync.request_person_sync(session, self.connection, person)
            deferred = dict(session.info.get(AFTER_COMMIT, {}))
        return run, deferred

    async def run(self, run: SyncRun) -> SyncRun | None:
        return await person_sync.run_person_sync(
            self.db, self.settings, self.company_id, run.id or 0
        )

    async def sync(self, person: User) -> SyncRun:
        run, _ = await self.request(person)
        done = await self.run(run)
        assert done is not None
        return done

    async def accounts(self) -> dict[str, ProviderAccount]:
        async with self.db.session(company_id=self.company_id) as session:
            rows = (await session.execute(select(ProviderAccount))).scalars()
            return {row.email: row for row in rows}

    async def runs(self) -> list[SyncRun]:
        async with self.db.session(company_id=self.company_id) as session:
            query = select(SyncRun).order_by(col(SyncRun.id))
            return list((await session.execute(query)).scalars())

    async def change(self, statement: Executable) -> None:
        """`statement` (an update) run and committed, as an admin's edit would be."""
        async with self.db.transaction(company_id=self.company_id) as session:
            await session.execute(statement)

    async def link(
        self, provider_user_id: str, email: str, person: User, *, manual: bool = False
    ) -> None:
        await add_account(
            self.db, self.connection, provider_user_id, email, person=person, manual=manual
        )

    async def reassociate(self, person: User) -> str:
        async with self.db.transaction(company_id=self.company_id) as session:
            return await person_sync.reassociate(session, self.settings, self.connection, person)

    async def refused(self, person: User) -> str:
        """The form error Reassociate answers with, nothing committed."""
        async with self.db.session(company_id=self.company_id, write=True) as session:
            with pytest.raises(FormErrors) as refused:
                await person_sync.reassociate(session, self.settings, self.connection, person)
        return refused.value.errors["form"]


@pytest.fixture
async def syncing(db: Database, zoom_settings: Settings, acme: Company) -> Syncing:
    """The company's Zoom connection to the simulator (`zoom`)."""
    return Syncing(db, zoom_settings, await add_connection(db, zoom_settings, acme, "zoom", ZOOM))


def test_the_job_is_declared_for_the_runners() -> None:
    assert person_sync.SYNC_PERSON in JOBS
    assert person_sync.PERSON_SYNC_JOB in {job.name for job in features.jobs()}


async def test_a_request_makes_one_run_for_the_person_and_starts_its_job_after_commit(
    syncing: Syncing, admin: User, member: User
) -> None:
    run, deferred = await syncing.request(member)
    assert (run.trigger, run.status, run.person_id) == (PERSON, RUNNING, member.id)
    assert list(deferred.values()) == [
        (person_sync.PERSON_SYNC_JOB, {"company_id": member.company_id, "run_id": run.id})
    ]
    # Asked again while it runs: the same run, and no second job.
    again, deferred = await syncing.request(member)
    assert again.id == run.id and deferred == {}
    # Another person's runs alongside.
    other, _ = await syncing.request(admin)
    assert other.id != run.id
    # At most one running per person and connection, whatever asks.
    async with syncing.db.session(company_id=syncing.company_id, write=True) as session:
        session.add(
            SyncRun(
                company_id=syncing.company_id,
                connection_id=syncing.connection.id or 0,
                trigger=PERSON,
                person_id=member.id,
            )
        )
        with pytest.raises(IntegrityError):
            await session.flush()


async def test_a_stale_run_is_failed_and_replaced(syncing: Syncing, member: User) -> None:
    run, _ = await syncing.request(member)
    await syncing.change(
        update(SyncRun)
        .where(col(SyncRun.id) == run.id)
        .values(heartbeat_at=utcnow() - STALE_AFTER - dt.timedelta(seconds=1))
    )
    fresh, deferred = await syncing.request(member)
    assert fresh.id != run.id and deferred
    old, new = await syncing.runs()
    assert old.status == FAILED and old.error == person_sync.STOPPED
    assert new.status == RUNNING


async def test_the_job_links_the_person_found_by_email(
    zoom: ZoomAccount, syncing: Syncing, member: User
) -> None:
    user = zoom.add_user("Bob@Acme.example", "Bob", "Member")
    done = await syncing.sync(member)
    assert done.status == SUCCEEDED and done.users_seen == 1
    assert (done.newly_mapped, done.still_unmapped) == (1, 0)
    account = (await syncing.accounts())["Bob@Acme.example"]
    assert (account.user_id, account.reason, account.manual) == (member.id, "", False)
    assert account.provider_user_id == user["id"] and account.email_key == "bob@acme.example"
    assert account.room_url == user["personal_meeting_url"] and account.name == "Bob Member"
    assert zoom.count("GET", "/v2/users/bob@acme.example") == 1
    # Again: nothing new, the same row.
    again = await syncing.sync(member)
    assert (again.newly_mapped, again.people_matched) == (0, 1)
    assert len(await syncing.accounts()) == 1


async def test_a_person_the_provider_has_no_user_for_stays_unlinked(
    syncing: Syncing, member: User
) -> None:
    done = await syncing.sync(member)
    assert (done.status, done.users_seen, done.still_unmapped, done.error) == (SUCCEEDED, 0, 1, "")
    assert await syncing.accounts() == {}


async def test_a_provider_that_is_down_fails_the_run_and_changes_nothing(
    zoom: ZoomAccount, syncing: Syncing, member: User
) -> None:
    zoom.add_user(member.email, "Bob")
    zoom.fail_next(503, count=10)
    done = await syncing.sync(member)
    assert done.status == FAILED and "Zoom" in done.error
    assert await syncing.accounts() == {}
    # A run that finished is not done again.
    again = await syncing.run(done)
    assert again is not None and again.status == FAILED


async def test_a_person_the_connection_no_longer_serves_is_not_looked_up(
    zoom: ZoomAccount, syncing: Syncing, member: User
) -> None:
    zoom.add_user(member.email, "Bob")
    run, _ = await syncing.request(member)
    await syncing.change(
        update(ConferencingConnection).values(serves="departments", departments=["Support"])
    )
    done = await syncing.run(run)
    assert done is not None and (done.status, done.error) == (FAILED, person_sync.NOT_SERVED)
    assert zoom.count("GET", f"/v2/users/{member.email}") == 0
    assert await syncing.accounts() == {}


async def test_an_account_not_usable_yet_is_linked_with_its_reason(
    zoom: ZoomAccount, syncing: Syncing, admin: User, member: User
) -> None:
    zoom.add_user(member.email, "Bob", status="pending")
    zoom.add_user(admin.email, "Ada", type=1)
    await syncing.sync(member)
    done = await syncing.sync(admin)
    assert (done.people_matched, done.still_unmapped) == (0, 1)
    accounts = await syncing.accounts()
    bob, ada = accounts[member.email], accounts[admin.email]
    assert (bob.user_id, bob.reason) == (member.id, PENDING_CONFIRMATION)
    assert (ada.user_id, ada.reason) == (admin.id, NOT_LICENSED)


async def test_an_admins_hand_choice_is_never_overridden(
    zoom: ZoomAccount, syncing: Syncing, admin: User, member: User
) -> None:
    user = zoom.add_user(member.email, "Bob")
    await syncing.link(user["id"], member.email, person=admin, manual=True)
    done = await syncing.sync(member)
    assert (done.status, done.users_seen, done.people_matched) == (SUCCEEDED, 1, 0)
    account = (await syncing.accounts())[member.email]
    assert (account.user_id, account.manual) == (admin.id, True)
    # Unmapped by hand: stays so.
    await syncing.change(
        update(ProviderAccount).values(user_id=None, reason="unmapped", manual=True)
    )
    await syncing.sync(member)
    account = (await syncing.accounts())[member.email]
    assert (account.user_id, account.reason, account.manual) == (None, "unmapped", True)


async def test_a_provider_user_linked_to_someone_else_stays_theirs(
    zoom: ZoomAccount, syncing: Syncing, acme: Company, member: User
) -> None:
    """A link sync made keeps a provider user whose email changed since: the person whose
    email it has now gets it only by Reassociate, or once the other is deactivated."""
    other = await make_user(syncing.db, acme, "robert@acme.example")
    user = zoom.add_user(member.email, "Bob")
    await syncing.link(user["id"], "robert@acme.example", person=other)
    done = await syncing.sync(member)
    assert (done.users_seen, done.people_matched) == (1, 0)
    assert (await syncing.accounts())[member.email].user_id == other.id
    await syncing.change(update(User).where(col(User.id) == other.id).values(active=False))
    done = await syncing.sync(member)
    assert done.newly_mapped == 1
    assert (await syncing.accounts())[member.email].user_id == member.id


async def test_a_person_linked_to_another_provider_user_keeps_that_link(
    zoom: ZoomAccount, syncing: Syncing, member: User
) -> None:
    await syncing.link("old-id", "bob-old@acme.example", person=member)
    zoom.add_user(member.email, "Bob")
    await syncing.sync(member)
    accounts = await syncing.accounts()
    assert accounts["bob-old@acme.example"].user_id == member.id
    assert (accounts[member.email].user_id, accounts[member.email].reason) == (None, TAKEN)


@pytest.fixture
def ringcentral() -> Iterator[tuple[RingCentralAccount, str]]:
    account = RingCentralAccount(*RINGCENTRAL.values())
    with serve(ringcentral_app(account)) as url:
        yield account, url


async def test_a_room_link_the_user_lookup_leaves_out_is_asked_for(
    db: Database,
    settings: Settings,
    acme: Company,
    member: User,
    ringcentral: tuple[RingCentralAccount, str],
) -> None:
    account, url = ringcentral
    settings = dataclasses.replace(settings, provider_endpoints=ringcentral_endpoints(url))
    connection = await add_connection(db, settings, acme, "ringcentral", RINGCENTRAL)
    extension = account.add_user(member.email, "Bob", "Member")
    syncing = Syncing(db, settings, connection)
    done = await syncing.sync(member)
    assert done.status == SUCCEEDED, done.error
    stored = (await syncing.accounts())[member.email]
    assert stored.user_id == member.id
    assert stored.room_url == account.default_bridge(extension["id"])["discovery"]["web"]


async def test_the_job_runs_once_its_request_is_committed(
    zoom: ZoomAccount, syncing: Syncing, member: User
) -> None:
    zoom.add_user(member.email, "Bob")
    runner = InProcessRunner(
        JobEnv(syncing.db, syncing.settings, lambda: None), (person_sync.SYNC_PERSON,)
    )
    runner.start()
    try:
        run, _ = await syncing.request(member)
        for _ in range(200):
            (run,) = await syncing.runs()
            if run.finished:
                break
            await asyncio.sleep(0.05)
    finally:
        await runner.stop()
    assert run.status == SUCCEEDED and run.newly_mapped == 1


# Reassociate: looked up again, at once, by the person's portal email.


async def test_reassociate_relinks_the_account_that_has_the_persons_email_now(
    zoom: ZoomAccount, syncing: Syncing, member: User
) -> None:
    await syncing.link("old-id", "bob-old@acme.example", person=member)
    user = zoom.add_user(member.email, "Bob")
    said = await syncing.reassociate(member)
    assert said == (
        "Found your Zoom account bob@acme.example (it was linked to bob-old@acme.example)."
    )
    accounts = await syncing.accounts()
    assert (accounts[member.email].user_id, accounts[member.email].reason) == (member.id, "")
    assert accounts[member.email].provider_user_id == user["id"]
    old = accounts["bob-old@acme.example"]
    assert (old.user_id, old.reason, old.manual) == (None, TAKEN, False)
    again = await syncing.reassociate(member)
    assert again == "Found your Zoom account bob@acme.example: it was linked already."


async def test_reassociate_says_when_the_account_found_cannot_host_yet(
    zoom: ZoomAccount, syncing: Syncing, member: User
) -> None:
    zoom.add_user(member.email, "Bob", status="pending")
    said = await syncing.reassociate(member)
    assert said == (
        "Found your Zoom account bob@acme.example: it is linked now. "
        "It cannot host yet: Pending confirmation at Zoom."
    )


async def test_reassociate_changes_nothing_when_it_finds_nothing_or_cannot_ask(
    zoom: ZoomAccount, syncing: Syncing, member: User
) -> None:
    await syncing.link("old-id", "bob-old@acme.example", person=member)
    before = await syncing.accounts()
    said = await syncing.refused(member)
    assert said == "No Zoom user has the email bob@acme.example: ask your admin."
    zoom.add_user(member.email, "Bob")
    zoom.fail_next(503, count=10)
    said = await syncing.refused(member)
    assert "Zoom" in said and said.endswith("Nothing was changed.")
    after = await syncing.accounts()
    assert after.keys() == before.keys() and after["bob-old@acme.example"].user_id == member.id


async def test_reassociate_leaves_an_admins_hand_choice_alone(
    zoom: ZoomAccount, syncing: Syncing, admin: User, member: User
) -> None:
    user = zoom.add_user(member.email, "Bob")
    await syncing.link(user["id"], member.email, person=admin, manual=True)
    said = await syncing.refused(member)
    assert said == "Your admin chose your Zoom account by hand: ask them to change it."
    # The person's own account chosen by hand: not moved either.
    await syncing.link("hand-id", "bob-x@acme.example", person=member, manual=True)
    await syncing.change(
        update(ProviderAccount)
        .where(col(ProviderAccount.provider_user_id) == user["id"])
        .values(user_id=None, reason=NO_PERSON, manual=False)
    )
    said = await syncing.refused(member)
    assert said == "Your admin chose your Zoom account by hand: ask them to change it."
    accounts = await syncing.accounts()
    assert accounts["bob-x@acme.example"].user_id == member.id
    assert accounts[member.email].user_id is None
