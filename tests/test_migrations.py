"""Migrations and models agree: autogenerate against the migrated database finds nothing to do."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy.engine import make_url

from portal import migrate

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
