"""Migration 0006: join links made before it get an instant meeting's window, on both databases."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import bindparam, create_engine, func, select, text

from portal import migrate
from portal.db import UTCDateTime, sync_url
from portal.meetings.models import MeetingInvitee, MeetingJoin
from tests.servers import scratch_postgres_database

STARTED = dt.datetime(2026, 3, 4, 21, 30, 15, 123456, tzinfo=dt.UTC)


@pytest.fixture
def empty_database_url(tmp_path: Path) -> Iterator[str]:
    """A database of its own: this test migrates it part of the way, unlike the shared one."""
    server_url = os.environ.get("PORTAL_TEST_DATABASE_URL")
    if server_url:
        with scratch_postgres_database(server_url, "portal_migration") as url:
            yield url
    else:
        yield f"sqlite:///{tmp_path / 'portal.db'}"


def _rows_before_0006(url: str) -> None:
    """A company, its host, one meeting started at STARTED, an invitee who joined once."""
    statements = [
        "INSERT INTO company (id, name, slug, default_time_zone, created_at)"
        " VALUES (1, 'Acme', 'acme', 'UTC', :at)",
        "INSERT INTO users (id, company_id, email, display_name, title, department, phone,"
        " time_zone, role, active, session_version, created_at) VALUES (1, 1,"
        " 'ada@acme.example', 'Ada', '', '', '', 'UTC', 'admin', :yes, 1, :at)",
        "INSERT INTO meeting (id, company_id, host_id, room_url, message, request_key,"
        " started_at) VALUES (1, 1, 1, 'https://meet.jit.si/portal-x', '', 'key-1', :at)",
        "INSERT INTO meeting_invitee (id, company_id, meeting_id, user_id, email, name,"
        " join_token, first_joined_at) VALUES (1, 1, 1, NULL, 'guest@example.org', '',"
        " 'token-1', :at)",
        "INSERT INTO meeting_join (id, company_id, invitee_id, user_id, joined_at)"
        " VALUES (1, 1, 1, NULL, :at)",
    ]
    engine = create_engine(sync_url(url))
    try:
        with engine.begin() as connection:
            for statement in statements:
                query = text(statement).bindparams(bindparam("at", type_=UTCDateTime()))
                params = {"at": STARTED, "yes": True} if ":yes" in statement else {"at": STARTED}
                connection.execute(query, params)
    finally:
        engine.dispose()


@pytest.fixture
def migrated_url(empty_database_url: str) -> str:
    """Rows written at 0005, then migrated to 0006."""
    migrate.upgrade(empty_database_url, "0005")
    _rows_before_0006(empty_database_url)
    migrate.upgrade(empty_database_url, "0006")
    return empty_database_url


INVITEES = MeetingInvitee.__table__  # type: ignore[attr-defined]


def test_existing_join_links_open_at_the_start_and_close_twelve_hours_later(
    migrated_url: str,
) -> None:
    engine = create_engine(sync_url(migrated_url))
    try:
        with engine.connect() as connection:
            window = connection.execute(select(INVITEES.c.opens_at, INVITEES.c.closes_at)).one()
            joins = connection.execute(
                select(func.count()).select_from(MeetingJoin.__table__)  # type: ignore[attr-defined]
            ).scalar_one()
            nullable = {
                column["name"]: column["nullable"]
                for column in connection.dialect.get_columns(connection, "meeting_invitee")
            }
    finally:
        engine.dispose()
    assert tuple(window) == (STARTED, STARTED + dt.timedelta(hours=12))
    # SQLite copies the table to make the columns NOT NULL: the joins that point at it stay.
    assert joins == 1
    assert nullable["opens_at"] is False and nullable["closes_at"] is False


def test_the_version_running_during_the_deploy_still_invites(migrated_url: str) -> None:
    """Its inserts name neither column: they get an instant meeting's window, from now."""
    engine = create_engine(sync_url(migrated_url))
    try:
        with engine.begin() as connection:
            before = dt.datetime.now(dt.UTC)
            connection.execute(
                text(
                    "INSERT INTO meeting_invitee (id, company_id, meeting_id, email, name,"
                    " join_token) VALUES (2, 1, 1, 'late@example.org', '', 'token-2')"
                )
            )
            after = dt.datetime.now(dt.UTC)
            opens_at, closes_at = connection.execute(
                select(INVITEES.c.opens_at, INVITEES.c.closes_at).where(INVITEES.c.id == 2)
            ).one()
    finally:
        engine.dispose()
    # SQLite's clock is read to the millisecond.
    slack = dt.timedelta(milliseconds=1)
    assert before - slack <= opens_at <= after
    assert closes_at - opens_at == dt.timedelta(hours=12)
