"""The health probes: no sign-in, no company data, on any host name (see portal/app.py)."""

from __future__ import annotations

from starlette.routing import BaseRoute, Route

from portal.health import views

LIVE_PATH = "/healthz"
READY_PATH = "/readyz"
# Load balancers probe by the machine's address, not the portal's name: the host checks let
# these through.
PROBE_PATHS = frozenset({LIVE_PATH, READY_PATH})

routes: list[BaseRoute] = [
    Route(LIVE_PATH, views.live, name="health.live"),
    Route(READY_PATH, views.ready, name="health.ready"),
]
