"""sign-in source throttle: failed sign-ins per client address, across every email address

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25 10:00:00.000000

A new table only. The version running while this deploys neither reads nor writes it; it keeps
counting failures per address in `login_throttle` after the check, which the new version reads
as claims as well, so a count carries over either way.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import portal.db

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sign_in_source_throttle",
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("locked_until", portal.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("forget_at", portal.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("source"),
    )


def downgrade() -> None:
    op.drop_table("sign_in_source_throttle")
