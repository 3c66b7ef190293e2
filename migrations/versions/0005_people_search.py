"""people search: a trigram index of people's searchable text, kept by triggers (SQLite)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 15:10:00.000000

An FTS5 table `people_search` (contentless, rowid = users.id) holds the name, email, title and
department of every active person; directory search asks it for candidates instead of running
LIKE over every row (see portal/directory/search_index.py). Triggers on `users` keep it in step,
so the version running while this deploys keeps it right too. Autogenerate is told to ignore
the table, its shadow tables and the triggers (migrations/env.py).

A later migration that rebuilds `users` on SQLite (batch_alter_table copies the table and drops
the old one) drops these triggers with it: recreate them there; tests/test_migrations.py checks
they exist at head. On PostgreSQL this migration does nothing: search stays on ILIKE there.
"""

import sqlite3
from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Contentless: the index keeps no copy of the text, and forgets a row only when told the text it
# indexed, exactly; so the triggers hand it the old values, and only for rows it holds (active).
CREATE_INDEX = """
    CREATE VIRTUAL TABLE people_search USING fts5(
        display_name, email, title, department, content='', tokenize='trigram'
    )"""
FILL_INDEX = """
    INSERT INTO people_search (rowid, display_name, email, title, department)
    SELECT id, display_name, email, title, department FROM users WHERE active"""
TRIGGERS = {
    "people_search_insert": """
        CREATE TRIGGER people_search_insert AFTER INSERT ON users WHEN new.active BEGIN
            INSERT INTO people_search (rowid, display_name, email, title, department)
            VALUES (new.id, new.display_name, new.email, new.title, new.department);
        END""",
    "people_search_update": """
        CREATE TRIGGER people_search_update
        AFTER UPDATE OF id, display_name, email, title, department, active ON users BEGIN
            INSERT INTO people_search (people_search, rowid, display_name, email, title, department)
            SELECT 'delete', old.id, old.display_name, old.email, old.title, old.department
            WHERE old.active;
            INSERT INTO people_search (rowid, display_name, email, title, department)
            SELECT new.id, new.display_name, new.email, new.title, new.department
            WHERE new.active;
        END""",
    "people_search_delete": """
        CREATE TRIGGER people_search_delete AFTER DELETE ON users WHEN old.active BEGIN
            INSERT INTO people_search (people_search, rowid, display_name, email, title, department)
            VALUES ('delete', old.id, old.display_name, old.email, old.title, old.department);
        END""",
}


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    if sqlite3.sqlite_version_info < (3, 34):
        raise RuntimeError(
            f"directory search needs SQLite 3.34 or later (FTS5's trigram tokenizer); "
            f"this Python's SQLite is {sqlite3.sqlite_version}"
        )
    op.execute(CREATE_INDEX)
    for create in TRIGGERS.values():
        op.execute(create)
    op.execute(FILL_INDEX)


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for name in TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.execute("DROP TABLE IF EXISTS people_search")
