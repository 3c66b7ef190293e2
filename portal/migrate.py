"""Alembic, configured from the portal's settings rather than an ini file."""

from __future__ import annotations

from alembic import command
from alembic.config import Config

from portal.db import create_sqlite_file, sync_url
from portal.settings import PROJECT_ROOT


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    # ConfigParser interpolation: a literal % in a password must be doubled.
    config.set_main_option("sqlalchemy.url", sync_url(database_url).replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Bring the database schema up to `revision`."""
    create_sqlite_file(database_url)
    command.upgrade(alembic_config(database_url), revision)
