"""1,000 invitation emails (each with an .ics part) through the outbox to a loopback SMTP server,
against raw aiosmtplib sending the same messages over the same number of reused connections.

    .venv/bin/python bench/mail_fanout.py [--messages 1000] [--connections 4] [--database-url URL]

Prints messages/s for each path and the outbox's share of the raw rate (target: at least 0.90).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import socket
import tempfile
import time
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib
from aiosmtpd.controller import Controller
from starlette.datastructures import Secret

from portal import migrate
from portal.accounts.models import Company
from portal.db import UNSCOPED, Database
from portal.mail.messages import EmailContent, build_mime
from portal.mail.models import OutboxMessage
from portal.mail.outbox import enqueue, send_outbox
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
    def __init__(self) -> None:
        self.count = 0

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        self.count += 1
        return "250 OK"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def raw(messages: list[EmailMessage], port: int, connections: int) -> float:
    async def one_connection(share: list[EmailMessage]) -> None:
        async with aiosmtplib.SMTP(
            hostname="127.0.0.1", port=port, start_tls=False, timeout=15
        ) as client:
            for message in share:
                await client.send_message(message)

    started = time.perf_counter()
    await asyncio.gather(*(one_connection(messages[i::connections]) for i in range(connections)))
    return time.perf_counter() - started


async def queue_invitations(db: Database, settings: Settings, count: int) -> float:
    started = time.perf_counter()
    async with db.session(company_id=UNSCOPED, write=True) as session:
        company = Company(name="Acme", slug="acme")
        session.add(company)
        await session.flush()
        for i in range(count):
            enqueue(
                session,
                settings,
                company_id=company.id or 0,
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


def same_messages(count: int, mail_from: str) -> list[EmailMessage]:
    rows = [
        OutboxMessage(
            id=i,
            company_id=1,
            message_id=f"<bench-{i}@portal>",
            to_address=f"person{i}@acme.example",
            to_name=f"Person {i}",
            reply_to="ada@acme.example",
            subject=CONTENT.subject,
            body_text=CONTENT.text,
            body_html=CONTENT.html,
            template="invitation",
            calendar_method="REQUEST",
            calendar_ics=ICS.format(uid=i, i=i),
        )
        for i in range(count)
    ]
    return [build_mime(row, [], mail_from) for row in rows]


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--database-url", help="default: a fresh SQLite file")
    args = parser.parse_args()

    counter = Counter()
    port = free_port()
    controller = Controller(counter, hostname="127.0.0.1", port=port)
    controller.start()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{tmp}/bench.db"
        migrate.upgrade(url)
        smtp = SmtpSettings(
            host="127.0.0.1", port=port, tls="none", mail_from="Portal <portal@acme.example>"
        )
        settings = dataclasses.replace(
            Settings(database_url=url, secret_key=Secret("bench" * 10)),
            smtp=smtp,
            data_dir=Path(tmp),
        )
        db = Database(url)
        try:
            raw_seconds = await raw(
                same_messages(args.messages, smtp.mail_from), port, args.connections
            )
            queued_seconds = await queue_invitations(db, settings, args.messages)
            started = time.perf_counter()
            report = await send_outbox(db, settings, SmtpSender(smtp, connections=args.connections))
            outbox_seconds = time.perf_counter() - started
        finally:
            await db.dispose()
            controller.stop()
    assert report.sent == args.messages, report
    assert counter.count == 2 * args.messages, counter.count
    raw_rate = args.messages / raw_seconds
    outbox_rate = args.messages / outbox_seconds
    backend = "PostgreSQL" if url.startswith("postgres") else "SQLite"
    print(
        f"{args.messages} invitations with .ics, {args.connections} connections, {backend} outbox"
    )
    print(f"  raw aiosmtplib      {raw_rate:8.0f} msg/s")
    print(f"  outbox dispatch     {outbox_rate:8.0f} msg/s  (queueing took {queued_seconds:.2f} s)")
    print(f"  ratio outbox/raw    {outbox_rate / raw_rate:8.2f}  (target >= 0.90)")


if __name__ == "__main__":
    asyncio.run(main())
