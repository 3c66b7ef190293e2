"""procrastinate's tables on PostgreSQL: `portal db upgrade` creates them and keeps them current.

procrastinate ships its schema (schema.sql) and a migration file per release that changes it,
and leaves tracking them to us: the version applied is stamped as the comment of
procrastinate_jobs. Migrations are applied pre and post alike, procrastinate's "easier way": a
procrastinate upgrade that brings migrations wants the workers stopped during the release step.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import LiteralString, cast

import procrastinate
import psycopg
from procrastinate.schema import SchemaManager
from psycopg import sql

from portal.db import libpq_conninfo

_LOCK = 72_620_511  # a transaction advisory lock: two release steps at once take turns
_STAMP = re.compile(r"procrastinate (\d+\.\d+\.\d+)")
_MIGRATION = re.compile(r"(\d+)\.(\d+)\.(\d+)_(\d+)_.*\.sql")

Version = tuple[int, int, int]


def _version(dotted: str) -> Version:
    major, minor, patch = (int(part) for part in re.findall(r"\d+", dotted)[:3])
    return (major, minor, patch)


def pending_migrations(stamped: Version, installed: Version, names: list[str]) -> list[str]:
    """The migration files after `stamped` up to `installed`, in order (each file is named for
    the release that brings it, then its serial number)."""
    keyed = [
        ((int(m[1]), int(m[2]), int(m[3])), int(m[4]), name)
        for name in names
        if (m := _MIGRATION.fullmatch(name))
    ]
    return [name for version, _, name in sorted(keyed) if stamped < version <= installed]


def apply_procrastinate_schema(database_url: str) -> list[str]:
    """Create procrastinate's tables or bring them to the installed version; what was applied."""
    installed = procrastinate.__version__
    folder = Path(SchemaManager.get_migrations_path())
    with psycopg.connect(libpq_conninfo(database_url)) as connection:  # one transaction
        connection.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
        exists, stamp = connection.execute(
            "SELECT to_regclass('procrastinate_jobs') IS NOT NULL,"
            " obj_description(to_regclass('procrastinate_jobs'), 'pg_class')"
        ).fetchone() or (False, None)
        if not exists:
            connection.execute(SchemaManager.get_schema())
            applied = ["schema.sql"]
        else:
            # No stamp: someone ran `procrastinate schema --apply` with this very version.
            match = _STAMP.fullmatch(stamp or "")
            stamped = _version(match[1] if match else installed)
            names = sorted(path.name for path in folder.glob("*.sql"))
            applied = pending_migrations(stamped, _version(installed), names)
            for name in applied:
                connection.execute(cast(LiteralString, (folder / name).read_text()))
        connection.execute(
            sql.SQL("COMMENT ON TABLE procrastinate_jobs IS {}").format(
                sql.Literal(f"procrastinate {installed}")
            )
        )
    return applied
