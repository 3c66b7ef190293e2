"""change notices for kept reads (PostgreSQL)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-01 16:30:00.000000

Each web process keeps the hover card's reads while nothing they came from has changed
(portal.freshness, portal.directory.cards). On PostgreSQL it learns of changes by LISTENing on
`portal_changes`: these triggers NOTIFY there, with the company's id, whenever a row of the
tables a card reads is written, and with "*" when one is truncated. A notice is sent when the
transaction commits, once per company however many rows it wrote (PostgreSQL folds the same
notice within a transaction). On SQLite it does nothing: each process asks the file itself.

A later migration that rebuilds one of these tables must create its trigger again; a test
checks that every table a card reads has one.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The table, and the column that holds its rows' company.
TABLES = {
    "users": "company_id",
    "company": "id",
    "calendar_event": "company_id",
    "event_participant": "company_id",
}


def _function(column: str) -> str:
    return f"""
CREATE FUNCTION portal_changed_by_{column}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        PERFORM pg_notify('portal_changes', '*');
        RETURN NULL;
    END IF;
    IF TG_OP <> 'INSERT' THEN
        PERFORM pg_notify('portal_changes', OLD.{column}::text);
    END IF;
    IF TG_OP <> 'DELETE' THEN
        PERFORM pg_notify('portal_changes', NEW.{column}::text);
    END IF;
    RETURN NULL;
END
$$"""


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for column in sorted(set(TABLES.values())):
        op.execute(_function(column))
    for table, column in TABLES.items():
        function = f"portal_changed_by_{column}()"
        op.execute(
            f"CREATE TRIGGER portal_changed AFTER INSERT OR UPDATE OR DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION {function}"
        )
        op.execute(
            f"CREATE TRIGGER portal_truncated AFTER TRUNCATE ON {table} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {function}"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TABLES:
        op.execute(f"DROP TRIGGER IF EXISTS portal_changed ON {table}")
        op.execute(f"DROP TRIGGER IF EXISTS portal_truncated ON {table}")
    for column in sorted(set(TABLES.values())):
        op.execute(f"DROP FUNCTION IF EXISTS portal_changed_by_{column}()")
