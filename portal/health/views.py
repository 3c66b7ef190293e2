"""/healthz: the process answers. /readyz: it can serve (database, schema, worker)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse

from portal.health import services
from portal.web import database_of, settings_of

NO_STORE = {"Cache-Control": "no-store"}


async def live(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"}, headers=NO_STORE)


async def ready(request: Request) -> JSONResponse:
    checks = await services.readiness(database_of(request), settings_of(request))
    ready = all(check == services.OK for check in checks.values())
    return JSONResponse(
        {"status": "ok" if ready else "unavailable", "checks": checks},
        status_code=200 if ready else 503,
        headers=NO_STORE,
    )
