"""Migrations and models agree: autogenerate against the migrated database finds nothing to do."""

from __future__ import annotations

import logging
import os
import secrets
import sqlite3
from contextlib import closing
from pathlib import Path

import psycopg
import pytest
from alembic import command
from sqlalchemy.engine import make_url

from portal import migrate
from portal.db import Database, libpq_conninfo
from portal.directory import search, search_index
from tests.conftest import make_company, make_user
from tests.servers import scratch_postgres_database

SEARCH_TRIGGERS = {"people_search_insert", "people_search_update", "people_search_delete"}


def _is_sqlite(database_url: str) -> bool:
    return make_url(database_url).get_backend_name() == "sqlite"


def test_models_and_migrations_agree(database_url: str) -> None:
    # `alembic check`, through migrations/env.py: its filters are part of what is checked.
    command.check(migrate.alembic_config(database_url))


def test_a_downgrade_and_an_upgrade_again_leave_models_and_migrations_agreeing(
    database_url: str,
) -> None:
    config = migrate.alembic_config(database_url)
    command.downgrade(config, "0004")
    migrate.upgrade(database_url)
    command.check(config)


def test_the_search_index_and_its_triggers_are_there_at_head(database_url: str) -> None:
    """A later migration that rebuilds `users` on SQLite would drop the triggers with it."""
    if not _is_sqlite(database_url):
        pytest.skip("the people search index is SQLite's")
    path = make_url(database_url).database or ""
    with closing(sqlite3.connect(path)) as connection:
        found = connection.execute(
            "SELECT type, name, tbl_name FROM sqlite_master WHERE name LIKE 'people_search%'"
        ).fetchall()
    assert ("table", "people_search", "people_search") in found
    assert {name for kind, name, table in found if kind == "trigger" and table == "users"} == (
        SEARCH_TRIGGERS
    )


def test_the_search_index_is_filled_with_the_active_people_already_there(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'portal.db'}"
    migrate.upgrade(url, "0004")
    with closing(sqlite3.connect(tmp_path / "portal.db")) as connection, connection:
        connection.execute(
            "INSERT INTO company (id, name, slug, default_time_zone, created_at) "
            "VALUES (1, 'Acme', 'acme', 'UTC', '2026-01-01 00:00:00')"
        )
        for user_id, name, active in [(7, "Zoë Quill", 1), (8, "Gone Quill", 0)]:
            connection.execute(
                "INSERT INTO users (id, company_id, email, display_name, title, department, phone,"
                " time_zone, role, active, session_version, created_at) VALUES (?, 1, ?, ?,"
                " 'Writer', 'Docs', '', 'UTC', 'member', ?, 1, '2026-01-01 00:00:00')",
                (user_id, f"{user_id}@acme.example", name, active),
            )
    migrate.upgrade(url)
    with closing(sqlite3.connect(tmp_path / "portal.db")) as connection:
        found = connection.execute(
            "SELECT rowid FROM people_search WHERE people_search MATCH '\"quill\"'"
        ).fetchall()
    assert found == [(7,)]


def _index_definitions(url: str, name: str) -> list[str]:
    with psycopg.connect(libpq_conninfo(url)) as connection:
        rows = connection.execute(
            "SELECT indexdef FROM pg_indexes WHERE indexname = %s", (name,)
        ).fetchall()
    return [row[0] for row in rows]


def _trigram_index(url: str) -> list[str]:
    return _index_definitions(url, search_index.TRIGRAM_INDEX)


def test_the_search_text_and_its_trigram_index_are_there_at_head_and_come_and_go_with_0013(
    database_url: str,
) -> None:
    if _is_sqlite(database_url):
        pytest.skip("the trigram index is PostgreSQL's")
    (definition,) = _trigram_index(database_url)
    assert "USING gin (search_text gin_trgm_ops)" in definition
    assert "WITH (fastupdate=off)" in definition
    config = migrate.alembic_config(database_url)
    command.downgrade(config, "0012")
    assert _trigram_index(database_url) == []
    (expression,) = _index_definitions(database_url, "ix_users_search_trigram")
    assert "lower(" in expression
    command.downgrade(config, "0011")
    assert _index_definitions(database_url, "ix_users_search_trigram") == []
    migrate.upgrade(database_url)
    assert _trigram_index(database_url) == [definition]
    assert _index_definitions(database_url, "ix_users_search_trigram") == []


async def test_where_pg_trgm_is_refused_the_migration_says_what_to_do_and_search_scans(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server_url = os.environ.get("PORTAL_TEST_DATABASE_URL")
    if not server_url:
        pytest.skip("pg_trgm is PostgreSQL's: the PostgreSQL pass runs this")
    # A role that may create tables in the database but not extensions (no CREATE on it).
    role = f"portal_no_extensions_{secrets.token_hex(3)}"
    with psycopg.connect(libpq_conninfo(server_url), autocommit=True) as admin:
        admin.execute(f'CREATE ROLE "{role}"')
    try:
        with scratch_postgres_database(server_url, "portal_migration") as url:
            with psycopg.connect(libpq_conninfo(url), autocommit=True) as admin:
                admin.execute(f'GRANT USAGE, CREATE ON SCHEMA public TO "{role}"')
            limited = make_url(url).update_query_dict({"options": f"-c role={role}"})
            limited_url = limited.render_as_string(hide_password=False)
            with caplog.at_level(logging.WARNING, logger="alembic.runtime.migration"):
                migrate.upgrade(limited_url)
            assert "pg_trgm could not be created" in caplog.text
            assert "CREATE EXTENSION IF NOT EXISTS pg_trgm" in caplog.text
            assert f"CREATE INDEX {search_index.TRIGRAM_INDEX}" in caplog.text
            assert _trigram_index(url) == []
            command.check(migrate.alembic_config(limited_url))
            db = Database(limited_url)
            try:
                acme = await make_company(db, "Acme")
                await make_user(db, acme, "zed@acme.example", name="Zed Quill")
                found = await search.find_people(db.reader(company_id=acme.id or 0), "quill")
                assert [person.email for person in found.items] == ["zed@acme.example"]
            finally:
                await db.dispose()
    finally:
        with psycopg.connect(libpq_conninfo(server_url), autocommit=True) as admin:
            admin.execute(f'DROP ROLE IF EXISTS "{role}"')
