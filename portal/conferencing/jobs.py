"""Conferencing's background jobs: a sync run, and starting each connection's nightly sync."""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import func, select
from sqlmodel import col

from portal.accounts.models import Company
from portal.conferencing.connections import connection_by_id
from portal.conferencing.models import NIGHTLY, ConferencingConnection, SyncRun
from portal.conferencing.person_sync import SYNC_PERSON
from portal.conferencing.providers import AUTOMATIC, KINDS
from portal.conferencing.sync import SYNC_JOB, request_sync, run_sync
from portal.db import UNSCOPED, utcnow
from portal.jobs import Job, JobEnv
from portal.timezones import zone

log = logging.getLogger(__name__)

# A portal down at a company's hour syncs when it is back, unless the next night is nearer.
CATCH_UP = dt.timedelta(hours=6)


async def _sync(env: JobEnv, run_id: int) -> None:
    async with env.db.session(company_id=UNSCOPED) as session:
        company_id = (
            await session.execute(select(col(SyncRun.company_id)).where(col(SyncRun.id) == run_id))
        ).scalar()
    if company_id is not None:
        await run_sync(env.db, env.settings, company_id, run_id, env.stopping)


def last_due(hour: int, time_zone: str, now: dt.datetime) -> dt.datetime:
    """The latest time at or before `now` that the clock in `time_zone` read `hour`:00."""
    local = now.astimezone(zone(time_zone))
    due = dt.datetime.combine(local.date(), dt.time(hour), tzinfo=local.tzinfo)
    if due > local:
        due = dt.datetime.combine(
            local.date() - dt.timedelta(days=1), dt.time(hour), tzinfo=local.tzinfo
        )
    return due.astimezone(dt.UTC)


async def start_nightly_syncs(env: JobEnv, now: dt.datetime) -> list[int]:
    """Start the nightly sync of each connection (of a provider whose users are synced) whose
    hour has come and that has not synced since; the ids of the connections started."""
    latest = (
        select(col(SyncRun.connection_id), func.max(SyncRun.started_at).label("started_at"))
        # A person's own sync reads one account: it is not the night's sync of them all.
        .where(col(SyncRun.person_id).is_(None))
        .group_by(col(SyncRun.connection_id))
        .subquery()
    )
    synced = [key for key, kind in KINDS.items() if kind.people == AUTOMATIC]
    query = (
        select(ConferencingConnection, col(Company.default_time_zone), latest.c.started_at)
        .join(Company, col(Company.id) == col(ConferencingConnection.company_id))
        .outerjoin(latest, latest.c.connection_id == col(ConferencingConnection.id))
        .where(col(ConferencingConnection.provider).in_(synced))
    )
    async with env.db.session(company_id=UNSCOPED) as session:
        rows = (await session.execute(query)).all()
    started = []
    for connection, time_zone, last_started in rows:
        due = last_due(connection.sync_hour, time_zone, now)
        if now - due > CATCH_UP or connection.connected_at > due:
            continue
        if last_started is not None and last_started >= due:
            continue
        async with env.db.transaction(company_id=connection.company_id) as session:
            # Removed since the query above, or not: the company's own session says.
            mine = await connection_by_id(session, connection.id or 0)
            if mine is not None:
                await request_sync(session, mine, trigger=NIGHTLY)
                started.append(mine.id or 0)
    if started:
        log.info("conferencing: nightly sync started for %d connections", len(started))
    return started


async def _nightly(env: JobEnv) -> None:
    await start_nightly_syncs(env, utcnow())


SYNC_CONFERENCING = Job(SYNC_JOB, _sync)
# Every quarter of an hour: a connection's hour comes at :00 in its company's zone, and some
# zones are offset from UTC by a quarter or a half hour.
START_NIGHTLY_SYNCS = Job("start_nightly_conferencing_syncs", _nightly, cron="*/15 * * * *")
JOBS = (SYNC_CONFERENCING, START_NIGHTLY_SYNCS, SYNC_PERSON)
