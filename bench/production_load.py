"""The production layout under load: 2 web processes and 2 workers on one PostgreSQL database.

A scratch database, an aiosmtpd server, then for `--seconds` a mixed load: people opening
pages, admins adding people (each gets an email), colleagues inviting each other with Meet
Now (a notice and an email each), while `--streams` live-notice streams stay open across
both web processes. It prints the requests that failed, the emails queued but never received
(or received twice), and the invitations whose notice never reached an open stream of the
invitee. Targets: 0, 0 and 0.

    .venv/bin/python bench/production_load.py --admin-url postgresql://postgres@127.0.0.1:5432/test
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
import os
import random
import re
import secrets
import socket
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Iterator

import httpx
import psycopg
from aiosmtpd.controller import Controller
from sqlalchemy.engine import make_url

PASSWORD = "bench password, long enough"  # noqa: S105  (of throwaway people)
SECRET = secrets.token_urlsafe(48)
CSRF = re.compile(r'name="csrf_token" value="([0-9a-f]+)"')
MEMBERS = 20


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def scratch_database(admin_url: str) -> Iterator[str]:
    """An empty database of its own, dropped afterwards."""
    server = make_url(admin_url).set(drivername="postgresql")
    name = f"portal_bench_{os.getpid()}_{secrets.token_hex(3)}"
    with psycopg.connect(server.render_as_string(False), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield server.set(database=name).render_as_string(False)
    finally:
        with psycopg.connect(server.render_as_string(False), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def wait_until_serving(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not start:\n{log.read_text()}")
        time.sleep(0.1)


class Inbox:
    """aiosmtpd's handler: the Message-ID of every message received."""

    def __init__(self) -> None:
        self.message_ids: list[str] = []

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        content: bytes = envelope.content  # type: ignore[attr-defined]
        match = re.search(rb"^Message-ID:\s*(\S+)", content, re.MULTILINE | re.IGNORECASE)
        self.message_ids.append(match.group(1).decode() if match else "?")
        return "250 OK"


def _portal(env: dict[str, str], *args: str, stdin: str = "") -> None:
    subprocess.run(
        [sys.executable, "-m", "portal.cli", *args],
        env=env,
        input=stdin.encode(),
        check=True,
        capture_output=True,
    )


@contextlib.contextmanager
def processes(env: dict[str, str], logs: Path, webs: int, workers: int) -> Iterator[list[str]]:
    """`webs` `portal serve` processes (one uvicorn process each) and `workers` workers."""
    started: list[subprocess.Popen[bytes]] = []
    urls = []
    try:
        for i in range(workers):
            log = (logs / f"worker{i}.log").open("wb")
            command = [sys.executable, "-m", "portal.cli", "worker"]
            started.append(subprocess.Popen(command, env=env, stdout=log, stderr=log))
        for i in range(webs):
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            log_path = logs / f"web{i}.log"
            log = log_path.open("wb")
            command = [sys.executable, "-m", "portal.cli", "serve", "--port", str(port)]
            web_env = {**env, "PORTAL_BASE_URL": url, "WEB_CONCURRENCY": "1"}
            process = subprocess.Popen(command, env=web_env, stdout=log, stderr=log)
            started.append(process)
            wait_until_serving(url, process, log_path)
            urls.append(url)
        yield urls
    finally:
        for process in started:
            process.terminate()
        for process in started:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


async def sign_in(url: str, email: str) -> httpx.AsyncClient:
    client = httpx.AsyncClient(base_url=url, timeout=30)
    token = CSRF.search((await client.get("/signin")).text)
    assert token
    form = {"email": email, "password": PASSWORD, "csrf_token": token.group(1)}
    response = await client.post("/signin", data=form)
    assert response.status_code == 303, response.text
    token = CSRF.search((await client.get("/notifications")).text)
    assert token
    client.headers["X-CSRF-Token"] = token.group(1)
    return client


class Load:
    def __init__(self) -> None:
        self.requests = 0
        self.errors: Counter[str] = Counter()
        self.invited: Counter[int] = Counter()  # invitee id -> invitations
        self.noticed: Counter[int] = Counter()  # stream number -> notices it showed
        self.stream_user: dict[int, int] = {}  # stream number -> whose stream
        self.queued_people = 0
        self.stopping = asyncio.Event()  # the load stops; the streams stay open a while
        self.last_notice_after = 0.0  # seconds after the load stopped (to 5 s)

    def count(self, what: str, response: httpx.Response | BaseException) -> bool:
        self.requests += 1
        if isinstance(response, BaseException):
            self.errors[f"{what}: {type(response).__name__}"] += 1
            return False
        if response.status_code >= 400:
            self.errors[f"{what}: {response.status_code}"] += 1
            return False
        return True


async def stream(
    client: httpx.AsyncClient, number: int, user: int, load: Load, stop: asyncio.Event
) -> None:
    """One open tab: count the notices it is shown."""
    load.stream_user[number] = user
    try:
        async with client.stream("GET", "/notifications/stream", timeout=None) as response:
            if not load.count("stream", response):
                return
            async for line in response.aiter_lines():
                if line == "event: notice":
                    load.noticed[number] += 1
                if stop.is_set():
                    return
    except (httpx.HTTPError, asyncio.CancelledError) as error:
        if not stop.is_set() and not isinstance(error, asyncio.CancelledError):
            load.count("stream", error)


async def browse(client: httpx.AsyncClient, load: Load, stop: asyncio.Event) -> None:
    pages = ["/", "/people", "/people?q=member", "/notifications", "/meetings"]
    while not load.stopping.is_set():
        try:
            load.count("page", await client.get(random.choice(pages)))
        except httpx.HTTPError as error:
            load.count("page", error)


async def invite(
    client: httpx.AsyncClient, me: int, ids: list[int], load: Load, stop: asyncio.Event
) -> None:
    colleagues = [other for other in ids if other != me]
    while not load.stopping.is_set():
        invitee = random.choice(colleagues)
        form = {"invitee": str(invitee), "request_key": secrets.token_urlsafe(16)}
        try:
            response = await client.post("/meetings/start", data=form)
        except httpx.HTTPError as error:
            load.count("invite", error)
            continue
        if load.count("invite", response):
            load.invited[invitee] += 1
        await asyncio.sleep(0.2)


async def add_people(client: httpx.AsyncClient, web: int, load: Load, stop: asyncio.Event) -> None:
    number = 0
    while not load.stopping.is_set():
        number += 1
        person = {
            "display_name": f"New {web}-{number}",
            "email": f"new-{web}-{number}@acme.example",
            "time_zone": "UTC",
        }
        try:
            response = await client.post("/setup/users/new", data=person)
        except httpx.HTTPError as error:
            load.count("add person", error)
            continue
        if load.count("add person", response):
            load.queued_people += 1
        await asyncio.sleep(0.1)


async def run_load(urls: list[str], ids: dict[str, int], seconds: float, streams: int) -> Load:
    load = Load()
    stop = asyncio.Event()
    members = [email for email in ids if email.startswith("member")]
    clients = {
        (email, url): await sign_in(url, email)
        for email in [*members, "ada@acme.example"]
        for url in urls
    }
    tasks = [
        asyncio.create_task(
            stream(
                clients[(members[i % len(members)], urls[i % len(urls)])],
                i,
                ids[members[i % len(members)]],
                load,
                stop,
            )
        )
        for i in range(streams)
    ]
    await asyncio.sleep(3)  # the streams open
    member_ids = [ids[email] for email in members]
    for web, url in enumerate(urls):
        admin = clients[("ada@acme.example", url)]
        tasks.append(asyncio.create_task(add_people(admin, web, load, stop)))
        for email in members[web :: len(urls)][:4]:
            tasks.append(
                asyncio.create_task(
                    invite(clients[(email, url)], ids[email], member_ids, load, stop)
                )
            )
            tasks.append(asyncio.create_task(browse(clients[(email, url)], load, stop)))
    await asyncio.sleep(seconds)
    load.stopping.set()
    # The streams show the last notices: wait until none arrives for 5 s (30 s at most).
    stopped = time.monotonic()
    deadline, seen = stopped + 30, -1
    while seen != sum(load.noticed.values()) and time.monotonic() < deadline:
        seen = sum(load.noticed.values())
        load.last_notice_after = time.monotonic() - stopped
        await asyncio.sleep(5)
    stop.set()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for client in clients.values():
        await client.aclose()
    return load


def outbox(conninfo: str) -> tuple[list[str], list[str]]:
    with psycopg.connect(conninfo) as connection:
        rows = connection.execute("SELECT message_id, status FROM outbox_message").fetchall()
    return [message_id for message_id, _ in rows], [s for _, s in rows]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--streams", type=int, default=200)
    args = parser.parse_args()
    inbox = Inbox()
    smtp = Controller(inbox, hostname="127.0.0.1", port=free_port())
    smtp.start()
    try:
        with (
            scratch_database(args.admin_url) as url,
            tempfile.TemporaryDirectory() as scratch,
        ):
            env = {k: v for k, v in os.environ.items() if not k.startswith("PORTAL_")}
            env.update(
                PORTAL_DATABASE_URL=url,
                PORTAL_SECRET_KEY=SECRET,
                PORTAL_DATA_DIR=scratch,
                PORTAL_SMTP_HOST="127.0.0.1",
                PORTAL_SMTP_PORT=str(smtp.port),
                PORTAL_SMTP_TLS="none",
                PORTAL_GUEST_INVITES_PER_HOUR="100000",
            )
            _portal(env, "db", "upgrade")
            _portal(env, "create-company", "Acme", "--slug", "acme")
            people = ["ada@acme.example", *(f"member{i}@acme.example" for i in range(MEMBERS))]
            for email in people:
                extra = ["--admin"] if email.startswith("ada") else []
                person = ["--email", email, "--name", email.split("@")[0].title(), *extra]
                _portal(
                    env,
                    "create-user",
                    "--company",
                    "acme",
                    *person,
                    "--password-stdin",
                    stdin=PASSWORD + "\n",
                )
            conninfo = make_url(url).set(drivername="postgresql").render_as_string(False)
            with psycopg.connect(conninfo) as connection:
                rows = connection.execute("SELECT email, id FROM users").fetchall()
                ids: dict[str, int] = dict(rows)
            with processes(env, Path(scratch), webs=2, workers=2) as urls:
                started = time.monotonic()
                load = await run_load(urls, ids, args.seconds, args.streams)
                elapsed = time.monotonic() - started
                deadline = time.monotonic() + 90
                while True:  # the workers drain the outbox
                    message_ids, statuses = outbox(conninfo)
                    if all(s == "sent" for s in statuses) or time.monotonic() > deadline:
                        break
                    await asyncio.sleep(1)
    finally:
        smtp.stop()
    received = Counter(inbox.message_ids)
    lost = set(message_ids) - set(received)
    twice = [m for m, n in received.items() if n > 1]
    # Every open tab of the invitee shows each invitation's notice.
    unnoticed = sum(
        max(0, load.invited[user] - load.noticed[number])
        for number, user in load.stream_user.items()
    )
    print(
        f"{args.seconds:.0f} s of load ({elapsed:.0f} s with set-up), {load.requests} requests, "
        f"{args.streams} live streams; the streams' last notices within "
        f"{load.last_notice_after:.0f} s of the load's end"
    )
    print(f"errors: {sum(load.errors.values())} {dict(load.errors) or ''}")
    print(
        f"emails: {len(message_ids)} queued, {len(received)} received, lost {len(lost)}, "
        f"twice {len(twice)}, statuses {dict(Counter(statuses))}"
    )
    print(
        f"invitations: {sum(load.invited.values())}, notices missing from an invitee's open "
        f"streams: {unnoticed} (of {sum(load.invited[u] for u in load.stream_user.values())})"
    )


if __name__ == "__main__":
    asyncio.run(main())
