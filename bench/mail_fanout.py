"""1,000 invitation emails (each with an .ics part) through the outbox to a loopback SMTP server,
against raw aiosmtplib sending the same messages over the same number of reused connections.

    .venv/bin/python bench/mail_fanout.py [--messages 1000] [--connections 4] [--rounds 7]
                                          [--database-url postgresql://postgres@127.0.0.1/test]

The SMTP server (aiosmtpd) runs in a process of its own, as a mail server runs on another
machine in production: in this process it would take the GIL from both paths. Each round builds
the raw path's messages and queues as many in the outbox (neither timed), then times raw
aiosmtplib sending its prebuilt messages and the outbox claiming, building, sending and marking
its own, in an order that alternates from round to round. Prints messages/s for each path and
the outbox's share of the raw rate per round, then the medians (target: a share of 0.90).
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, a bench's own folder comes first on the path, where bench/calendar.py would
# stand in for the standard library's calendar module (which email and http import): the
# project's root takes its place.
sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse
import asyncio
import contextlib
import dataclasses
import gc
import multiprocessing
import os
import secrets
import socket
import statistics
import tempfile
import time
from collections.abc import Iterator
from email.message import Message
from email.utils import make_msgid
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event
from urllib.parse import urlsplit

import aiosmtplib
import psycopg
from aiosmtpd.controller import Controller
from sqlalchemy.engine import make_url
from starlette.datastructures import Secret

from portal import migrate
from portal.accounts.models import Company
from portal.db import UNSCOPED, Database, utcnow
from portal.mail.dispatch import send_outbox
from portal.mail.messages import EmailContent, OutgoingMessage, build_mime
from portal.mail.outbox import enqueue
from portal.mail.smtp import SmtpSender
from portal.settings import Settings, SmtpSettings

ICS = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//portal//bench//EN\r\nMETHOD:REQUEST\r\n"
    "BEGIN:VEVENT\r\nUID:{uid}@portal\r\nDTSTAMP:20261123T120000Z\r\nDTSTART:20261124T090000Z\r\n"
    "DTEND:20261124T093000Z\r\nSUMMARY:Quarterly planning\r\n"
    "ORGANIZER;CN=Ada:mailto:ada@acme.example\r\n"
    "ATTENDEE;CN=Person {i};RSVP=TRUE:mailto:person{i}@acme.example\r\nSEQUENCE:0\r\n"
    "END:VEVENT\r\nEND:VCALENDAR\r\n"
)
CONTENT = EmailContent(
    subject="Invitation: Quarterly planning",
    text="Ada Lovelace invites you to Quarterly planning.\n\nJoin: https://portal.example/join/abc\n"
    * 3,
    html="<p>Ada Lovelace invites you to <strong>Quarterly planning</strong>.</p>" * 3,
)


class Counter:
    def __init__(self, count: Synchronized[int]) -> None:
        self.count = count

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        self.count.value += 1  # one writer: the server process's event loop
        return "250 OK"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve_smtp(port: int, count: Synchronized[int], ready: Event, stop: Event) -> None:
    """The server process: aiosmtpd on loopback until told to stop."""
    controller = Controller(Counter(count), hostname="127.0.0.1", port=port)
    controller.start()
    ready.set()
    stop.wait()
    controller.stop()


class SmtpServerProcess:
    """aiosmtpd in another process, counting the messages it accepts."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        self.port = free_port()
        self._count: Synchronized[int] = context.Value("q", 0)
        self._ready = context.Event()
        self._stop = context.Event()
        self._process = context.Process(
            target=serve_smtp, args=(self.port, self._count, self._ready, self._stop), daemon=True
        )

    @property
    def count(self) -> int:
        return int(self._count.value)

    def start(self) -> None:
        self._process.start()
        if not self._ready.wait(timeout=30):
            self._process.kill()
            raise RuntimeError("the SMTP server process did not start")

    def stop(self) -> None:
        self._stop.set()
        self._process.join(timeout=10)
        if self._process.is_alive():
            self._process.kill()


async def raw(messages: list[Message], port: int, connections: int) -> float:
    async def one_connection(share: list[Message]) -> None:
        async with aiosmtplib.SMTP(
            hostname="127.0.0.1", port=port, start_tls=False, timeout=15
        ) as client:
            for message in share:
                await client.send_message(message)

    started = time.perf_counter()
    await asyncio.gather(*(one_connection(messages[i::connections]) for i in range(connections)))
    return time.perf_counter() - started


async def create_company(db: Database) -> int:
    async with db.session(company_id=UNSCOPED, write=True) as session:
        company = Company(name="Acme", slug="acme")
        session.add(company)
        await session.commit()
        return company.id or 0


async def queue_invitations(db: Database, settings: Settings, company_id: int, count: int) -> float:
    started = time.perf_counter()
    async with db.session(company_id=UNSCOPED, write=True) as session:
        for i in range(count):
            enqueue(
                session,
                settings,
                company_id=company_id,
                to_address=f"person{i}@acme.example",
                to_name=f"Person {i}",
                content=CONTENT,
                template="invitation",
                reply_to="ada@acme.example",
                calendar_method="REQUEST",
                calendar_ics=ICS.format(uid=i, i=i),
            )
        await session.commit()
    return time.perf_counter() - started


def same_messages(count: int, settings: Settings) -> list[Message]:
    """What the outbox sends, built the same way, so the raw path pays only for sending."""
    domain = urlsplit(settings.base_url).hostname
    created_at = utcnow()
    rows = [
        OutgoingMessage(
            id=i,
            message_id=make_msgid(domain=domain),
            to_address=f"person{i}@acme.example",
            to_name=f"Person {i}",
            reply_to="ada@acme.example",
            subject=CONTENT.subject,
            body_text=CONTENT.text,
            body_html=CONTENT.html,
            calendar_method="REQUEST",
            calendar_ics=ICS.format(uid=i, i=i),
            created_at=created_at,
            attempts=1,
        )
        for i in range(count)
    ]
    return [build_mime(row, [], settings.smtp.mail_from) for row in rows]


@dataclasses.dataclass(frozen=True)
class Round:
    raw_rate: float
    outbox_rate: float
    queued_seconds: float

    @property
    def ratio(self) -> float:
        return self.outbox_rate / self.raw_rate


async def outbox(db: Database, settings: Settings, count: int, connections: int) -> float:
    started = time.perf_counter()
    report = await send_outbox(db, settings, SmtpSender(settings.smtp, connections=connections))
    seconds = time.perf_counter() - started
    assert report.sent == count and not report.retrying and not report.failed, report
    return seconds


async def one_round(
    number: int,
    db: Database,
    settings: Settings,
    server: SmtpServerProcess,
    company_id: int,
    args: argparse.Namespace,
) -> Round:
    """Raw aiosmtplib and the outbox, each sending `args.messages` to the same server.

    Which goes first alternates from round to round, so neither gains from the order.
    """
    before = server.count
    messages = same_messages(args.messages, settings)
    queued_seconds = await queue_invitations(db, settings, company_id, args.messages)
    seconds: dict[str, float] = {}
    for path in ["raw", "outbox"] if number % 2 else ["outbox", "raw"]:
        # Each path starts with no garbage left by the set-up (or by the other path) to collect.
        gc.collect()
        if path == "raw":
            seconds[path] = await raw(messages, server.port, args.connections)
        else:
            seconds[path] = await outbox(db, settings, args.messages, args.connections)
    assert server.count - before == 2 * args.messages, server.count - before
    rate = {path: args.messages / elapsed for path, elapsed in seconds.items()}
    return Round(rate["raw"], rate["outbox"], queued_seconds)


@contextlib.contextmanager
def scratch_database(server_url: str | None, tmp: str) -> Iterator[str]:
    """A fresh, migrated database: a SQLite file, or one made on the PostgreSQL server and dropped.

    The outbox sends whatever is due, so the bench must not share a database with anyone.
    """
    if server_url is None:
        url = f"sqlite:///{tmp}/bench.db"
        migrate.upgrade(url)
        yield url
        return
    plain = make_url(server_url).set(drivername="postgresql")
    admin_url = plain.render_as_string(hide_password=False)
    name = f"portal_bench_{os.getpid()}_{secrets.token_hex(3)}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        url = plain.set(database=name).render_as_string(hide_password=False)
        migrate.upgrade(url)
        yield url
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def run(args: argparse.Namespace, server: SmtpServerProcess) -> list[Round]:
    with tempfile.TemporaryDirectory() as tmp, scratch_database(args.database_url, tmp) as url:
        smtp = SmtpSettings(
            host="127.0.0.1", port=server.port, tls="none", mail_from="Portal <portal@acme.example>"
        )
        settings = dataclasses.replace(
            Settings(database_url=url, secret_key=Secret("bench" * 10)),
            smtp=smtp,
            data_dir=Path(tmp),
        )
        backend = "PostgreSQL" if url.startswith("postgres") else "SQLite"
        print(
            f"{args.messages} invitations with .ics, {args.connections} connections, "
            f"{backend} outbox, SMTP server in its own process"
        )
        print("  round   raw aiosmtplib   outbox dispatch   ratio   (queueing)")
        db = Database(url)
        try:
            company_id = await create_company(db)
            rounds: list[Round] = []
            for number in range(1, args.rounds + 1):
                result = await one_round(number, db, settings, server, company_id, args)
                rounds.append(result)
                print(
                    f"  {number:5}   {result.raw_rate:8.0f} msg/s   {result.outbox_rate:9.0f} msg/s"
                    f"   {result.ratio:5.2f}   ({result.queued_seconds:.2f} s)"
                )
            return rounds
        finally:
            await db.dispose()


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument(
        "--database-url",
        help="a PostgreSQL server to make a scratch database on (default: a fresh SQLite file)",
    )
    args = parser.parse_args()
    server = SmtpServerProcess()
    server.start()
    try:
        rounds = await run(args, server)
    finally:
        server.stop()
    ratios = [r.ratio for r in rounds]
    print(
        f"  median  {statistics.median(r.raw_rate for r in rounds):8.0f} msg/s"
        f"   {statistics.median(r.outbox_rate for r in rounds):9.0f} msg/s"
        f"   {statistics.median(ratios):5.2f}   (min ratio {min(ratios):.2f}; target >= 0.90)"
    )


if __name__ == "__main__":
    asyncio.run(main())
