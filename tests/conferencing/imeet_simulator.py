"""An iMeet (PGi provisioning API) account in memory, served by `imeet_app(account)`.

The shape is PGi's as its partners describe it: the API key in `X-AUTH-TOKEN`, every call a
POST under /provisioning/client/ with a JSON body, answers `{"status": "success", "data": ...}`
or `{"status": "error", "message": ...}` with the HTTP status. The names are spelled here
independently of the adapter, so a drift between the two fails the tests.

Endpoints for `open_provider`: `imeet_endpoints(url)`, i.e. {"imeet_api": url}, where url is
what `serve(imeet_app(account))` yields.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.conferencing.simulation import Fault, SimulatedService

FIRST_CLIENT_ID = 10863894


class IMeetAccount(SimulatedService):
    """One company at PGi: its clients, its keys, and the faults the next requests meet."""

    def __init__(self, api_key: str, *, hub: str = "example") -> None:
        super().__init__()
        self.api_key = api_key
        self.member_keys: set[str] = set()  # keys that work but are not an administrator's
        self.hub = hub
        self.clients: dict[int, dict[str, Any]] = {}
        self._ids = itertools.count(FIRST_CLIENT_ID)

    def add_client(
        self, email: str, first_name: str = "", last_name: str = "", *, active: bool = True
    ) -> dict[str, Any]:
        """A client with a personal room; returns its record (as the API shows it)."""
        client_id = next(self._ids)
        room = f"{first_name}{last_name}".lower() or f"room{client_id}"
        self.clients[client_id] = {
            "clientId": client_id,
            "email": email,
            "first": first_name,
            "last": last_name,
            "active": active,
            "roomUrl": f"https://{self.hub}.imeet.com/{room}{client_id}",
        }
        return self.clients[client_id]

    def change_email(self, client_id: int, new_email: str) -> None:
        self.clients[client_id]["email"] = new_email

    def issue_member_key(self, key: str) -> None:
        """A key of an ordinary (non-administrator) person in the company."""
        self.member_keys.add(key)

    @property
    def bodies(self) -> list[Any]:
        """The JSON body of each request, in the order of `requests` (None where it had none)."""
        return [_json_or_none(sent.body) for sent in self.sent]


def imeet_endpoints(url: str) -> dict[str, str]:
    """`open_provider`'s endpoints for the simulator served at `url`."""
    return {"imeet_api": url}


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"status": "error", "message": message}, status, headers=headers)


def _success(data: Any) -> JSONResponse:
    return JSONResponse({"status": "success", "data": data})


def imeet_app(account: IMeetAccount) -> Starlette:
    """The provisioning API over `account`."""

    def find_client(body: dict[str, Any]) -> dict[str, Any] | None:
        client_id = body.get("clientId")
        return account.clients.get(client_id) if isinstance(client_id, int) else None

    async def list_clients(body: dict[str, Any]) -> JSONResponse:
        page, size = body.get("page", 1), body.get("pageSize", 100)
        if not isinstance(page, int) or not isinstance(size, int) or page < 1 or size < 1:
            return _error(400, "page and pageSize must be positive integers")
        everyone = list(account.clients.values())
        start = (page - 1) * size
        return _success(
            {
                "clients": everyone[start : start + size],
                "page": page,
                "pageSize": size,
                "totalCount": len(everyone),
            }
        )

    async def find_by_email(body: dict[str, Any]) -> JSONResponse:
        wanted = str(body.get("email", "")).strip().lower()
        for client in account.clients.values():
            if client["email"].lower() == wanted:
                return _success(client)
        return _error(404, "Client not found")

    async def get(body: dict[str, Any]) -> JSONResponse:
        client = find_client(body)
        return _success(client) if client else _error(404, "Client not found")

    async def set_active(body: dict[str, Any], active: bool) -> JSONResponse:
        client = find_client(body)
        if client is None:
            return _error(404, "Client not found")
        client["active"] = active
        return _success(None)

    async def provision(body: dict[str, Any]) -> JSONResponse:
        new = body.get("client")
        if not isinstance(new, dict) or not new.get("email"):
            return _error(400, "client.email is required")
        for client in account.clients.values():
            if client["email"].lower() == new["email"].lower():
                break  # PGi: provisioning the same client again does not duplicate it
        else:
            client = account.add_client(new["email"], new.get("first", ""), new.get("last", ""))
        return _success(
            {"companyId": 123456, "clientId": client["clientId"], "hub": {"hubUrl": account.hub}}
        )

    async def sign_on(body: dict[str, Any]) -> JSONResponse:
        client = find_client(body)
        if client is None:
            return _error(404, "Client not found")
        return _success({"url": f"{client['roomUrl']}?signon=token-{client['clientId']}"})

    calls = {
        "list": list_clients,
        "find": find_by_email,
        "get": get,
        "deactivate": lambda body: set_active(body, False),
        "reactivate": lambda body: set_active(body, True),
        "provision": provision,
        "signon": sign_on,
    }

    async def endpoint(request: Request) -> JSONResponse:
        call = request.path_params["call"]
        body = _json_or_none(await request.body())
        key = request.headers.get("X-AUTH-TOKEN")
        if key != account.api_key and key not in account.member_keys:
            return _error(401, "Invalid API key")
        if not isinstance(body, dict):
            return _error(400, "The body must be a JSON object")
        if call not in calls:
            return _error(404, "No such call")
        if key != account.api_key:
            return _error(403, "This API key is not a company administrator's")
        return await calls[call](body)

    return Starlette(
        routes=[
            Route("/provisioning/client/{call}", account.front(_fault)(endpoint), methods=["POST"])
        ]
    )


def _fault(fault: Fault, path: str) -> JSONResponse:
    retry_after = fault.retry_after
    headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else None
    return _error(fault.status, "Simulated failure", headers)


def _json_or_none(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None
