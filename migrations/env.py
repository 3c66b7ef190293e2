"""Alembic environment: the portal's models are the target metadata."""

from __future__ import annotations

from alembic import context
from sqlalchemy import engine_from_config, pool

import portal.models  # noqa: F401  (registers every table on the metadata)
from portal.db import metadata
from portal.directory import search_index

config = context.config


def include_name(name: str | None, type_: str, parent_names: object) -> bool:
    """Only our models' tables: not procrastinate's (`portal db upgrade` applies them), nor the
    people search's own, which migrations keep by hand: 0005's FTS5 table and its shadow
    tables on SQLite (autogenerate sees no triggers, so those need no filter), and on
    PostgreSQL 0013's stored search text, in no model, and its trigram index, which exists
    only where pg_trgm could be created."""
    if type_ == "index":
        return name != search_index.TRIGRAM_INDEX
    if type_ == "column":
        return name != search_index.SEARCH_TEXT
    if type_ != "table" or name is None:
        return True
    return not (name.startswith("procrastinate_") or search_index.is_part_of_index(name))


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=metadata,
        literal_binds=True,
        render_as_batch=True,
        include_name=include_name,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connectable = engine_from_config(
        config.get_section(config.config_ini_section, {}),
        prefix="sqlalchemy.",
        poolclass=pool.NullPool,
    )
    with connectable.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=metadata,
            # SQLite alters tables by copying them; batch mode does that for us.
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
            include_name=include_name,
        )
        with context.begin_transaction():
            context.run_migrations()
    connectable.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
