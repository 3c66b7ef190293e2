"""Provider simulators served on loopback: a real HTTP server the adapters talk to."""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
from starlette.types import ASGIApp

from portal.settings import Settings
from tests.conferencing.zoom_simulator import ZoomAccount, zoom_app, zoom_endpoints
from tests.servers import free_port

# What an adapter under test waits for the simulator's answer: long enough for a loaded
# machine, where a timed-out request is retried and a test that counts requests would count
# one more. A test of the timeout opens its adapter with a short one of its own.
PATIENCE = 2.0

# A Zoom account's Server-to-Server OAuth app, as the admin enters it.
ZOOM_CREDENTIALS = {
    "account_id": "acct-1",
    "client_id": "client-1",
    "client_secret": "s3cret-value",
}


@contextlib.contextmanager
def serve(app: ASGIApp) -> Iterator[str]:
    """Serve `app` on a free loopback port in a thread until the block ends; yields its URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the simulator did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def zoom() -> ZoomAccount:
    """The company's Zoom account at the simulator: tests add users and faults to it."""
    return ZoomAccount(*ZOOM_CREDENTIALS.values())


@pytest.fixture
def zoom_settings(settings: Settings, zoom: ZoomAccount) -> Iterator[Settings]:
    """Settings whose Zoom is the simulator of `zoom`, served while the test runs."""
    with serve(zoom_app(zoom)) as url:
        yield dataclasses.replace(settings, provider_endpoints=zoom_endpoints(url))
