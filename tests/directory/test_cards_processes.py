"""Real web processes: a card kept by one shows what a person saved through another."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import psycopg

from portal.db import libpq_conninfo
from tests.notifications.servers import (
    add_people,
    fresh_database,
    is_postgres,
    signed_in,
    user_id,
    web_process,
)

PEOPLE = {"ada@acme.example": "Ada Lovelace", "bob@acme.example": "Bob Member"}
HTMX = {"HX-Request": "true"}


def _card_says(client: httpx.Client, path: str, words: str, within: float) -> bool:
    deadline = time.monotonic() + within
    while True:
        if words in client.get(path, headers=HTMX).text:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)


def _kept(client: httpx.Client, card: str, database_url: str, email: str) -> bool:
    """Whether the process behind `client` comes to keep `card`: after a read, a change that
    nobody is told of (the triggers off for its session) does not show. The first card starts
    the process's listening, so the first tries may read afresh."""
    with psycopg.connect(libpq_conninfo(database_url), autocommit=True) as connection:
        connection.execute("SET session_replication_role = replica")
        for attempt in range(50):
            client.get(card, headers=HTMX)
            unheard = f"Unheard {attempt}"
            connection.execute("UPDATE users SET title = %s WHERE email = %s", (unheard, email))
            if unheard not in client.get(card, headers=HTMX).text:
                return True
            time.sleep(0.1)
    return False


def test_a_title_saved_in_one_web_process_shows_on_a_card_kept_by_another(tmp_path: Path) -> None:
    """On PostgreSQL by the database's notice, on SQLite (two processes on one file) by the
    file's data_version: within moments, where the card would be kept for 30 s."""
    with fresh_database(tmp_path) as database_url:
        add_people(database_url, tmp_path, PEOPLE)
        card = f"/people/{user_id(database_url, 'bob@acme.example')}/card"
        with (
            web_process(database_url, tmp_path / "a") as first,
            web_process(database_url, tmp_path / "b") as second,
            signed_in(first, "bob@acme.example") as bob,
            signed_in(second, "ada@acme.example") as ada,
        ):
            assert "Bob Member" in ada.get(card, headers=HTMX).text
            if is_postgres(database_url):
                assert _kept(ada, card, database_url, "bob@acme.example")
            saved = bob.post(
                "/settings/profile",
                data={"display_name": "Bob Member", "title": "Head of Sales", "phone": "",
                      "time_zone": "Europe/London"},
            )  # fmt: skip
            assert saved.status_code == 303, saved.text
            assert _card_says(ada, card, "Head of Sales", within=5.0)
