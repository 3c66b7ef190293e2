"""Real web processes: a notice raised in one reaches a stream on another (PostgreSQL), and a
server with streams open stops promptly when it is told to."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.notifications.servers import (
    add_people,
    fresh_database,
    invite,
    next_event,
    signed_in,
    user_id,
    web_process,
)

PEOPLE = {"ada@acme.example": "Ada Lovelace", "bob@acme.example": "Bob Member"}
STREAM_TIMEOUT = httpx.Timeout(5)


def test_a_server_with_open_streams_stops_promptly(tmp_path: Path) -> None:
    with fresh_database(tmp_path) as database_url:
        add_people(database_url, tmp_path, PEOPLE)
        with (
            web_process(database_url, tmp_path / "web") as server,
            signed_in(server, "bob@acme.example") as bob,
            bob.stream("GET", "/notifications/stream", timeout=STREAM_TIMEOUT) as response,
        ):
            assert response.headers["content-type"].startswith("text/event-stream")
            lines = response.iter_lines()
            assert 'aria-label="Notifications"' in next_event(lines, "count")
            asked = time.monotonic()
            # Uvicorn stops gracefully, then re-raises the signal it caught: hence -SIGTERM.
            assert server.stop(timeout=10) == -signal.SIGTERM
            assert "Application shutdown complete" in server.log.read_text()
            # The response was finished properly (a cut connection would raise instead).
            with pytest.raises(EOFError):
                next_event(lines, "count")
            assert time.monotonic() - asked < 5


def test_a_notice_raised_in_one_web_process_reaches_a_stream_on_another(tmp_path: Path) -> None:
    if not os.environ.get("PORTAL_TEST_DATABASE_URL"):
        pytest.skip("several web processes need PostgreSQL: set PORTAL_TEST_DATABASE_URL")
    with fresh_database(tmp_path) as database_url:
        add_people(database_url, tmp_path, PEOPLE)
        with (
            web_process(database_url, tmp_path / "a") as first,
            web_process(database_url, tmp_path / "b") as second,
            signed_in(first, "ada@acme.example") as ada,
            signed_in(second, "bob@acme.example") as bob,
            bob.stream("GET", "/notifications/stream", timeout=STREAM_TIMEOUT) as response,
        ):
            lines = response.iter_lines()
            next_event(lines, "count")
            raised = time.monotonic()
            invite(ada, user_id(database_url, "bob@acme.example"))
            count = next_event(lines, "count")
            notice = next_event(lines, "notice")
            assert time.monotonic() - raised < 2
            assert 'aria-label="Notifications, 1 unread"' in count
            assert "Ada Lovelace invites you to meet now" in notice
