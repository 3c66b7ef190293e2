"""Migration 0011: a company's one connection is kept, named after its provider, and its
options become the company's sitewide settings; on both databases, and back again."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import bindparam, create_engine, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from portal import migrate
from portal.conferencing.models import (
    ConferencingConnection,
    ConferencingSettings,
    ProviderAccount,
    SyncRun,
)
from portal.db import UTCDateTime, sync_url
from tests.servers import scratch_postgres_database

AT = dt.datetime(2026, 11, 2, 8, 30, tzinfo=dt.UTC)
CONNECTIONS = ConferencingConnection.__table__  # type: ignore[attr-defined]
SETTINGS = ConferencingSettings.__table__  # type: ignore[attr-defined]
ACCOUNTS = ProviderAccount.__table__  # type: ignore[attr-defined]
RUNS = SyncRun.__table__  # type: ignore[attr-defined]


@pytest.fixture
def empty_database_url(tmp_path: Path) -> Iterator[str]:
    """A database of its own: this test migrates it part of the way, unlike the shared one."""
    server_url = os.environ.get("PORTAL_TEST_DATABASE_URL")
    if server_url:
        with scratch_postgres_database(server_url, "portal_migration") as url:
            yield url
    else:
        yield f"sqlite:///{tmp_path / 'portal.db'}"


def _rows_before_0011(url: str) -> None:
    """Acme with a Zoom connection (creation and join before host on, its sync running),
    Globex with an iMeet one (the Jitsi fallback on), Initech with none."""
    companies = [(1, "Acme"), (2, "Globex"), (3, "Initech")]
    statements: list[tuple[str, dict[str, Any]]] = [
        *(
            (
                "INSERT INTO company (id, name, slug, default_time_zone, created_at)"
                " VALUES (:id, :name, :slug, 'UTC', :at)",
                {"id": number, "name": name, "slug": name.lower()},
            )
            for number, name in companies
        ),
        (
            "INSERT INTO users (id, company_id, email, display_name, title, department, phone,"
            " time_zone, role, active, session_version, created_at) VALUES (1, 1,"
            " 'ada@acme.example', 'Ada', '', 'Sales', '', 'UTC', 'admin', :yes, 1, :at)",
            {},
        ),
        *(
            (
                "INSERT INTO conferencing_connection (id, company_id, provider, public_credentials,"
                " secret_credentials, sync_hour, auto_create, provisioning, join_before_host,"
                " allow_jitsi_fallback, connected_at, updated_at) VALUES (:id, :id, :provider,"
                " '{\"account_id\": \"acct\"}', 'token', 4, :create, :method, :early, :jitsi,"
                " :at, :at)",
                values,
            )
            for values in (
                {"id": 1, "provider": "zoom", "create": True, "method": "autoCreate"}
                | {"early": True, "jitsi": False},
                {"id": 2, "provider": "imeet", "create": False, "method": ""}
                | {"early": False, "jitsi": True},
            )
        ),
        (
            "INSERT INTO conferencing_account (id, company_id, connection_id, provider_user_id,"
            " email, email_key, name, status, licensed, room_url, user_id, reason, manual,"
            " updated_at) VALUES (1, 1, 1, 'z1', 'ada@acme.example', 'ada@acme.example', 'Ada',"
            " 'active', :yes, 'https://zoom.us/j/1', 1, '', :no, :at)",
            {},
        ),
        (
            "INSERT INTO conferencing_sync_run (id, company_id, connection_id, trigger, status,"
            " started_at, heartbeat_at, pages_read, users_seen, people_matched, newly_mapped,"
            " still_unmapped, no_longer_at_provider, accounts_created, error) VALUES (1, 1, 1,"
            " 'nightly', 'running', :at, :at, 0, 0, 0, 0, 0, 0, 0, '')",
            {},
        ),
    ]
    engine = create_engine(sync_url(url))
    try:
        with engine.begin() as connection:
            for statement, values in statements:
                query = text(statement).bindparams(bindparam("at", type_=UTCDateTime()))
                connection.execute(query, {"at": AT, "yes": True, "no": False, **values})
    finally:
        engine.dispose()


@pytest.fixture
def migrated_url(empty_database_url: str) -> str:
    """Rows written at 0010, then migrated to 0011."""
    migrate.upgrade(empty_database_url, "0010")
    _rows_before_0011(empty_database_url)
    migrate.upgrade(empty_database_url, "0011")
    return empty_database_url


def _read(url: str, query: Any) -> list[dict[str, Any]]:
    engine = create_engine(sync_url(url))
    try:
        with engine.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(query)]
    finally:
        engine.dispose()


def test_each_connection_is_kept_under_its_providers_name_taking_the_sitewide_settings(
    migrated_url: str,
) -> None:
    connections = _read(migrated_url, select(CONNECTIONS).order_by(CONNECTIONS.c.id))
    assert [
        (c["id"], c["company_id"], c["name"], c["provider"], c["serves"], c["departments"])
        for c in connections
    ] == [(1, 1, "Zoom", "zoom", "everyone", []), (2, 2, "iMeet", "imeet", "everyone", [])]
    # Their own options are none: each follows its company's sitewide settings.
    assert {(c["auto_create"], c["join_before_host"]) for c in connections} == {(None, None)}
    zoom = connections[0]
    assert (zoom["provisioning"], zoom["sync_hour"], zoom["secret_credentials"]) == (
        "autoCreate",
        4,
        "token",
    )
    assert zoom["public_credentials"] == {"account_id": "acct"}
    sitewide = _read(migrated_url, select(SETTINGS).order_by(SETTINGS.c.company_id))
    assert [
        (
            s["company_id"],
            s["auto_create"],
            s["join_before_host"],
            s["allow_jitsi_fallback"],
            s["require_account"],
        )
        for s in sitewide
    ] == [(1, True, True, False, False), (2, False, False, True, False)]
    # SQLite copies the connections' table: the rows that point at it stay.
    assert [(a["connection_id"], a["user_id"]) for a in _read(migrated_url, select(ACCOUNTS))] == [
        (1, 1)
    ]
    runs = _read(migrated_url, select(RUNS))
    assert [(r["connection_id"], r["status"], r["person_id"]) for r in runs] == [
        (1, "running", None)
    ]


def _insert(bind: Connection, statement: str, /, **values: Any) -> None:
    query = text(statement).bindparams(bindparam("at", type_=UTCDateTime()))
    bind.execute(query, {"at": AT, **values})


# With their ids: PostgreSQL's sequences know nothing of the ids the rows above were given.
NEW_CONNECTION = (
    "INSERT INTO conferencing_connection (id, company_id, name, provider, public_credentials,"
    " secret_credentials, sync_hour, serves, departments, provisioning, connected_at,"
    " updated_at) VALUES (:id, 1, :name, 'zoom', '{}', '', 2, 'everyone', '[]', '', :at, :at)"
)
NEW_RUN = (
    "INSERT INTO conferencing_sync_run (id, company_id, connection_id, trigger, status,"
    " person_id, started_at, heartbeat_at, pages_read, users_seen, people_matched,"
    " newly_mapped, still_unmapped, no_longer_at_provider, accounts_created, error) VALUES"
    " (:id, 1, :connection, :trigger, 'running', :person, :at, :at, 0, 0, 0, 0, 0, 0, 0, '')"
)


def test_a_company_may_then_add_connections_under_other_names(migrated_url: str) -> None:
    engine = create_engine(sync_url(migrated_url))
    try:
        with engine.begin() as connection:
            _insert(connection, NEW_CONNECTION, id=3, name="Zoom for Sales")
            # A person's own sync runs beside the connection's running one.
            _insert(connection, NEW_RUN, id=2, connection=1, trigger="person", person=1)
        for statement, values in [
            (NEW_CONNECTION, {"id": 4, "name": "Zoom"}),
            (NEW_RUN, {"id": 3, "connection": 1, "trigger": "manual", "person": None}),
        ]:
            with pytest.raises(IntegrityError), engine.begin() as connection:
                _insert(connection, statement, **values)
    finally:
        engine.dispose()


def test_a_downgrade_gives_the_one_connection_its_options_back(migrated_url: str) -> None:
    engine = create_engine(sync_url(migrated_url))
    try:
        with engine.begin() as connection:
            _insert(connection, NEW_CONNECTION, id=3, name="Zoom for Sales")
    finally:
        engine.dispose()
    command.downgrade(migrate.alembic_config(migrated_url), "0010")
    rows = _read(
        migrated_url,
        text(
            "SELECT id, provider, auto_create, join_before_host, allow_jitsi_fallback"
            " FROM conferencing_connection ORDER BY id"
        ),
    )
    assert [tuple(row.values()) for row in rows] == [
        (1, "zoom", True, True, False),
        (2, "imeet", False, False, True),
    ]
