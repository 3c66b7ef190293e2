"""conferencing people: several connections per company, sitewide settings, whom a connection
serves, each person's own sign-in and chosen connection, and one person's sync

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30 23:10:00.000000

A company had at most one connection, whose join-before-host, account-creation and Jitsi
fallback options become the company's sitewide settings; the connection keeps no value of its
own (NULL: as sitewide). Connections are told apart by name, unique per company, first their
provider's label.

The unique constraint on `conferencing_connection.company_id` had no name: PostgreSQL called
it `conferencing_connection_company_id_key`; on SQLite batch mode copies the table, and the
naming convention below names the reflected constraint so that it can be left out.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import portal.db

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SQLITE_NAMES = {"uq": "uq_%(table_name)s_%(column_0_name)s"}
RUNNING = "status = 'running'"
RUNNING_ALL = "status = 'running' AND person_id IS NULL"
RUNNING_PERSON = "status = 'running' AND person_id IS NOT NULL"
# A 0010 connection is named after its provider's label then.
NAME_CONNECTIONS = (
    "UPDATE conferencing_connection SET "
    "name = CASE provider WHEN 'zoom' THEN 'Zoom' WHEN 'imeet' THEN 'iMeet' ELSE provider END, "
    "auto_create = NULL, join_before_host = NULL"
)
# Downgrading: the sitewide values go back to the one connection kept, where it had none.
SITEWIDE_BACK = (
    "UPDATE conferencing_connection SET "
    "auto_create = COALESCE(auto_create, (SELECT s.auto_create FROM conferencing_settings s "
    "WHERE s.company_id = conferencing_connection.company_id), :no), "
    "join_before_host = COALESCE(join_before_host, (SELECT s.join_before_host "
    "FROM conferencing_settings s WHERE s.company_id = conferencing_connection.company_id), :no)"
)
FALLBACK_BACK = (
    "UPDATE conferencing_connection SET allow_jitsi_fallback = COALESCE((SELECT "
    "s.allow_jitsi_fallback FROM conferencing_settings s "
    "WHERE s.company_id = conferencing_connection.company_id), :no)"
)


def _id() -> sa.Column:
    return sa.Column("id", sa.Integer(), nullable=False)


def _tenant() -> list[sa.schema.SchemaItem]:
    return [
        sa.Column("company_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["company_id"], ["company.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    ]


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    op.create_table(
        "conferencing_settings",
        _id(),
        *_tenant(),
        sa.Column("auto_create", sa.Boolean(), nullable=False),
        sa.Column("join_before_host", sa.Boolean(), nullable=False),
        sa.Column("allow_jitsi_fallback", sa.Boolean(), nullable=False),
        sa.Column("require_account", sa.Boolean(), nullable=False),
        sa.Column("updated_at", portal.db.UTCDateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("company_id"),
    )
    op.execute(
        sa.text(
            "INSERT INTO conferencing_settings (company_id, auto_create, join_before_host, "
            "allow_jitsi_fallback, require_account, updated_at) "
            "SELECT company_id, auto_create, join_before_host, allow_jitsi_fallback, "
            ":no, updated_at FROM conferencing_connection"
        ).bindparams(no=False)
    )

    if not sqlite:
        op.drop_constraint(
            "conferencing_connection_company_id_key", "conferencing_connection", type_="unique"
        )
    with op.batch_alter_table(
        "conferencing_connection",
        recreate="always" if sqlite else "auto",
        naming_convention=SQLITE_NAMES,
    ) as batch_op:
        if sqlite:
            batch_op.drop_constraint("uq_conferencing_connection_company_id", type_="unique")
        batch_op.add_column(
            sa.Column(
                "name",
                sqlmodel.sql.sqltypes.AutoString(length=80),
                nullable=False,
                server_default="",
            )
        )
        batch_op.add_column(
            sa.Column(
                "serves",
                sqlmodel.sql.sqltypes.AutoString(length=16),
                nullable=False,
                server_default="everyone",
            )
        )
        batch_op.add_column(
            sa.Column("departments", sa.JSON(), nullable=False, server_default="[]")
        )
        batch_op.alter_column("auto_create", existing_type=sa.Boolean(), nullable=True)
        batch_op.alter_column("join_before_host", existing_type=sa.Boolean(), nullable=True)
        batch_op.drop_column("allow_jitsi_fallback")
    op.execute(NAME_CONNECTIONS)
    with op.batch_alter_table("conferencing_connection") as batch_op:
        batch_op.create_unique_constraint("uq_conferencing_connection_name", ["company_id", "name"])

    op.create_table(
        "conferencing_member",
        _id(),
        *_tenant(),
        sa.Column("connection_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["connection_id"], ["conferencing_connection.id"], ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.UniqueConstraint("connection_id", "user_id", name="uq_conferencing_member"),
    )
    op.create_index("ix_conferencing_member_person", "conferencing_member", ["user_id"])
    op.create_table(
        "conferencing_login",
        _id(),
        *_tenant(),
        sa.Column("connection_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("username", sqlmodel.sql.sqltypes.AutoString(length=254), nullable=False),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("provider_user_id", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("email", sqlmodel.sql.sqltypes.AutoString(length=254), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("room_url", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.Column("state", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("checked_at", portal.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("host_authorized_until", portal.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["connection_id"], ["conferencing_connection.id"], ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.UniqueConstraint("connection_id", "user_id", name="uq_conferencing_login"),
    )
    op.create_table(
        "conferencing_choice",
        _id(),
        *_tenant(),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("connection_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["connection_id"], ["conferencing_connection.id"], ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.UniqueConstraint("user_id"),
    )

    with op.batch_alter_table("conferencing_sync_run") as batch_op:
        batch_op.add_column(sa.Column("person_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            "fk_conferencing_sync_run_person_id", "users", ["person_id"], ["id"], ondelete="CASCADE"
        )
        batch_op.drop_index(
            "uq_conferencing_sync_run_running",
            sqlite_where=sa.text(RUNNING),
            postgresql_where=sa.text(RUNNING),
        )
        batch_op.create_index(
            "uq_conferencing_sync_run_running",
            ["connection_id"],
            unique=True,
            sqlite_where=sa.text(RUNNING_ALL),
            postgresql_where=sa.text(RUNNING_ALL),
        )
        batch_op.create_index(
            "uq_conferencing_sync_run_person",
            ["connection_id", "person_id"],
            unique=True,
            sqlite_where=sa.text(RUNNING_PERSON),
            postgresql_where=sa.text(RUNNING_PERSON),
        )


def downgrade() -> None:
    """Back to one connection per company: only each company's first connection is kept."""
    sqlite = op.get_bind().dialect.name == "sqlite"
    op.execute("DELETE FROM conferencing_sync_run WHERE person_id IS NOT NULL")
    with op.batch_alter_table("conferencing_sync_run") as batch_op:
        batch_op.drop_index("uq_conferencing_sync_run_person")
        batch_op.drop_index("uq_conferencing_sync_run_running")
        batch_op.drop_constraint("fk_conferencing_sync_run_person_id", type_="foreignkey")
        batch_op.drop_column("person_id")
        batch_op.create_index(
            "uq_conferencing_sync_run_running",
            ["company_id"],
            unique=True,
            sqlite_where=sa.text(RUNNING),
            postgresql_where=sa.text(RUNNING),
        )
    op.drop_table("conferencing_choice")
    op.drop_table("conferencing_login")
    op.drop_index("ix_conferencing_member_person", table_name="conferencing_member")
    op.drop_table("conferencing_member")

    op.execute(
        "DELETE FROM conferencing_connection WHERE id NOT IN "
        "(SELECT MIN(id) FROM conferencing_connection GROUP BY company_id)"
    )
    op.execute(sa.text(SITEWIDE_BACK).bindparams(no=False))
    with op.batch_alter_table("conferencing_connection") as batch_op:
        batch_op.drop_constraint("uq_conferencing_connection_name", type_="unique")
        batch_op.add_column(
            sa.Column(
                "allow_jitsi_fallback", sa.Boolean(), nullable=False, server_default=sa.false()
            )
        )
        batch_op.alter_column("join_before_host", existing_type=sa.Boolean(), nullable=False)
        batch_op.alter_column("auto_create", existing_type=sa.Boolean(), nullable=False)
        batch_op.drop_column("departments")
        batch_op.drop_column("serves")
        batch_op.drop_column("name")
        batch_op.create_unique_constraint(
            None if not sqlite else "uq_conferencing_connection_company_id", ["company_id"]
        )
    op.execute(sa.text(FALLBACK_BACK).bindparams(no=False))
    op.drop_table("conferencing_settings")
