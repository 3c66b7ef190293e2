"""A server process sets what it starts with aside from the cycle collector's full passes,
which walked all of it while the process answered no one; the tests' apps set nothing aside."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from portal.app import create_app
from portal.settings import Settings


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    # What a test sets aside is the test process's to collect again.
    gc.unfreeze()


@pytest.mark.usefixtures("unfrozen")
@pytest.mark.parametrize("server", [False, True])
async def test_a_server_sets_aside_what_it_starts_with(settings: Settings, server: bool) -> None:
    app = create_app(settings, server=server)
    async with app.router.lifespan_context(app):
        set_aside = gc.get_freeze_count()
    # Modules, routes, templates and pools: tens of thousands of objects.
    assert (set_aside > 10_000) == server, set_aside
