"""conferencing: a company's provider connection, its users as sync saw them, and sync runs

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30 20:29:48.679529

New tables only: the version running while this deploys never reads them.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import portal.db

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "conferencing_connection",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("company_id", sa.Integer(), nullable=False),
        sa.Column("provider", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("public_credentials", sa.JSON(), nullable=False),
        sa.Column("secret_credentials", sa.Text(), nullable=False),
        sa.Column("sync_hour", sa.Integer(), nullable=False),
        sa.Column("auto_create", sa.Boolean(), nullable=False),
        sa.Column("provisioning", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("join_before_host", sa.Boolean(), nullable=False),
        sa.Column("allow_jitsi_fallback", sa.Boolean(), nullable=False),
        sa.Column("connected_at", portal.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", portal.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["company_id"], ["company.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("company_id"),
    )
    op.create_table(
        "conferencing_account",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("company_id", sa.Integer(), nullable=False),
        sa.Column("connection_id", sa.Integer(), nullable=False),
        sa.Column("provider_user_id", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("email", sqlmodel.sql.sqltypes.AutoString(length=254), nullable=False),
        sa.Column("email_key", sqlmodel.sql.sqltypes.AutoString(length=254), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("licensed", sa.Boolean(), nullable=False),
        sa.Column("room_url", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("manual", sa.Boolean(), nullable=False),
        sa.Column("updated_at", portal.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["company_id"], ["company.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["connection_id"], ["conferencing_connection.id"], ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(
            "connection_id", "provider_user_id", name="uq_conferencing_account_user"
        ),
    )
    with op.batch_alter_table("conferencing_account", schema=None) as batch_op:
        batch_op.create_index(
            "ix_conferencing_account_list", ["connection_id", "reason", "email_key"], unique=False
        )
        batch_op.create_index(
            "ix_conferencing_account_person", ["user_id", "connection_id"], unique=False
        )

    op.create_table(
        "conferencing_sync_run",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("company_id", sa.Integer(), nullable=False),
        sa.Column("connection_id", sa.Integer(), nullable=False),
        sa.Column("trigger", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("requested_by", sa.Integer(), nullable=True),
        sa.Column("started_at", portal.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", portal.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", portal.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("pages_read", sa.Integer(), nullable=False),
        sa.Column("users_seen", sa.Integer(), nullable=False),
        sa.Column("people_matched", sa.Integer(), nullable=False),
        sa.Column("newly_mapped", sa.Integer(), nullable=False),
        sa.Column("still_unmapped", sa.Integer(), nullable=False),
        sa.Column("no_longer_at_provider", sa.Integer(), nullable=False),
        sa.Column("accounts_created", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["company_id"], ["company.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["connection_id"], ["conferencing_connection.id"], ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["requested_by"], ["users.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("conferencing_sync_run", schema=None) as batch_op:
        batch_op.create_index(
            "ix_conferencing_sync_run_history", ["connection_id", "started_at"], unique=False
        )
        batch_op.create_index(
            "uq_conferencing_sync_run_running",
            ["company_id"],
            unique=True,
            sqlite_where=sa.text("status = 'running'"),
            postgresql_where=sa.text("status = 'running'"),
        )


def downgrade() -> None:
    with op.batch_alter_table("conferencing_sync_run", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_conferencing_sync_run_running",
            sqlite_where=sa.text("status = 'running'"),
            postgresql_where=sa.text("status = 'running'"),
        )
        batch_op.drop_index("ix_conferencing_sync_run_history")

    op.drop_table("conferencing_sync_run")
    with op.batch_alter_table("conferencing_account", schema=None) as batch_op:
        batch_op.drop_index("ix_conferencing_account_person")
        batch_op.drop_index("ix_conferencing_account_list")

    op.drop_table("conferencing_account")
    op.drop_table("conferencing_connection")
