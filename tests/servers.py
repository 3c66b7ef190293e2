"""Real portal processes in tests: a free port, and waiting until one answers."""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
from sqlalchemy.engine import make_url


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_serving(
    url: str, process: subprocess.Popen[bytes], log: Path, *, timeout: float = 30.0
) -> None:
    """Return once `url` serves its sign-in page; fail with the process's log if it never does."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{url}/signin", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the portal at {url} did not start:\n{log.read_text()}")
        time.sleep(0.1)


@contextlib.contextmanager
def scratch_postgres_database(server_url: str, prefix: str) -> Iterator[str]:
    """An empty database of its own on the server behind `server_url`, dropped afterwards."""
    plain = make_url(server_url).set(drivername="postgresql")
    conninfo = plain.render_as_string(hide_password=False)
    name = f"{prefix}_{os.getpid()}_{secrets.token_hex(3)}"
    with psycopg.connect(conninfo, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield plain.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(conninfo, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
