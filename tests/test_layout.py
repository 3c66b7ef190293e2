"""The layout the README describes, kept true: imports run one way, services never commit, and
each feature's routes and jobs are its own."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from portal import features

PORTAL = Path(__file__).resolve().parent.parent / "portal"
CORE = {"db", "settings", "security", "htmx", "pagination", "forms", "timezones", "jobs"}
FEATURES = set(features.FEATURES)


def _modules() -> list[Path]:
    return sorted(PORTAL.rglob("*.py"))


def _imports(path: Path) -> set[str]:
    """The portal modules `path` imports, dotted (portal.mail.outbox, portal.jobs ...)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("portal"):
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("portal"))
    return found


def _feature_of(dotted: str) -> str | None:
    parts = dotted.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in FEATURES else None


def _name(path: Path) -> str:
    return ".".join(path.relative_to(PORTAL.parent).with_suffix("").parts)


@pytest.mark.parametrize("path", _modules(), ids=_name)
def test_imports_run_one_way(path: Path) -> None:
    name = _name(path)
    imports = _imports(path)
    parts = name.split(".")
    # Only a feature's routes (and the app) import views.
    if parts[-1] != "routes":
        views = {m for m in imports if m.endswith(".views") or ".views." in m}
        assert not views, f"{name} imports views: {views}"
    # Services and models never reach back up to HTTP.
    if parts[-1] in {"services", "models"}:
        web = {m for m in imports if m.split(".")[1:2] in (["web"], ["htmx"])}
        assert not web, f"{name} imports the web layer: {web}"
    if parts[-1] == "models":
        assert not {m for m in imports if ".services" in m}, f"{name} imports services"
    # The core knows no feature, except the mail sender's Protocol that a job environment holds.
    if parts[1] in CORE:
        feature_imports = {m for m in imports if _feature_of(m)} - {
            "portal.mail.interfaces",
            "portal.mail.interfaces.MailSender",
        }
        assert not feature_imports, f"core module {name} imports features: {feature_imports}"
    # Mail knows nothing of what it carries; conferencing nothing of who books rooms.
    if _feature_of(name) == "mail":
        others = {m for m in imports if _feature_of(m) not in (None, "mail")}
        assert not others, f"{name} imports other features: {others}"
    if _feature_of(name) == "conferencing":
        users = {m for m in imports if _feature_of(m) in {"meetings", "calendar", "setup"}}
        assert not users, f"{name} imports the features that use it: {users}"


def _commits(path: Path) -> list[int]:
    return [
        node.lineno
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "commit"
    ]


@pytest.mark.parametrize(
    "path",
    [
        *sorted(PORTAL.glob("*/services.py")),
        PORTAL / "accounts" / "imports.py",
        PORTAL / "accounts" / "signin.py",
    ],
    ids=_name,
)
def test_services_only_add_and_flush(path: Path) -> None:
    """The request or the job commits, once: a service that commits would split its caller's
    unit of work (an event, its invitations and its notices must be written together)."""
    assert not _commits(path), f"{_name(path)} commits at lines {_commits(path)}"


# The owners of their own units of work: the one place that commits for views and jobs, the
# outbox's dispatcher (a claim must be committed before its messages are sent), and the command
# line with the demo company it seeds.
OWNERS = {
    "portal.db",
    "portal.web",
    "portal.mail.dispatch",
    "portal.mail.recording",
    "portal.cli",
    "portal.accounts.demo",
}


def test_only_the_owners_of_a_unit_of_work_commit() -> None:
    """login_required commits for a view; public views, jobs and the command line go through
    Database.transaction."""
    committing = {_name(path): _commits(path) for path in _modules()}
    assert {name for name, lines in committing.items() if lines} <= OWNERS


def test_every_feature_routes_only_its_own_views() -> None:
    for path in PORTAL.glob("*/routes.py"):
        feature = path.parent.name
        views = {m for m in _imports(path) if _feature_of(m) and _feature_of(m) != feature}
        assert not views, f"{feature}/routes.py routes another feature's views: {views}"
