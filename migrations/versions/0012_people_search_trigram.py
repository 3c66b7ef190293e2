"""people search trigram index (PostgreSQL)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01 02:00:00.000000

Directory search on PostgreSQL reads its candidates from a GIN index of pg_trgm trigrams over
one expression: name, title, department and email, lower-cased, a line break between fields.
The search's LIKE conditions are on the very same expression
(portal/directory/search_index.py: searchable_text), which is what lets the planner use it; a
change to one is a change to the other, in a new migration. An expression index belongs to the
table: no trigger keeps it, and nothing that rebuilds the table can leave it behind.

pg_trgm is a trusted extension (PostgreSQL 13 on): the database's owner, or anyone with CREATE
on it, may create it. Where that is refused, this migration says what to ask of a superuser and
goes on without the index: search then scans, as it did before, and finds the same people.
On SQLite it does nothing (0005's FTS5 trigram table does this job there).
"""

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("alembic.runtime.migration")

INDEX = "ix_users_search_trigram"
CREATE_EXTENSION = "CREATE EXTENSION IF NOT EXISTS pg_trgm"
# fastupdate off: a new person's trigrams go into the index at once, rather than into a pending
# list that every search reads in full until the next vacuum merges it (measured with 10,000
# people just added: 9 ms a search, 0.7 ms once merged). People are added rarely; searched for
# all day.
CREATE_INDEX = (
    f"CREATE INDEX {INDEX} ON users USING gin ("
    r"lower(display_name || E'\n' || title || E'\n' || department || E'\n' || email) "
    "gin_trgm_ops) WITH (fastupdate = off)"
)


def _create_extension(bind: sa.Connection) -> bool:
    """pg_trgm is there, or now is; False (and why, in the log) when this role may not add it."""
    try:
        with bind.begin_nested():
            bind.exec_driver_sql(CREATE_EXTENSION)
    except sa.exc.DBAPIError as error:
        if error.connection_invalidated:
            raise
        database = bind.exec_driver_sql("SELECT current_database()").scalar_one()
        log.warning(
            "people search: pg_trgm could not be created (%s). Search works meanwhile, by "
            "scanning every person. To index it, ask a superuser or the database's owner to "
            "run `%s;` in database %s, then run `%s;` there.",
            " ".join(str(error.orig).split()),
            CREATE_EXTENSION,
            database,
            CREATE_INDEX,
        )
        return False
    return True


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql" or not _create_extension(bind):
        return
    op.execute(CREATE_INDEX)


def downgrade() -> None:
    # The extension stays: something else may use it, and dropping it needs its owner.
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP INDEX IF EXISTS {INDEX}")
