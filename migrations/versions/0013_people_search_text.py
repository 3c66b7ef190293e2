"""people search text column (PostgreSQL)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01 05:30:00.000000

0012's index made PostgreSQL read a search's candidates from the index, but each candidate was
still checked against the expression (name, title, department and email, joined and
lower-cased), computed afresh for every row: among 100,000 people, "novak" finds 2,481 and the
computing was half of the query (2.6 ms of it; 1.4 ms reading a stored column). The text is now
a stored generated column, `search_text`, which PostgreSQL itself keeps current on every insert
and update (no trigger that a rebuild could drop), with the trigram index on it in place of
0012's. Adding a stored column rewrites the table once, under a lock: seconds for 100,000 people.

Where pg_trgm is missing (0012 said why and what to do), the column is still added: search
scans it, still faster than computing the text, and this migration says which index to create
once the extension is there. On SQLite it does nothing.
"""

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("alembic.runtime.migration")

INDEX = "ix_users_search_text_trigram"
OLD_INDEX = "ix_users_search_trigram"
TEXT = r"lower(display_name || E'\n' || title || E'\n' || department || E'\n' || email)"
ADD_COLUMN = f"ALTER TABLE users ADD COLUMN search_text text GENERATED ALWAYS AS ({TEXT}) STORED"
# fastupdate off, as 0012 says why.
CREATE_INDEX = (
    f"CREATE INDEX {INDEX} ON users USING gin (search_text gin_trgm_ops) WITH (fastupdate = off)"
)
CREATE_OLD_INDEX = (
    f"CREATE INDEX {OLD_INDEX} ON users USING gin ({TEXT} gin_trgm_ops) WITH (fastupdate = off)"
)


def _has_pg_trgm(bind: sa.Connection) -> bool:
    found = bind.exec_driver_sql("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'")
    return found.first() is not None


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    op.execute(ADD_COLUMN)
    op.execute(f"DROP INDEX IF EXISTS {OLD_INDEX}")
    if _has_pg_trgm(bind):
        op.execute(CREATE_INDEX)
        return
    log.warning(
        "people search: without pg_trgm, search scans the people's search_text column. Once "
        "the extension is created, run `%s;` (in place of the index migration 0012 named).",
        CREATE_INDEX,
    )


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    op.execute(f"DROP INDEX IF EXISTS {INDEX}")
    op.execute("ALTER TABLE users DROP COLUMN search_text")
    if _has_pg_trgm(bind):
        op.execute(CREATE_OLD_INDEX)
