"""outbox claim heartbeat: each claim names the dispatcher that holds it

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 16:00:00.000000

A nullable column and its index. The version running while this deploys neither reads nor
writes the column: its claims run out after 5 minutes as before, and the new version's claims
(30 seconds, renewed by a heartbeat) are ones the old version also leaves alone until they end.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbox_message") as batch:
        batch.add_column(
            sa.Column("claimed_by", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True)
        )
        batch.create_index("ix_outbox_claimed_by", ["claimed_by"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("outbox_message") as batch:
        batch.drop_index("ix_outbox_claimed_by")
        batch.drop_column("claimed_by")
