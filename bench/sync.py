"""A Zoom sync at scale, on SQLite and on PostgreSQL.

    .venv/bin/python bench/sync.py [--people 100000] [--database-url postgresql://postgres@127.0.0.1/test]

A Zoom simulator account (tests/conferencing/zoom_simulator.py, served in its own process so its
memory is not counted) with as many users as the portal company has people: 90% of them share
a person's email (one in ten of those in other letter case), the rest are strangers. Measures
the full first sync (every page read, the whole mapping written in one transaction), then the
same sync again with nothing changed: wall time (and this process's CPU time, which other work on
the machine changes less), SQL statements issued (an executemany counts once) and this process's
peak memory (RSS, the simulator excluded). Targets: the first sync under 5 s and 300 MB, the
unchanged re-sync under 2 s.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse
import asyncio
import contextlib
import dataclasses
import os
import resource
import secrets
import subprocess
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import httpx
from sqlalchemy import event, insert, select
from starlette.datastructures import Secret

from portal import migrate
from portal.accounts.models import Company, User
from portal.conferencing.connections import connect, connection_by_id
from portal.conferencing.sync import request_sync, run_sync
from portal.db import UNSCOPED, Database
from portal.settings import Settings
from tests.servers import free_port, scratch_postgres_database

FIRST_SYNC_S = 5.0
RESYNC_S = 2.0
MEMORY_MB = 300.0
CREDENTIALS = {"account_id": "acct", "client_id": "client", "client_secret": "secret"}

# The simulator's process: the account's users, then serve it.
SIMULATOR = """
import sys, uvicorn
from tests.conferencing.zoom_simulator import ZoomAccount, zoom_app
people, port = int(sys.argv[1]), int(sys.argv[2])
account = ZoomAccount("acct", "client", "secret")
for n in range(people):
    if n % 10 == 9:
        account.add_user(f"stranger{n}@elsewhere.example", "Stranger", str(n))
    else:
        email = f"person{n}@acme.example"
        account.add_user(email.upper() if n % 10 == 0 else email, "Person", str(n))
for user_id in account.users:
    account.listed(user_id)  # its encoding done before: the simulator is not what is measured
uvicorn.run(zoom_app(account), host="127.0.0.1", port=port, log_level="warning")
"""


@contextlib.contextmanager
def simulator(people: int) -> Iterator[str]:
    port = free_port()
    root = Path(__file__).resolve().parent.parent
    process = subprocess.Popen(
        [sys.executable, "-c", SIMULATOR, str(people), str(port)], cwd=root, env=os.environ
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            with contextlib.suppress(httpx.TransportError):
                httpx.get(f"{url}/v2/users/me", timeout=1)
                break
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the Zoom simulator did not start")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def seed(database_url: str, people: int) -> None:
    """Migrate and seed in a process of their own: their memory is not the sync's."""
    command = [sys.executable, __file__, "--seed", database_url, "--people", str(people)]
    subprocess.run(command, check=True)


async def _seed(database_url: str, people: int) -> None:
    """A company of `people`, written directly."""
    migrate.upgrade(database_url)
    db = Database(database_url)
    async with db.transaction(company_id=UNSCOPED) as session:
        company = Company(name="Acme", slug="acme")
        session.add(company)
        await session.flush()
        rows = [
            {
                "company_id": company.id,
                "email": f"person{n}@acme.example",
                "display_name": f"Person {n}",
                "title": "",
                "department": "",
                "phone": "",
                "time_zone": "UTC",
                "role": "member",
                "active": True,
                "session_version": 1,
                "created_at": company.created_at,
            }
            for n in range(people)
        ]
        for start in range(0, people, 10_000):
            await session.execute(insert(User), rows[start : start + 10_000])
    await db.dispose()


@dataclasses.dataclass
class Measure:
    seconds: float
    cpu_seconds: float  # this process's: what the sync itself costs, whatever else runs
    statements: int
    peak_mb: float
    summary: str


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def one_sync(
    db: Database, settings: Settings, company_id: int, connection_id: int
) -> Measure:
    statements = 0

    def count(*_: Any) -> None:
        nonlocal statements
        statements += 1

    event.listen(db.engine.sync_engine, "before_cursor_execute", count)
    started, cpu_started = time.perf_counter(), time.process_time()
    async with db.transaction(company_id=company_id) as session:
        connection = await connection_by_id(session, connection_id)
        assert connection is not None
        run = await request_sync(session, connection)
    done = await run_sync(db, settings, company_id, run.id or 0)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    event.remove(db.engine.sync_engine, "before_cursor_execute", count)
    assert done is not None
    if done.error:
        raise SystemExit(f"the sync failed: {done.error}")
    summary = (
        f"{done.pages_read} pages, {done.users_seen} users, {done.newly_mapped} newly mapped, "
        f"{done.still_unmapped} people unmapped"
    )
    return Measure(seconds, cpu_seconds, statements, peak_rss_mb(), summary)


async def bench(label: str, database_url: str, zoom_url: str, people: int, data: Path) -> None:
    seed(database_url, people)
    settings = Settings(
        database_url=database_url,
        secret_key=Secret(secrets.token_urlsafe(48)),
        data_dir=data,
        provider_endpoints={"zoom_api": f"{zoom_url}/v2", "zoom_oauth": f"{zoom_url}/oauth/token"},
    )
    db = Database(database_url)
    try:
        async with db.session(company_id=UNSCOPED) as session:
            company_id = (await session.execute(select(Company.id))).scalar_one()
        async with db.transaction(company_id=company_id) as session:
            connection = await connect(session, settings, company_id, "zoom", CREDENTIALS)
        connection_id = connection.id or 0
        before = peak_rss_mb()
        first = await one_sync(db, settings, company_id, connection_id)
        again = await one_sync(db, settings, company_id, connection_id)
    finally:
        await db.dispose()
    print(f"{label}: RSS before the first sync {before:.0f} MB")
    for name, measure, target in [
        ("first sync", first, FIRST_SYNC_S),
        ("re-sync", again, RESYNC_S),
    ]:
        verdict = "ok" if measure.seconds < target and measure.peak_mb < MEMORY_MB else "MISSED"
        print(
            f"  {name}: {measure.seconds:.2f} s (target {target:.0f} s; CPU "
            f"{measure.cpu_seconds:.2f} s), {measure.statements} "
            f"statements, peak RSS {measure.peak_mb:.0f} MB (target {MEMORY_MB:.0f}) [{verdict}]"
            f"; {measure.summary}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--people", type=int, default=100_000)
    parser.add_argument("--database-url", help="also run on this PostgreSQL server")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--seed", help=argparse.SUPPRESS)
    parser.add_argument("--measure", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.seed:
        asyncio.run(_seed(args.seed, args.people))
        return
    if args.measure:
        label, database_url, zoom_url = args.measure
        with tempfile.TemporaryDirectory() as tmp:
            asyncio.run(bench(label, database_url, zoom_url, args.people, Path(tmp)))
        return
    print(f"{args.people} portal people; as many Zoom users, 90% of them matching")
    with simulator(args.people) as zoom_url, tempfile.TemporaryDirectory() as tmp:
        if not args.skip_sqlite:
            measure_apart("SQLite", f"sqlite:///{Path(tmp) / 'portal.db'}", zoom_url, args.people)
        if args.database_url:
            with scratch_postgres_database(args.database_url, "portal_bench_sync") as url:
                measure_apart("PostgreSQL", url, zoom_url, args.people)


def measure_apart(label: str, database_url: str, zoom_url: str, people: int) -> None:
    """Each database's syncs in a process of their own, so each peak RSS is its own."""
    command = [sys.executable, __file__, "--measure", label, database_url, zoom_url]
    subprocess.run([*command, "--people", str(people)], check=True)


if __name__ == "__main__":
    main()
