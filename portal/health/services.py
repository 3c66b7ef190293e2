"""What readiness means: the database answers, its schema is the code's, and on PostgreSQL in
worker mode a `portal worker` has said it is alive lately."""

from __future__ import annotations

import asyncio
import functools
import logging

from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.exc import ProgrammingError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection

from portal import migrate
from portal.db import Database
from portal.settings import Settings

log = logging.getLogger(__name__)

OK = "ok"
# A probe that waits longer than this on the database is as good as a refusal.
CHECK_TIMEOUT_SECONDS = 5.0
# Workers beat every 10 seconds (procrastinate's default); allow a couple of missed beats.
WORKER_HEARTBEAT_MINUTES = 2

_REVISIONS = text("SELECT version_num FROM alembic_version")
_LIVE_WORKERS = text(
    "SELECT count(*) FROM procrastinate_workers"
    " WHERE last_heartbeat > now() - make_interval(mins => :minutes)"
).bindparams(minutes=WORKER_HEARTBEAT_MINUTES)


@functools.cache
def schema_heads(database_url: str) -> frozenset[str]:
    """The migrations' head revisions, as this code knows them."""
    scripts = ScriptDirectory.from_config(migrate.alembic_config(database_url))
    return frozenset(scripts.get_heads())


async def readiness(db: Database, settings: Settings) -> dict[str, str]:
    """Each check's outcome: OK, or what is wrong in a few words (never any company's data)."""
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
            return await _checks(db, settings)
    except TimeoutError:
        log.warning("readiness: no answer from the database in %.0f s", CHECK_TIMEOUT_SECONDS)
        return {"database": "no answer"}
    except (SQLAlchemyError, OSError) as error:
        # Unreachable, or a table missing (a database never upgraded): the log says which.
        log.warning("readiness: the database failed: %s", error)
        return {"database": f"failed ({type(error).__name__}, see the log)"}


async def _checks(db: Database, settings: Settings) -> dict[str, str]:
    checks = {"database": OK}
    async with db.engine.connect() as connection:
        revisions = frozenset((await connection.execute(_REVISIONS)).scalars())
        heads = schema_heads(settings.database_url)
        checks["migrations"] = OK if revisions == heads else "not at head: run portal db upgrade"
        if not settings.is_embedded and settings.jobs_runner == "worker":
            checks["worker"] = await _worker_check(connection)
    return checks


async def _worker_check(connection: AsyncConnection) -> str:
    try:
        workers = (await connection.execute(_LIVE_WORKERS)).scalar_one()
    except ProgrammingError:
        return "procrastinate's tables are missing: run portal db upgrade"
    return OK if workers else f"no worker heartbeat in {WORKER_HEARTBEAT_MINUTES} minutes"
