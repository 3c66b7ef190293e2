"""Real web processes (`uvicorn portal.asgi:app`, the Procfile's web line) for the tests that
need more than one, a database of their own set up through the `portal` command, and a reader
of the live stream over HTTP."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from portal import migrate
from portal.db import sync_url
from tests.conftest import PASSWORD, _postgres_database
from tests.servers import free_port, wait_until_serving

SECRET_KEY = secrets.token_urlsafe(48)
CSRF_INPUT = re.compile(r'name="csrf_token" value="([0-9a-f]+)"')


def is_postgres(url: str) -> bool:
    return url.startswith("postgresql")


@contextlib.contextmanager
def fresh_database(data_dir: Path) -> Iterator[str]:
    """A migrated database used by this test alone: on PostgreSQL when the run asks for it."""
    admin_url = os.environ.get("PORTAL_TEST_DATABASE_URL")
    if admin_url:
        # Skip this test alone, rather than end the whole run as the suite's own database does.
        plain = make_url(admin_url).set(drivername="postgresql")
        try:
            psycopg.connect(plain.render_as_string(hide_password=False), connect_timeout=5).close()
        except psycopg.OperationalError as error:
            if os.environ.get("CI"):
                raise
            pytest.skip(f"PostgreSQL is not reachable at {admin_url}: {error}")
        yield from _postgres_database(admin_url)
        return
    url = f"sqlite:///{data_dir / 'portal.db'}"
    migrate.upgrade(url)
    yield url


def _env(database_url: str, data_dir: Path, base_url: str = "http://127.0.0.1") -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTAL_")}
    env.update(
        {
            "PORTAL_DATABASE_URL": database_url,
            "PORTAL_SECRET_KEY": SECRET_KEY,
            "PORTAL_DATA_DIR": str(data_dir),
            "PORTAL_BASE_URL": base_url,
            "PORTAL_MIGRATE_ON_START": "0",
        }
    )
    return env


def add_people(database_url: str, data_dir: Path, people: dict[str, str]) -> None:
    """Company "Acme" with these people (email -> name), through `portal create-*`."""
    portal = [sys.executable, "-m", "portal.cli"]
    env = _env(database_url, data_dir)
    subprocess.run([*portal, "create-company", "Acme"], env=env, check=True, capture_output=True)
    for email, name in people.items():
        person = ["--email", email, "--name", name, "--password-stdin"]
        subprocess.run(
            [*portal, "create-user", "--company", "acme", *person],
            env=env,
            input=PASSWORD.encode(),
            check=True,
            capture_output=True,
        )


@dataclass
class WebProcess:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self, timeout: float) -> int:
        """SIGTERM, as a deployment sends it; the exit code once the server has stopped."""
        self.process.terminate()
        return self.process.wait(timeout=timeout)


@contextlib.contextmanager
def web_process(database_url: str, data_dir: Path) -> Iterator[WebProcess]:
    """`uvicorn portal.asgi:app` on a free port, until the block ends."""
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = data_dir / f"server-{port}.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "portal.asgi:app", "--port", str(port)],
            env=_env(database_url, data_dir, url),
            stdout=output,
            stderr=output,
        )
        server = WebProcess(url, process, log)
        try:
            wait_until_serving(url, process, log)
            yield server
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()


@contextlib.contextmanager
def signed_in(server: WebProcess, email: str) -> Iterator[httpx.Client]:
    """A client with `email`'s session on `server`, sending its CSRF token as htmx does."""
    with httpx.Client(base_url=server.url, timeout=5) as client:
        token = CSRF_INPUT.search(client.get("/signin").text)
        assert token
        response = client.post(
            "/signin", data={"email": email, "password": PASSWORD, "csrf_token": token.group(1)}
        )
        assert response.status_code == 303, response.text
        token = CSRF_INPUT.search(client.get("/notifications").text)
        assert token
        client.headers["X-CSRF-Token"] = token.group(1)
        yield client


def invite(host: httpx.Client, invitee_id: int) -> None:
    """Meet Now from `host` to one colleague: the invitation raises the invitee's notice."""
    response = host.post(
        "/meetings/start",
        data={"invitee": str(invitee_id), "request_key": secrets.token_urlsafe(16)},
    )
    assert response.status_code == 200 and "Invitation sent to" in response.text, response.text


def user_id(database_url: str, email: str) -> int:
    engine = create_engine(sync_url(database_url))
    try:
        with engine.connect() as connection:
            query = text("SELECT id FROM users WHERE email = :email")
            return int(connection.execute(query, {"email": email}).scalar_one())
    finally:
        engine.dispose()


def next_event(lines: Iterator[str], name: str) -> str:
    """The data of the next `name` event on an SSE stream, skipping others and heartbeats."""
    current, data = "", []
    for line in lines:
        if line.startswith("event: "):
            current, data = line.removeprefix("event: "), []
        elif line.startswith("data: "):
            data.append(line.removeprefix("data: "))
        elif line == "" and current:
            if current == name:
                return "\n".join(data)
            current = ""
    raise EOFError(f"the stream ended before a {name!r} event")
