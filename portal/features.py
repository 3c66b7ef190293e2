"""The features the portal is made of. Each declares its own routes (`<feature>/routes.py`,
a `routes` list) and background jobs (`<feature>/jobs.py`, a `JOBS` tuple); the core only
collects them here (after Warehouse's `includeme`)."""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType
from typing import TYPE_CHECKING

from starlette.routing import BaseRoute

if TYPE_CHECKING:
    from portal.jobs import Job

# In the order their routes are tried (a feature's own list keeps its routes' order), each
# route's pattern matched in turn: the directory's first, whose hover card and search are
# the pages asked for most (each pattern tried before the card's cost it 1.7 µs).
FEATURES = (
    "directory",
    "accounts",
    "meetings",
    "calendar",
    "notifications",
    "setup",
    "mail",
    "conferencing",
    "health",
)


def _declared(part: str) -> list[ModuleType]:
    """Each feature's `part` module (routes, jobs), for the features that have one."""
    names = (f"portal.{feature}.{part}" for feature in FEATURES)
    return [importlib.import_module(name) for name in names if importlib.util.find_spec(name)]


def routes() -> list[BaseRoute]:
    """Every feature's routes, feature by feature."""
    return [route for module in _declared("routes") for route in module.routes]


def jobs() -> tuple[Job, ...]:
    """Every feature's background jobs."""
    return tuple(job for module in _declared("jobs") for job in module.JOBS)
