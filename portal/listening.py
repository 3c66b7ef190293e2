"""LISTEN on a PostgreSQL channel from a connection of its own, for as long as the process runs:
what live notices and kept reads (portal.freshness) hear of other processes by."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import psycopg

log = logging.getLogger(__name__)

# The connection, quiet this long, is asked whether it is still there; one that does not answer
# within as long is given up for a new one (a peer gone without a word, which keepalives would
# find only minutes later).
QUIET_SECONDS = 15.0
RECONNECT_FIRST_SECONDS = 0.5
RECONNECT_MAX_SECONDS = 30.0


async def listen(
    conninfo: str,
    channel: str,
    *,
    name: str,
    heard: Callable[[str], None],
    listening: Callable[[], None],
    lost: Callable[[], None],
) -> None:
    """Hand `heard` each payload NOTIFYed on `channel`, until cancelled. `listening` is called
    once each LISTEN is in place, `lost` once it is gone (a notice sent meanwhile is never
    heard); in between the connection is made again, waiting longer each time it fails.
    `name` is the connection's application_name, for the operator's pg_stat_activity."""
    delay = RECONNECT_FIRST_SECONDS
    while True:
        try:
            async with await psycopg.AsyncConnection.connect(
                conninfo,
                autocommit=True,
                application_name=name,
                connect_timeout=int(QUIET_SECONDS),
                keepalives=1,
                keepalives_idle=30,
                keepalives_interval=10,
                keepalives_count=3,
            ) as connection:
                await connection.execute(f"LISTEN {channel}")
                try:
                    listening()
                    delay = RECONNECT_FIRST_SECONDS
                    while True:
                        async for notice in connection.notifies(timeout=QUIET_SECONDS):
                            heard(notice.payload)
                        await asyncio.wait_for(connection.execute("SELECT 1"), QUIET_SECONDS)
                finally:
                    lost()
        except (psycopg.Error, TimeoutError) as error:
            log.warning("%s: listener lost (%s); retrying in %.1f s", name, error, delay)
        except Exception:
            # Whatever went wrong, a listener that stops for good would leave the process deaf.
            log.exception("%s: listener failed; retrying in %.1f s", name, delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, RECONNECT_MAX_SECONDS)
