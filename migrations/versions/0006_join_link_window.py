"""join link window: when each invitee's join link opens and closes

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24 10:00:00.000000

Links made before this migration belong to instant meetings: they open when the meeting started
and close 12 hours later, which is what the running version checks. The columns are added
nullable, filled from `meeting.started_at`, then made NOT NULL. On SQLite that last step copies
`meeting_invitee` (batch mode); no trigger hangs on that table (0005's are on `users`), and
Alembic's connection leaves SQLite's foreign keys off, so dropping the old copy does not cascade
to `meeting_join` (tests/test_migration_join_link_window.py checks both).

The version running while this deploys knows nothing of the columns and keeps inviting people to
instant meetings: the columns' defaults give its rows that very window (now, now + 12 h), so its
Meet Now keeps working. The models always set both values, so the defaults serve only that
version; Alembic compares no server defaults, and a later migration may drop them.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import portal.db

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BACKFILL_POSTGRESQL = """
    UPDATE meeting_invitee
    SET opens_at = meeting.started_at, closes_at = meeting.started_at + interval '12 hours'
    FROM meeting
    WHERE meeting.id = meeting_invitee.meeting_id"""
# SQLite keeps naive UTC text, 'YYYY-MM-DD HH:MM:SS.ffffff'. datetime() drops the fraction, so
# it is put back from the original (characters 20 on: '.ffffff', or nothing).
BACKFILL_SQLITE = """
    UPDATE meeting_invitee
    SET opens_at = (
            SELECT meeting.started_at FROM meeting WHERE meeting.id = meeting_invitee.meeting_id
        ),
        closes_at = (
            SELECT datetime(meeting.started_at, '+12 hours') || substr(meeting.started_at, 20)
            FROM meeting WHERE meeting.id = meeting_invitee.meeting_id
        )"""


# What the running version's inserts get: an instant meeting's window, from now.
DEFAULTS_POSTGRESQL = {"opens_at": "now()", "closes_at": "now() + interval '12 hours'"}
# SQLite's text form of a UTC time, with the fraction SQLAlchemy writes too.
DEFAULTS_SQLITE = {
    "opens_at": "(strftime('%Y-%m-%d %H:%M:%f', 'now'))",
    "closes_at": "(strftime('%Y-%m-%d %H:%M:%f', 'now', '+12 hours'))",
}


def upgrade() -> None:
    with op.batch_alter_table("meeting_invitee", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("opens_at", portal.db.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("closes_at", portal.db.UTCDateTime(timezone=True), nullable=True)
        )
    sqlite = op.get_bind().dialect.name == "sqlite"
    op.execute(BACKFILL_SQLITE if sqlite else BACKFILL_POSTGRESQL)
    defaults = DEFAULTS_SQLITE if sqlite else DEFAULTS_POSTGRESQL
    with op.batch_alter_table("meeting_invitee", schema=None) as batch_op:
        for name in ("opens_at", "closes_at"):
            batch_op.alter_column(
                name,
                existing_type=portal.db.UTCDateTime(timezone=True),
                nullable=False,
                server_default=sa.text(defaults[name]),
            )


def downgrade() -> None:
    with op.batch_alter_table("meeting_invitee", schema=None) as batch_op:
        batch_op.drop_column("closes_at")
        batch_op.drop_column("opens_at")
