"""The sync job, and the nightly job that starts each connection's sync at its hour in its
company's zone."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from sqlalchemy import select, update
from sqlmodel import col

from portal import features
from portal.accounts.models import Company, User
from portal.conferencing.connections import connect
from portal.conferencing.jobs import (
    START_NIGHTLY_SYNCS,
    SYNC_CONFERENCING,
    last_due,
    start_nightly_syncs,
)
from portal.conferencing.models import (
    NIGHTLY,
    PERSON,
    RUNNING,
    SUCCEEDED,
    ConferencingConnection,
    ProviderAccount,
    SyncRun,
)
from portal.conferencing.sync import request_sync
from portal.db import UNSCOPED, Database, utcnow
from portal.jobs import InProcessRunner, JobEnv
from portal.settings import Settings
from tests.conferencing.conftest import ZOOM_CREDENTIALS
from tests.conferencing.zoom_simulator import ZoomAccount
from tests.conftest import make_company

UTC = dt.UTC
FORM = ZOOM_CREDENTIALS


def test_the_jobs_are_declared_for_the_runners() -> None:
    names = {job.name for job in features.jobs()}
    assert {SYNC_CONFERENCING.name, START_NIGHTLY_SYNCS.name} <= names
    assert START_NIGHTLY_SYNCS.cron == "*/15 * * * *"


@pytest.mark.parametrize(
    ("hour", "zone", "now", "due"),
    [
        (2, "UTC", dt.datetime(2026, 12, 1, 2, 0, tzinfo=UTC), dt.datetime(2026, 12, 1, 2, 0)),
        (2, "UTC", dt.datetime(2026, 12, 1, 1, 59, tzinfo=UTC), dt.datetime(2026, 11, 30, 2, 0)),
        # 02:00 in Berlin is 01:00 UTC in winter.
        (
            2,
            "Europe/Berlin",
            dt.datetime(2026, 12, 1, 1, 15, tzinfo=UTC),
            dt.datetime(2026, 12, 1, 1),
        ),
        # Kolkata is UTC+5:30: its midnight is 18:30 UTC the day before.
        (
            0,
            "Asia/Kolkata",
            dt.datetime(2026, 12, 1, 18, 45, tzinfo=UTC),
            dt.datetime(2026, 12, 1, 18, 30),
        ),
    ],
)
def test_the_hour_is_read_in_the_companys_zone(
    hour: int, zone: str, now: dt.datetime, due: dt.datetime
) -> None:
    assert last_due(hour, zone, now) == due.replace(tzinfo=UTC)


async def _connect(
    db: Database, settings: Settings, company: Company, hour: int, name: str = "Zoom"
) -> ConferencingConnection:
    async with db.transaction(company_id=company.id) as session:
        connection = await connect(
            session, settings, company.id or 0, "zoom", {**FORM, "name": name}
        )
        connection.sync_hour = hour
        # Connected long before tonight, as most are.
        connection.connected_at = dt.datetime(2026, 1, 1, tzinfo=UTC)
        return connection


async def _runs(db: Database, company: Company) -> list[SyncRun]:
    async with db.session(company_id=company.id) as session:
        return list((await session.execute(select(SyncRun).order_by(col(SyncRun.id)))).scalars())


async def test_a_nightly_sync_starts_once_when_the_connections_hour_has_come(
    db: Database, zoom_settings: Settings, acme: Company, admin: User
) -> None:
    # Runs are stamped with the real clock: tonight's hour is this hour of today, in UTC.
    now = utcnow()
    due = now.replace(minute=0, second=0, microsecond=0)
    async with db.transaction(company_id=UNSCOPED) as session:
        await session.execute(update(Company).values(default_time_zone="UTC"))
    connection = await _connect(db, zoom_settings, acme, hour=due.hour)
    later = await _connect(db, zoom_settings, acme, hour=(due.hour + 12) % 24, name="Zoom 2")
    globex = await make_company(db, "Globex")
    await _connect(db, zoom_settings, globex, hour=(due.hour + 12) % 24)
    env = JobEnv(db, zoom_settings, lambda: None)

    assert await start_nightly_syncs(env, due - dt.timedelta(minutes=10)) == []
    # A run of last night does not count for tonight, nor does a person's own sync of tonight.
    async with db.transaction(company_id=acme.id) as session:
        last_night = await request_sync(session, connection, trigger=NIGHTLY)
        last_night.started_at = due - dt.timedelta(days=1) + dt.timedelta(minutes=5)
        last_night.status = SUCCEEDED
        session.add(
            SyncRun(
                company_id=acme.id or 0,
                connection_id=connection.id or 0,
                trigger=PERSON,
                person_id=admin.id,
                started_at=due + dt.timedelta(minutes=1),
            )
        )
    started = await start_nightly_syncs(env, now)
    again = await start_nightly_syncs(env, now)

    assert started == [connection.id] and again == []
    runs = [run for run in await _runs(db, acme) if run.person_id is None]
    assert [(run.connection_id, run.trigger, run.status) for run in runs][-1] == (
        connection.id,
        NIGHTLY,
        RUNNING,
    )
    assert later.id not in {run.connection_id for run in runs}
    assert await _runs(db, globex) == []


async def test_a_company_connected_after_tonights_hour_waits_for_tomorrow(
    db: Database, zoom_settings: Settings, acme: Company
) -> None:
    await _connect(db, zoom_settings, acme, hour=3)
    async with db.transaction(company_id=acme.id) as session:
        await session.execute(
            update(ConferencingConnection).values(
                connected_at=dt.datetime(2026, 12, 1, 3, 10, tzinfo=UTC)
            )
        )
    env = JobEnv(db, zoom_settings, lambda: None)
    assert await start_nightly_syncs(env, dt.datetime(2026, 12, 1, 3, 15, tzinfo=UTC)) == []


async def test_the_sync_job_runs_the_run_it_is_given(
    db: Database, zoom_settings: Settings, zoom: ZoomAccount, acme: Company, admin: User
) -> None:
    zoom.add_user("ada@acme.example", "Ada")
    connection = await _connect(db, zoom_settings, acme, hour=3)
    async with db.transaction(company_id=acme.id) as session:
        run = await request_sync(session, connection)

    await SYNC_CONFERENCING.run(JobEnv(db, zoom_settings, lambda: None), run_id=run.id)

    (done,) = await _runs(db, acme)
    assert done.status == SUCCEEDED and done.newly_mapped == 1
    async with db.session(company_id=acme.id) as session:
        (account,) = [
            a for a in (await session.execute(select(ProviderAccount))).scalars() if a.user_id
        ]
    assert account.user_id == admin.id


async def test_a_committed_request_starts_the_job_in_process(
    db: Database, zoom_settings: Settings, zoom: ZoomAccount, acme: Company, admin: User
) -> None:
    zoom.add_user("ada@acme.example", "Ada")
    connection = await _connect(db, zoom_settings, acme, hour=3)
    runner = InProcessRunner(JobEnv(db, zoom_settings, lambda: None), (SYNC_CONFERENCING,))
    runner.start()
    try:
        async with db.transaction(company_id=acme.id) as session:
            await request_sync(session, connection)
        for _ in range(200):
            (run,) = await _runs(db, acme)
            if run.finished:
                break
            await asyncio.sleep(0.05)
    finally:
        await runner.stop()
    assert run.status == SUCCEEDED, run.error


async def test_a_portal_down_at_the_hour_catches_up_within_hours_not_the_next_evening(
    db: Database, zoom_settings: Settings, acme: Company
) -> None:
    connection = await _connect(db, zoom_settings, acme, hour=3)
    env = JobEnv(db, zoom_settings, lambda: None)
    assert await start_nightly_syncs(env, dt.datetime(2026, 12, 1, 20, 0, tzinfo=UTC)) == []
    assert await start_nightly_syncs(env, dt.datetime(2026, 12, 1, 8, 0, tzinfo=UTC)) == [
        connection.id
    ]


async def test_a_connection_whose_people_sign_in_themselves_has_no_nightly_sync(
    db: Database, zoom_settings: Settings, acme: Company
) -> None:
    async with db.transaction(company_id=acme.id) as session:
        session.add(
            ConferencingConnection(
                company_id=acme.id or 0,
                name="GoTo",
                provider="goto",
                secret_credentials="",
                sync_hour=3,
                connected_at=dt.datetime(2026, 1, 1, tzinfo=UTC),
            )
        )
    env = JobEnv(db, zoom_settings, lambda: None)
    assert await start_nightly_syncs(env, dt.datetime(2026, 12, 1, 8, 0, tzinfo=UTC)) == []
    assert await _runs(db, acme) == []
