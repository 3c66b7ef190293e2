"""The calendar under load, on SQLite and on PostgreSQL, against bench/pages.py's baseline.

    .venv/bin/python bench/calendar.py [--people 10000] [--events 5000] [--recurring 500]
        [--seconds 10] [--connections 50] [--database-url postgresql://postgres@127.0.0.1/test]

One person (the demo admin) with `--events` events, `--recurring` of them weekly series, in a
company of `--people`, spread over five years around today, each with three participants. The
portal serves the month view, the week view and the agenda (whole pages) and the person's
feed; the baseline is bench/pages.py's bare Starlette + Jinja app (one raw sqlite3 lookup by
primary key, a template of the same size), measured in the same run with the same uvicorn
settings. Prints req/s, p50, p99 and the share of the baseline for each, on SQLite and, with
`--database-url` (a server where a scratch database can be created), on PostgreSQL too.
Targets: month view p99 under 50 ms and a share of at least 0.15; the feed under 200 ms.

Needs wrk (Debian's package; `make bench` installs it when run as root).
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, a bench's own folder comes first on the path, where this file would stand
# in for the standard library's calendar module (which email and http import): the project's
# root takes its place.
sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse
import datetime as dt
import json
import os
import random
import secrets
import shutil
import statistics
import tempfile
import time
from typing import Any

import httpx
from sqlalchemy import create_engine, insert, select

from bench.pages import (
    EMAIL,
    Load,
    build_demo,
    free_port,
    load_options,
    measure,
    serving,
    sign_in,
    uvicorn_command,
)
from portal.accounts.models import User
from portal.calendar.models import CalendarEvent, CalendarFeed, EventParticipant
from portal.calendar.recurrence import last_end
from portal.db import sync_url
from tests.servers import scratch_postgres_database

MONTH_P99_MS = 50.0
MONTH_SHARE = 0.15
FEED_MS = 200.0
ZONES = ("Europe/Berlin", "America/New_York", "UTC")


def seed_events(database_url: str, events: int, recurring: int) -> str:
    """The demo admin's events, written directly; returns the admin's feed token."""
    engine = create_engine(sync_url(database_url))
    rng = random.Random(12)
    today = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    with engine.begin() as connection:
        admin = connection.execute(select(User).where(User.email == EMAIL)).one()
        others = connection.execute(
            select(User.id, User.email, User.display_name)
            .where(User.company_id == admin.company_id, User.id != admin.id)
            .limit(200)
        ).all()
        rows = [_event_row(admin, rng, today, number < recurring) for number in range(events)]
        ids = connection.execute(insert(CalendarEvent).returning(CalendarEvent.id), rows).scalars()
        participants = [
            {
                "company_id": admin.company_id,
                "event_id": event_id,
                "user_id": person.id,
                "email": person.email,
                "name": person.display_name,
                "partstat": "NEEDS-ACTION",
                "join_token": secrets.token_urlsafe(32),
            }
            for event_id in ids
            for person in rng.sample(others, 3)
        ]
        connection.execute(insert(EventParticipant), participants)
        token = secrets.token_urlsafe(32)
        connection.execute(
            insert(CalendarFeed),
            [{"company_id": admin.company_id, "user_id": admin.id, "token": token,
              "created_at": today}],
        )  # fmt: skip
    engine.dispose()
    return token


def _event_row(admin: Any, rng: random.Random, today: dt.datetime, repeats: bool) -> dict[str, Any]:
    """One event somewhere from two years back to three years ahead, during working hours."""
    start = today + dt.timedelta(days=rng.randint(-730, 1095), hours=rng.randint(7, 17))
    start = start.replace(minute=rng.choice((0, 15, 30, 45)))
    event = CalendarEvent(
        company_id=admin.company_id,
        organizer_id=admin.id,
        uid=f"{secrets.token_hex(16)}@bench.example",
        title=f"Bench event {rng.randint(1, 10**6)}",
        description="An agenda, a few lines long.\nSecond line.",
        location=rng.choice(("", "Room 4.12", "Berlin office")),
        time_zone=rng.choice(ZONES),
        starts_at=start,
        ends_at=start + dt.timedelta(minutes=rng.choice((30, 60, 90))),
        rrule=f"FREQ=WEEKLY;COUNT={rng.randint(5, 20)}" if repeats else "",
        last_ends_at=start,
        uses_room=rng.random() < 0.3,
        room_url="https://meet.jit.si/portal-bench",
        created_at=today,
        updated_at=today,
    )
    event.last_ends_at = last_end(event)
    row = event.model_dump(exclude={"id"})
    return row


def single_request_ms(url: str, headers: dict[str, str], times: int = 20) -> float:
    """The median time of one request alone: what a calendar client polling the feed waits."""
    durations = []
    with httpx.Client(headers=headers, timeout=30) as client:
        for _ in range(times):
            began = time.perf_counter()
            response = client.get(url)
            durations.append((time.perf_counter() - began) * 1000)
            if response.status_code != 200:
                raise SystemExit(f"{url} answered {response.status_code}")
    return statistics.median(durations)


def run_portal(
    label: str, env: dict[str, str], token: str, port: int, data_dir: Path, args: argparse.Namespace
) -> tuple[dict[str, Load], dict[str, int], float]:
    today = dt.date.today().isoformat()
    paths = {
        "month": f"/calendar?view=month&date={today}",
        "week": f"/calendar?view=week&date={today}",
        "agenda": f"/calendar?view=agenda&date={today}",
        "feed": f"/calendar/feed/{token}.ics",
    }
    command = uvicorn_command("portal.asgi:app", port, args.workers, args.loop)
    with serving(command, env, port, data_dir / f"portal-{label}.log") as url:
        cookie = {"Cookie": sign_in(url)}
        sizes = {}
        for name, path in paths.items():
            response = httpx.get(url + path, headers=cookie, timeout=30)
            if response.status_code != 200:
                raise SystemExit(f"{label} {path} answered {response.status_code}")
            sizes[name] = len(response.content)
        feed_ms = single_request_ms(url + paths["feed"], {})
        loads = {name: measure(url + path, cookie, args) for name, path in paths.items()}
    return loads, sizes, feed_ms


def report(label: str, baseline: dict[str, Load], portal: dict[str, Load], feed_ms: float) -> None:
    print(f"\n{label}\n{'page':<10}{'server':<10}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}  share")
    for name, load in portal.items():
        base = baseline[name]
        # A baseline that answered next to nothing in the time (the feed's 2.7 MB page on a busy
        # machine: none, or one request) gives no share worth printing.
        base_rate = base.requests_per_second if base.requests_per_second >= 1 else float("nan")
        share = load.requests_per_second / base_rate
        note = ""
        if name == "month":
            ok = share >= MONTH_SHARE and load.p99_ms < MONTH_P99_MS
            note = f" (target >= {MONTH_SHARE} and p99 < {MONTH_P99_MS:.0f} ms: "
            note += "ok)" if ok else "SHORT)"
        for server, row in (("baseline", base), ("portal", load)):
            print(
                f"{name if server == 'baseline' else '':<10}{server:<10}"
                f"{row.requests_per_second:>9.0f}{row.p50_ms:>9.2f}{row.p99_ms:>9.2f}",
                end="",
            )
            print(f"  {share:.2f}{note}" if server == "portal" else "")
    verdict = "ok" if feed_ms < FEED_MS else "SHORT"
    print(f"feed alone: {feed_ms:.0f} ms a request (target < {FEED_MS:.0f} ms: {verdict})")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--people", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=5_000)
    parser.add_argument("--recurring", type=int, default=500)
    load_options(parser)
    parser.add_argument("--database-url", help="also run on this PostgreSQL server")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("bench/calendar.py needs wrk: `apt-get install wrk`")
    with tempfile.TemporaryDirectory(prefix="bench-calendar-") as tmp:
        data_dir = Path(tmp)
        port, baseline_port = free_port(), free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("PORTAL_")}
        env |= {"PORTAL_DATA_DIR": tmp, "PORTAL_BASE_URL": f"http://127.0.0.1:{port}"}
        build_demo(args.people, env)
        database = data_dir / "portal.db"
        token = seed_events(f"sqlite:///{database}", args.events, args.recurring)
        runs = {"SQLite": run_portal("sqlite", env, token, port, data_dir, args)}
        if args.database_url:
            with scratch_postgres_database(args.database_url, "portal_bench_calendar") as url:
                pg_env = env | {"PORTAL_DATABASE_URL": url, "PORTAL_MIGRATE_ON_START": "true"}
                pg_env["PORTAL_SECRET_KEY"] = secrets.token_urlsafe(48)
                build_demo(args.people, pg_env)
                pg_token = seed_events(url, args.events, args.recurring)
                runs["PostgreSQL"] = run_portal("pg", pg_env, pg_token, port, data_dir, args)
        sizes = next(iter(runs.values()))[1]
        baseline_env = env | {"BENCH_DATABASE": str(database), "BENCH_SIZES": json.dumps(sizes)}
        baseline_command = [
            *uvicorn_command("bench.pages:baseline_app", baseline_port, args.workers),
            "--factory",
        ]
        log = data_dir / "baseline.log"
        with serving(baseline_command, baseline_env, baseline_port, log) as baseline_url:
            baseline = {name: measure(f"{baseline_url}/{name}/1", {}, args) for name in sizes}
    print(
        f"{args.people} people; {args.events} events ({args.recurring} weekly series) of one "
        f"person; wrk -t{args.threads} -c{args.connections} -d{args.seconds}s; uvicorn --workers "
        f"{args.workers} --http httptools, --loop {args.loop} (baseline: uvloop); response bytes "
        f"{sizes}"
    )
    for label, (loads, _, feed_ms) in runs.items():
        report(label, baseline, loads, feed_ms)


if __name__ == "__main__":
    main()
