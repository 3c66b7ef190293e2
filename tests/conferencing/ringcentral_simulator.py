"""A RingCentral account in memory, served like RingCentral's platform API and RingCentral
Video's bridges API.

    account = RingCentralAccount("client", "secret", "jwt")
    account.add_user("ada@example.com", "Ada", "Lovelace")
    with serve(ringcentral_app(account)) as url:
        provider = RingCentralProvider("client", "secret", "jwt", api_url=url)

Endpoint key (as `open_provider` takes it): "ringcentral_api" is the served URL (RingCentral's
https://platform.ringcentral.com); `ringcentral_endpoints(url)` builds it. Join links are on
`account.web_url` (https://v.ringcentral.example), a reserved domain.

Paths, fields, pagination (`page`/`perPage`, `navigation.nextPage`) and errors
(`{errorCode, message, errors: [{errorCode, message}]}`, OAuth's `{error, error_description}`
at the token endpoint, 429 with `CMN-301` and Retry-After) follow RingCentral's public
reference. Tests make it misbehave through the account: `fail_next`, `delay`, `expire_tokens`,
`make_non_admin`, `refuse_delegation`, `change_email`, a lower `max_per_page`.
"""

from __future__ import annotations

import base64
import itertools
import json
import secrets
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.conferencing.simulation import Fault, SimulatedService

JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
STATUSES = ("Enabled", "Disabled", "Frozen", "NotActivated", "Unassigned")
BRIDGE_TYPES = ("Instant", "Scheduled", "PMI")


class RingCentralAccount(SimulatedService):
    """One RingCentral account: its extensions, its app and JWT, its bridges, and the faults."""

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        jwt: str,
        *,
        account_id: str = "37439510",
        owner_email: str = "admin@ringcentral.example",
        web_url: str = "https://v.ringcentral.example",
    ) -> None:
        super().__init__()
        self.client_id = client_id
        self.client_secret = client_secret
        self.jwt = jwt
        self.account_id = account_id
        # Join links point at a reserved domain so that nothing reaches the real service.
        self.web_url = web_url
        self.extensions: dict[str, dict[str, Any]] = {}
        self.bridges: dict[str, dict[str, Any]] = {}
        self.default_bridges: dict[str, str] = {}  # extension id -> its PMI bridge's id
        # Extensions that have not made the JWT's user their delegate (who may schedule for them).
        self.undelegated: set[str] = set()
        self.max_per_page = 1000
        self.token_lifetime = 3600
        self.tokens: set[str] = set()
        self.expired_tokens: set[str] = set()
        self._numbers = itertools.count(1)
        self.owner = self.add_user(owner_email, "Account", "Admin", admin=True)
        # The user whose JWT credential the app signs in with: its tokens act as them.
        self.jwt_user_id = self.owner["id"]

    def add_user(
        self,
        email: str,
        first: str = "",
        last: str = "",
        *,
        status: str = "Enabled",
        admin: bool = False,
        delegate: bool = True,
    ) -> dict[str, Any]:
        """A User extension as GET .../extension/{id} shows it (with "id", a string here);
        `delegate`: the JWT's user may schedule meetings for them."""
        number = next(self._numbers)
        extension_id = str(62_000_000_000 + number)
        self.extensions[extension_id] = {
            "uri": f"https://platform.ringcentral.example/restapi/v1.0/account/"
            f"{self.account_id}/extension/{extension_id}",
            "id": int(extension_id),
            "extensionNumber": str(100 + number),
            "contact": {
                "firstName": first,
                "lastName": last,
                "email": email,
                "emailAsLoginName": True,
            },
            "name": f"{first} {last}".strip(),
            "type": "User",
            "status": status,
            "permissions": {
                "admin": {"enabled": admin},
                "internationalCalling": {"enabled": False},
            },
            "account": {"id": self.account_id},
        }
        if not delegate:
            self.undelegated.add(extension_id)
        return {**self.extensions[extension_id], "id": extension_id}

    def change_email(self, extension_id: str, new_email: str) -> None:
        self.extensions[extension_id]["contact"]["email"] = new_email

    def set_status(self, extension_id: str, status: str) -> None:
        self.extensions[extension_id]["status"] = status

    def make_non_admin(self) -> dict[str, Any]:
        """From now on the JWT belongs to a user without the administrator permission."""
        member = self.add_user("member@ringcentral.example", "Plain", "Member")
        self.jwt_user_id = member["id"]
        return member

    def refuse_delegation(self, extension_id: str) -> None:
        """The JWT's user may no longer schedule meetings for this extension."""
        self.undelegated.add(extension_id)

    def expire_tokens(self) -> None:
        """Every token issued so far answers 401 TokenExpired, as when RingCentral ends them
        early."""
        self.expired_tokens |= self.tokens
        self.tokens.clear()

    def default_bridge(self, extension_id: str) -> dict[str, Any]:
        """The extension's personal (PMI) bridge, made when first asked for, as RingCentral
        Video does."""
        if extension_id not in self.default_bridges:
            bridge = self._new_bridge(extension_id, "PMI", "Personal Meeting Room", {}, {})
            self.default_bridges[extension_id] = bridge["id"]
        return self.bridges[self.default_bridges[extension_id]]

    def _new_bridge(
        self,
        extension_id: str,
        type: str,
        name: str,
        security: dict[str, Any],
        preferences: dict[str, Any],
    ) -> dict[str, Any]:
        pin = f"{secrets.randbelow(10**12):012d}"
        link = f"{self.web_url}/join/{pin}"
        security = {"passwordProtected": False, "noGuests": False, "sameAccount": False, **security}
        if security["passwordProtected"]:
            join_query = secrets.token_hex(16)
            security["password"] = {"plainText": secrets.token_urlsafe(8), "joinQuery": join_query}
            link += f"?pw={join_query}"
        bridge_id = f"iad41-c04-ndb{secrets.token_hex(12)}"
        bridge: dict[str, Any] = {
            "id": bridge_id,
            "name": name,
            "type": type,
            "host": {"accountId": self.account_id, "extensionId": extension_id},
            "pins": {"pstn": {"host": pin[::-1], "participant": pin}, "web": pin},
            "security": security,
            "preferences": {
                "join": {"audioMuted": False, "videoMuted": False, "waitingRoomRequired": "Nobody"},
                "joinBeforeHost": False,
                "screenSharing": True,
                **preferences,
            },
            "discovery": {"web": link},
        }
        self.bridges[bridge_id] = bridge
        return bridge


def ringcentral_endpoints(url: str) -> dict[str, str]:
    """The `endpoints` override that points `open_provider("ringcentral", ...)` at a simulator."""
    return {"ringcentral_api": url}


def ringcentral_app(account: RingCentralAccount) -> Starlette:
    """The simulator's ASGI app for `account`."""

    front = account.front(_fault)

    async def token(request: Request) -> Response:
        form = await request.form()
        if _basic(request) != (account.client_id, account.client_secret):
            return _oauth_error(401, "invalid_client", "Invalid client", "OAU-123")
        if form.get("grant_type") != JWT_GRANT:
            return _oauth_error(
                400, "unauthorized_client", "Unauthorized for this grant type", "OAU-112"
            )
        if form.get("assertion") != account.jwt:
            return _oauth_error(400, "invalid_grant", "Invalid token", "OAU-140")
        issued = secrets.token_urlsafe(24)
        account.tokens.add(issued)
        return JSONResponse(
            {
                "access_token": issued,
                "token_type": "bearer",
                "expires_in": account.token_lifetime,
                "refresh_token": secrets.token_urlsafe(24),
                "refresh_token_expires_in": 604800,
                "scope": "ReadAccounts Video",
                "owner_id": account.jwt_user_id,
                "endpoint_id": secrets.token_hex(8),
            }
        )

    def caller(request: Request) -> dict[str, Any] | Response:
        scheme, _, bearer = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and bearer in account.expired_tokens:
            return _error(401, "TokenExpired", "Access token expired", "OAU-128")
        if scheme.lower() != "bearer" or bearer not in account.tokens:
            return _error(401, "TokenInvalid", "Access token corrupted", "OAU-129")
        return account.extensions[account.jwt_user_id]

    def extension_of(request: Request, me: dict[str, Any]) -> str | Response:
        key = request.path_params["extension"]
        extension_id = str(me["id"]) if key == "~" else key
        if extension_id not in account.extensions:
            return _error(
                404, "CMN-102", "Resource for parameter [extensionId] is not found", "CMN-102"
            )
        return extension_id

    async def get_extension(request: Request) -> Response:
        me = caller(request)
        if isinstance(me, Response):
            return me
        extension_id = extension_of(request, me)
        if isinstance(extension_id, Response):
            return extension_id
        return JSONResponse(account.extensions[extension_id])

    async def list_extensions(request: Request) -> Response:
        me = caller(request)
        if isinstance(me, Response):
            return me
        query = request.query_params
        try:
            page = int(query.get("page", "1"))
            per_page = min(int(query.get("perPage", "100")), account.max_per_page)
        except ValueError:
            return _error(400, "CMN-101", "Parameter [page] value is invalid.", "CMN-101")
        if page < 1 or per_page < 1:
            return _error(400, "CMN-101", "Parameter [page] value is invalid.", "CMN-101")
        types, statuses = query.getlist("type"), query.getlist("status")
        emails = {email.casefold() for email in query.getlist("email")}
        matching = [
            record
            for record in account.extensions.values()
            if (not types or record["type"] in types)
            and (not statuses or record["status"] in statuses)
            and (not emails or record["contact"]["email"].casefold() in emails)
        ]
        total_pages = -(-len(matching) // per_page)
        base_uri = "https://platform.ringcentral.example/restapi/v1.0/account/~/extension"
        navigation: dict[str, Any] = {
            "firstPage": {"uri": f"{base_uri}?page=1&perPage={per_page}"},
            "lastPage": {"uri": f"{base_uri}?page={max(total_pages, 1)}&perPage={per_page}"},
        }
        if page < total_pages:
            navigation["nextPage"] = {"uri": f"{base_uri}?page={page + 1}&perPage={per_page}"}
        if page > 1:
            navigation["previousPage"] = {"uri": f"{base_uri}?page={page - 1}&perPage={per_page}"}
        start = (page - 1) * per_page
        chunk = matching[start : start + per_page]
        return JSONResponse(
            {
                "uri": f"{base_uri}?page={page}&perPage={per_page}",
                "records": chunk,
                "paging": {
                    "page": page,
                    "totalPages": total_pages,
                    "perPage": per_page,
                    "totalElements": len(matching),
                    "pageStart": start,
                    "pageEnd": start + len(chunk) - 1,
                },
                "navigation": navigation,
            }
        )

    async def default_bridge(request: Request) -> Response:
        me = caller(request)
        if isinstance(me, Response):
            return me
        extension_id = extension_of(request, me)
        if isinstance(extension_id, Response):
            return extension_id
        return JSONResponse(account.default_bridge(extension_id))

    async def create_bridge(request: Request) -> Response:
        me = caller(request)
        if isinstance(me, Response):
            return me
        extension_id = extension_of(request, me)
        if isinstance(extension_id, Response):
            return extension_id
        if extension_id != str(me["id"]) and extension_id in account.undelegated:
            return _error(403, "CMN-401", "The caller is not a delegate of the host", "CMN-401")
        try:
            body = json.loads(await request.body())
            kind = body.get("type", "Instant")
            security, preferences = body.get("security") or {}, body.get("preferences") or {}
        except (ValueError, AttributeError):
            return _error(400, "CMN-103", "JSON can't be parsed.", "CMN-103")
        if kind not in BRIDGE_TYPES or not isinstance(security, dict):
            return _error(400, "CMN-101", "Parameter [type] value is invalid.", "CMN-101")
        name = str(body.get("name") or "RingCentral Video meeting")
        bridge = account._new_bridge(extension_id, kind, name, security, preferences)
        return JSONResponse(bridge)

    prefix = "/restapi/v1.0/account/~/extension"
    bridges = "/rcvideo/v2/account/~/extension/{extension}/bridges"
    return Starlette(
        routes=[
            Route("/restapi/oauth/token", front(token), methods=["POST"]),
            Route(prefix, front(list_extensions), methods=["GET"]),
            Route(prefix + "/{extension}", front(get_extension), methods=["GET"]),
            Route(bridges, front(create_bridge), methods=["POST"]),
            Route(bridges + "/default", front(default_bridge), methods=["GET"]),
        ]
    )


def _basic(request: Request) -> tuple[str, str] | None:
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        client_id, _, secret = base64.b64decode(encoded).decode().partition(":")
    except ValueError:
        return None
    return client_id, secret


def _error(status: int, code: str, message: str, detail_code: str) -> Response:
    body = {
        "errorCode": code,
        "message": message,
        "errors": [{"errorCode": detail_code, "message": message}],
    }
    return JSONResponse(body, status)


def _oauth_error(status: int, error: str, description: str, code: str) -> Response:
    body = {
        "error": error,
        "error_description": description,
        "errors": [{"errorCode": code, "message": description}],
    }
    return JSONResponse(body, status)


def _fault(fault: Fault, path: str) -> Response:
    status, headers = fault.status, fault.headers()
    if status == 429:
        return JSONResponse(
            {
                "errorCode": "CMN-301",
                "message": "Request rate exceeded",
                "errors": [{"errorCode": "CMN-301", "message": "Request rate exceeded"}],
            },
            status,
            headers=headers,
        )
    body = {
        "errorCode": "CMN-201",
        "message": "Service Temporary Unavailable",
        "errors": [{"errorCode": "CMN-201", "message": "Service Temporary Unavailable"}],
    }
    return JSONResponse(body, status, headers=headers)
