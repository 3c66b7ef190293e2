"""A Webex organization in memory, served like the Webex REST API (with its OAuth pages) and a
Webex site's Meetings XML API.

    account = WebexAccount("client-1", "secret-1")
    ada = account.add_person("ada@acme.example", "Ada Lovelace")
    with serve(webex_app(account)) as url:
        provider = WebexProvider("client-1", "secret-1", account.admin_refresh_token,
                                 api_url=f"{url}/v1")

Endpoint keys (as the registry takes them): "webex_api" is f"{url}/v1" (Webex's
https://webexapis.com/v1) and "webex_xml" is f"{url}/WBXService/XMLService" (a site's
https://{site}.webex.com/WBXService/XMLService); `webex_endpoints(url)` builds both.

REST, from developer.webex.com: `POST /v1/access_token` (form grants authorization_code and
refresh_token, client id and secret in the form), `GET /v1/people[?email=&max=]` (pages linked by
`Link: <...>; rel="next"`), `/v1/people/me`, `/v1/people/{id}`,
`/v1/meetingPreferences/personalMeetingRoom[?userEmail=]` (403 "Not permitted to view or change
other user's preferences" unless an administrator asks), `POST /v1/meetings`; errors
`{message, errors: [{description}], trackingId}`, token errors with OAuth's `error` as well.

`GET /v1/authorize` is the page a host's browser sees: "Sign in to Webex", an email box (labelled
"Email address", prefilled from `login_hint` or `email`), and the buttons "Accept" and "Cancel"
posting back to `/v1/authorize`. Accept with a person's email redirects to
`redirect_uri?code=...&state=...`; Cancel to `redirect_uri?error=access_denied&...&state=...`;
an unknown email shows the page again with an alert. Codes work once.

XML, from the Webex Meetings XML API reference: `POST /WBXService/XMLService` with
`ep.GetAPIVersion` (no user needed), `user.GetUser` and `meeting.CreateMeeting`, signed in by
the securityContext; a wrong webExID or password answers FAILURE 030002 "Incorrect user or
password". The reference names no exception for an unknown siteName: the simulator answers
FAILURE "Site not found" for it.

Links point at https://acme.webex.example so that nothing a test opens reaches Webex. Tests make
it misbehave through the account: `fail_next` (429 with Retry-After, 500...), `delay`,
`expire_access_tokens`, `revoke_refresh_tokens`, `rotate_refresh_tokens`, `change_email`,
a lower `max_page_size`.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import itertools
import json
import secrets
import time
import uuid
import xml.etree.ElementTree as ET
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit
from xml.sax.saxutils import escape

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from tests.conferencing.simulation import Fault, SimulatedService

# Role ids as Webex gives them: unpadded base64 of "ciscospark://us/ROLE/<name>".
FULL_ADMIN_ROLE = "Y2lzY29zcGFyazovL3VzL1JPTEUvaWRfZnVsbF9hZG1pbg"
READ_ONLY_ADMIN_ROLE = "Y2lzY29zcGFyazovL3VzL1JPTEUvaWRfcmVhZG9ubHlfYWRtaW4"
ACCESS_TOKEN_LIFETIME = 1_209_599  # 14 days, as Webex answers
REFRESH_TOKEN_LIFETIME = 7_775_999  # 90 days
# Fields Webex shows only to an administrator of the person's organization.
ADMIN_ONLY = ("invitePending", "loginEnabled")
SERVICE_NS = "http://www.webex.com/schemas/2002/06/service"
XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"
BINDING = "java:com.webex.service.binding."


class WebexAccount(SimulatedService):
    """One Webex organization and its site: people, the integration, tokens, meetings, faults."""

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        *,
        admin_email: str = "admin@acme.example",
        site: str = "acme",
        web_url: str = "https://acme.webex.example",
    ) -> None:
        super().__init__()
        self.client_id = client_id
        self.client_secret = client_secret
        self.site = site
        # Links point at a reserved domain so that nothing a test opens reaches the real Webex.
        self.web_url = web_url
        self.redirect_uris: list[str] = []  # empty: any redirect URI is accepted
        self.people: dict[str, dict[str, Any]] = {}
        self.rooms: dict[str, str] = {}  # person id -> personalMeetingRoomLink
        self.site_users: dict[str, dict[str, str]] = {}  # webExID -> user
        self.meetings: list[dict[str, Any]] = []
        self.site_meetings: list[dict[str, Any]] = []
        self.max_page_size = 1000
        self.access_token_lifetime = ACCESS_TOKEN_LIFETIME
        # Webex may answer a refresh with a new refresh token; the old one then stops working.
        self.rotate_refresh_tokens = False
        self.access_tokens: dict[str, tuple[str, float]] = {}  # token -> (person id, expiry)
        self.refresh_tokens: dict[str, tuple[str, float]] = {}
        self.codes: dict[str, tuple[str, str]] = {}  # code -> (person id, redirect_uri)
        self._pages: dict[str, tuple[list[str], int]] = {}
        self._numbers = itertools.count(1)
        self.admin = self.add_person(admin_email, "Acme Admin", admin=True)
        # The company's credential: the refresh token from the admin's one authorization.
        self.admin_refresh_token = self.grant(self.admin["id"])

    def add_person(
        self,
        email: str,
        name: str = "",
        *,
        admin: bool = False,
        licensed: bool = True,
        login_enabled: bool = True,
        invite_pending: bool = False,
        roles: list[str] | None = None,
    ) -> dict[str, Any]:
        """A person as GET /people/{id} shows them to an administrator (incl. "id"); `roles`
        replaces the full administrator's role that `admin` gives."""
        person_id = _webex_id("PEOPLE", str(uuid.uuid4()))
        first, _, last = name.partition(" ")
        person = {
            "id": person_id,
            "emails": [email],
            "phoneNumbers": [],
            "displayName": name or email,
            "firstName": first,
            "lastName": last,
            "orgId": _webex_id("ORGANIZATION", "acme"),
            "roles": roles if roles is not None else [FULL_ADMIN_ROLE] if admin else [],
            "licenses": [_webex_id("LICENSE", "MC_acme")] if licensed else [],
            "created": "2024-01-02T03:04:05.000Z",
            "lastModified": "2024-01-02T03:04:05.000Z",
            # Presence, not whether they may use Webex: "pending" means never signed in.
            "status": "pending" if invite_pending else "inactive",
            "type": "person",
            "invitePending": invite_pending,
            "loginEnabled": login_enabled,
        }
        self.people[person_id] = person
        room_name = email.partition("@")[0].replace(".", "")
        self.rooms[person_id] = f"{self.web_url}/meet/{room_name}"
        return person

    def add_site_user(
        self, webex_id: str, password: str, email: str, name: str = ""
    ) -> dict[str, str]:
        """A user of the site, signing in to the XML API with webExID and password."""
        first, _, last = name.partition(" ")
        user = {
            "webExId": webex_id,
            "password": password,
            "email": email,
            "firstName": first,
            "lastName": last,
            "room": f"{self.web_url}/meet/{webex_id.partition('@')[0]}",
        }
        self.site_users[webex_id] = user
        return user

    def grant(self, person_id: str) -> str:
        """A refresh token as if the person had authorized the integration."""
        token = secrets.token_urlsafe(32)
        self.refresh_tokens[token] = (person_id, time.time() + REFRESH_TOKEN_LIFETIME)
        return token

    def change_email(self, person_id: str, new_email: str) -> None:
        self.people[person_id]["emails"] = [new_email]

    def by_email(self, email: str) -> dict[str, Any] | None:
        wanted = email.strip().casefold()
        return next((p for p in self.people.values() if p["emails"][0].casefold() == wanted), None)

    def expire_access_tokens(self) -> None:
        """Every access token issued so far answers 401, as after a revocation."""
        self.access_tokens.clear()

    def revoke_refresh_tokens(self) -> None:
        """Every refresh token answers invalid_grant, as after 90 days unused."""
        self.refresh_tokens.clear()

    def _issue(self, person_id: str, refresh_token: str) -> dict[str, Any]:
        access = secrets.token_urlsafe(32)
        self.access_tokens[access] = (person_id, time.time() + self.access_token_lifetime)
        if self.rotate_refresh_tokens:
            self.refresh_tokens.pop(refresh_token, None)
            refresh_token = self.grant(person_id)
        return {
            "access_token": access,
            "expires_in": self.access_token_lifetime,
            "refresh_token": refresh_token,
            "refresh_token_expires_in": REFRESH_TOKEN_LIFETIME,
            "token_type": "Bearer",
        }


def webex_endpoints(url: str) -> dict[str, str]:
    """The `endpoints` overrides that point the registry's Webex adapters at a served simulator."""
    return {"webex_api": f"{url}/v1", "webex_xml": f"{url}/WBXService/XMLService"}


def webex_app(account: WebexAccount) -> Starlette:
    """The simulator's ASGI app for `account`."""

    front = account.front(_fault)

    def caller(request: Request) -> dict[str, Any] | Response:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        held = account.access_tokens.get(token) if scheme.lower() == "bearer" else None
        if held is None or held[1] < time.time() or held[0] not in account.people:
            return _error(
                401,
                "The request requires a valid access token set in the Authorization request "
                "header.",
            )
        return account.people[held[0]]

    def shown(person: dict[str, Any], to: dict[str, Any]) -> dict[str, Any]:
        if _is_admin(to):
            return person
        return {k: v for k, v in person.items() if k not in ADMIN_ONLY}

    async def access_token(request: Request) -> Response:
        form = await request.form()
        if (form.get("client_id"), form.get("client_secret")) != (
            account.client_id,
            account.client_secret,
        ):
            return _oauth_error(401, "invalid_client", "Client authentication failed.")
        grant_type = form.get("grant_type")
        if grant_type == "authorization_code":
            coded = account.codes.pop(str(form.get("code", "")), None)
            if coded is None or coded[1] != form.get("redirect_uri"):
                return _oauth_error(
                    400, "invalid_grant", "The authorization code is invalid, used or expired."
                )
            return JSONResponse(account._issue(coded[0], account.grant(coded[0])))
        if grant_type == "refresh_token":
            refresh = str(form.get("refresh_token", ""))
            held = account.refresh_tokens.get(refresh)
            if held is None or held[1] < time.time():
                return _oauth_error(
                    400,
                    "invalid_grant",
                    "The refresh token provided is expired, revoked, malformed, or invalid.",
                )
            return JSONResponse(account._issue(held[0], refresh))
        return _oauth_error(400, "unsupported_grant_type", "Unsupported grant type.")

    async def authorize_page(request: Request) -> Response:
        query = request.query_params
        refusal = _authorize_refusal(account, query.get("client_id"), query.get("redirect_uri"))
        if refusal is not None:
            return refusal
        if query.get("response_type") != "code":
            return _page_error("The response type must be code.")
        email = query.get("login_hint") or query.get("email") or ""
        return HTMLResponse(_sign_in_page(dict(query), email, error=""))

    async def authorize_answer(request: Request) -> Response:
        form = {k: str(v) for k, v in (await request.form()).items()}
        redirect_uri = form.get("redirect_uri", "")
        refusal = _authorize_refusal(account, form.get("client_id"), redirect_uri)
        if refusal is not None:
            return refusal
        state = form.get("state", "")
        if form.get("action") == "cancel":
            description = "The user denied the request."
            return _redirect(
                redirect_uri, error="access_denied", error_description=description, state=state
            )
        person = account.by_email(form.get("email", ""))
        if person is None:
            error = "No Webex account uses that email address."
            return HTMLResponse(_sign_in_page(form, form.get("email", ""), error), 200)
        code = secrets.token_urlsafe(24)
        account.codes[code] = (person["id"], redirect_uri)
        return _redirect(redirect_uri, code=code, state=state)

    async def me(request: Request) -> Response:
        person = caller(request)
        if isinstance(person, Response):
            return person
        return JSONResponse(shown(person, person))

    async def list_people(request: Request) -> Response:
        asker = caller(request)
        if isinstance(asker, Response):
            return asker
        try:
            size = int(request.query_params.get("max", "100"))
        except ValueError:
            return _error(400, "max must be a number.")
        if not 1 <= size <= account.max_page_size:
            return _error(400, f"max must be between 1 and {account.max_page_size}.")
        email = request.query_params.get("email")
        if email is not None:
            found = account.by_email(email)
            items = [shown(found, asker)] if found else []
            return JSONResponse({"notFoundIds": None, "items": items})
        if not _is_admin(asker):
            return _error(403, "Listing every person requires an administrator.")
        cursor = request.query_params.get("cursor")
        if cursor:
            if cursor not in account._pages:
                return _error(400, "The cursor is invalid or expired.")
            ids, start = account._pages.pop(cursor)
        else:
            # A snapshot, as Webex's cursor walks the list as it was when the walk began.
            ids, start = list(account.people), 0
        chunk = [account.people[i] for i in ids[start : start + size] if i in account.people]
        headers = {}
        if start + size < len(ids):
            token = secrets.token_urlsafe(16)
            account._pages[token] = (ids, start + size)
            following = request.url.replace_query_params(max=size, cursor=token)
            headers["Link"] = f'<{following}>; rel="next"'
        items = [shown(person, asker) for person in chunk]
        return JSONResponse({"items": items}, headers=headers)

    async def get_person(request: Request) -> Response:
        asker = caller(request)
        if isinstance(asker, Response):
            return asker
        person = account.people.get(request.path_params["person"])
        if person is None:
            return _error(404, "Person not found.")
        return JSONResponse(shown(person, asker))

    async def personal_room(request: Request) -> Response:
        asker = caller(request)
        if isinstance(asker, Response):
            return asker
        person = asker
        email = request.query_params.get("userEmail")
        if email is not None and email.casefold() != asker["emails"][0].casefold():
            if not _is_admin(asker):
                return _error(403, "Not permitted to view or change other user's preferences")
            found = account.by_email(email)
            if found is None:
                return _error(404, "User not found.")
            person = found
        link = account.rooms[person["id"]]
        return JSONResponse(
            {
                "topic": f"{person['displayName']}'s Personal Room",
                "hostPin": "4325",
                "personalMeetingRoomLink": link,
                "enabledAutoLock": False,
                "enabledNotifyHost": True,
                "supportCoHost": False,
                "sipAddress": f"{link.rpartition('/')[2]}@acme.webex.example",
                "dialInIpAddress": "192.0.2.10",
                "telephony": {"accessCode": "1234567890", "callInNumbers": []},
            }
        )

    async def create_meeting(request: Request) -> Response:
        asker = caller(request)
        if isinstance(asker, Response):
            return asker
        try:
            body = json.loads(await request.body())
            start, end = _iso(body["start"]), _iso(body["end"])
            title = str(body["title"])
        except (ValueError, KeyError, TypeError):
            return _error(400, "title, start and end are required, start and end in ISO 8601.")
        host = asker
        host_email = body.get("hostEmail")
        if host_email and host_email.casefold() != asker["emails"][0].casefold():
            if not _is_admin(asker):
                return _error(403, "hostEmail requires the meeting:admin_schedule_write scope.")
            found = account.by_email(host_email)
            if found is None:
                return _error(404, f"No user found with email {host_email}.")
            host = found
        if start.tzinfo is not None and start < dt.datetime.now(dt.UTC):
            return _error(400, "The start time cannot be earlier than the current time.")
        if not dt.timedelta(minutes=10) <= end - start <= dt.timedelta(hours=24):
            return _error(400, "A meeting lasts between 10 minutes and 24 hours.")
        number = f"{2_500_000_000 + next(account._numbers)}"
        meeting_id = secrets.token_hex(16)
        meeting = {
            "id": meeting_id,
            "meetingNumber": number,
            "title": title,
            "meetingType": "meetingSeries",
            "state": "active",
            "timezone": body.get("timezone", "UTC"),
            "start": body["start"],
            "end": body["end"],
            "hostUserId": host["id"],
            "hostDisplayName": host["displayName"],
            "hostEmail": host["emails"][0],
            "enabledJoinBeforeHost": bool(body.get("enabledJoinBeforeHost", False)),
            "webLink": f"{account.web_url}/{account.site}/j.php?MTID=m{meeting_id}",
            "sipAddress": f"{number}@acme.webex.example",
            "siteUrl": f"{account.site}.webex.example",
        }
        account.meetings.append(meeting)
        return JSONResponse(meeting)

    async def xml_service(request: Request) -> Response:
        return _xml_answer(account, await request.body())

    return Starlette(
        routes=[
            Route("/v1/access_token", front(access_token), methods=["POST"]),
            Route("/v1/authorize", front(authorize_page, faults=False), methods=["GET"]),
            Route("/v1/authorize", front(authorize_answer, faults=False), methods=["POST"]),
            Route("/v1/people", front(list_people), methods=["GET"]),
            Route("/v1/people/me", front(me), methods=["GET"]),
            Route("/v1/people/{person}", front(get_person), methods=["GET"]),
            Route(
                "/v1/meetingPreferences/personalMeetingRoom",
                front(personal_room),
                methods=["GET"],
            ),
            Route("/v1/meetings", front(create_meeting), methods=["POST"]),
            Route("/WBXService/XMLService", front(xml_service), methods=["POST"]),
        ]
    )


def _authorize_refusal(
    account: WebexAccount, client_id: str | None, redirect_uri: str | None
) -> Response | None:
    if client_id != account.client_id:
        return _page_error("This app is not registered with Webex.")
    if not redirect_uri or (account.redirect_uris and redirect_uri not in account.redirect_uris):
        return _page_error("The redirect URI is not one of this app's.")
    return None


def _sign_in_page(fields: dict[str, str], email: str, error: str) -> str:
    kept = ("client_id", "response_type", "redirect_uri", "scope", "state")
    hidden = "\n".join(
        f'    <input type="hidden" name="{name}" value="{html.escape(fields.get(name, ""))}">'
        for name in kept
    )
    alert = f'  <p role="alert">{html.escape(error)}</p>\n' if error else ""
    scopes = html.escape(fields.get("scope", ""))
    return f"""<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Sign in to Webex</title></head>
<body>
  <h1>Sign in to Webex</h1>
  <p>An app asks for access to your Webex account: {scopes}</p>
{alert}  <form method="post" action="/v1/authorize">
{hidden}
    <label for="email">Email address</label>
    <input id="email" name="email" type="email" value="{html.escape(email)}">
    <button type="submit" name="action" value="accept">Accept</button>
    <button type="submit" name="action" value="cancel">Cancel</button>
  </form>
</body>
</html>
"""


def _page_error(message: str) -> Response:
    page = f"<!doctype html><title>Webex</title><p role='alert'>{html.escape(message)}</p>"
    return HTMLResponse(page, 400)


def _redirect(redirect_uri: str, **params: str) -> Response:
    parts = urlsplit(redirect_uri)
    query = urlencode([*parse_qsl(parts.query), *params.items()])
    return RedirectResponse(urlunsplit(parts._replace(query=query)), 302)


def _xml_answer(account: WebexAccount, document: bytes) -> Response:
    try:
        message = ET.fromstring(document)  # noqa: S314 (the adapter under test wrote it)
    except ET.ParseError:
        return _xml_failure("XML parse error", "999999")
    context = message.find("header/securityContext")
    content = message.find("body/bodyContent")
    if context is None or content is None:
        return _xml_failure("Invalid request: no securityContext or bodyContent", "999999")
    if context.findtext("siteName") != account.site:
        return _xml_failure("Site not found", "000000")
    kind = content.get(XSI_TYPE, "").removeprefix(BINDING)
    if kind == "ep.GetAPIVersion":
        return _xml_success(
            "ep:getAPIVersionResponse",
            "<ep:apiVersion>WebEx XML API V11.0.0</ep:apiVersion>"
            "<ep:trainReleaseVersion>T33L</ep:trainReleaseVersion>",
        )
    user = account.site_users.get(context.findtext("webExID") or "")
    if user is None or user["password"] != context.findtext("password"):
        return _xml_failure("Incorrect user or password", "030002")
    if kind == "user.GetUser":
        if content.findtext("webExId") != user["webExId"]:
            return _xml_failure("Access denied, additional privileges are required", "000001")
        return _xml_success("use:getUserResponse", _get_user_response(user))
    if kind == "meeting.CreateMeeting":
        return _create_site_meeting(account, user, content)
    return _xml_failure(f"Unsupported request type {kind}", "999999")


def _get_user_response(user: dict[str, str]) -> str:
    fields = {k: escape(v) for k, v in user.items()}
    return (
        f"<use:firstName>{fields['firstName']}</use:firstName>"
        f"<use:lastName>{fields['lastName']}</use:lastName>"
        f"<use:webExId>{fields['webExId']}</use:webExId>"
        f"<use:email>{fields['email']}</use:email>"
        "<use:password>******</use:password>"
        "<use:myWebEx><use:personalMeetingRoom>true</use:personalMeetingRoom></use:myWebEx>"
        "<use:personalMeetingRoom>"
        f"<use:title>{fields['firstName']}'s Personal Room</use:title>"
        f"<use:personalMeetingRoomURL>{fields['room']}</use:personalMeetingRoomURL>"
        "</use:personalMeetingRoom>"
        "<use:active>ACTIVATED</use:active>"
    )


def _create_site_meeting(
    account: WebexAccount, user: dict[str, str], content: ET.Element
) -> Response:
    name = content.findtext("metaData/confName")
    start = content.findtext("schedule/startDate") or ""
    try:
        dt.datetime.strptime(start, "%m/%d/%Y %H:%M:%S")
        duration = int(content.findtext("schedule/duration") or "60")
    except ValueError:
        return _xml_failure("Invalid startDate or duration", "060016")
    if not name:
        return _xml_failure("confName is required", "060016")
    key = str(1_700_000_000 + next(account._numbers))
    meeting: dict[str, Any] = {
        "meetingkey": key,
        "host": user["webExId"],
        "confName": name,
        "startDate": start,
        "duration": duration,
        "timeZoneID": content.findtext("schedule/timeZoneID"),
        "openTime": content.findtext("schedule/openTime"),
        "joinTeleconfBeforeHost": content.findtext("schedule/joinTeleconfBeforeHost"),
        "host_url": f"{account.web_url}/{account.site}/j.php?MTID=m{secrets.token_hex(16)}",
        "attendee_url": f"{account.web_url}/{account.site}/j.php?MTID=m{secrets.token_hex(16)}",
    }
    account.site_meetings.append(meeting)
    return _xml_success(
        "meet:createMeetingResponse",
        f"<meet:meetingkey>{key}</meet:meetingkey>"
        "<meet:iCalendarURL>"
        f"<serv:host>{escape(meeting['host_url'])}</serv:host>"
        f"<serv:attendee>{escape(meeting['attendee_url'])}</serv:attendee>"
        "</meet:iCalendarURL>"
        f"<meet:guestToken>{secrets.token_hex(16)}</meet:guestToken>",
    )


XML_ROOT = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    f'<serv:message xmlns:serv="{SERVICE_NS}" xmlns:com="http://www.webex.com/schemas/2002/06/'
    f'common" xmlns:use="{SERVICE_NS}/user" xmlns:meet="{SERVICE_NS}/meeting"'
    f' xmlns:ep="{SERVICE_NS}/ep">'
)


def _xml_success(kind: str, content: str) -> Response:
    document = (
        f"{XML_ROOT}<serv:header><serv:response><serv:result>SUCCESS</serv:result>"
        "<serv:gsbStatus>PRIMARY</serv:gsbStatus></serv:response></serv:header>"
        f'<serv:body><serv:bodyContent xsi:type="{kind}" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        f"{content}</serv:bodyContent></serv:body></serv:message>"
    )
    return Response(document, media_type="text/xml")


def _xml_failure(reason: str, exception_id: str) -> Response:
    # The XML API answers a refusal with HTTP 200 and FAILURE in the document.
    document = (
        f"{XML_ROOT}<serv:header><serv:response><serv:result>FAILURE</serv:result>"
        f"<serv:reason>{escape(reason)}</serv:reason><serv:gsbStatus>PRIMARY</serv:gsbStatus>"
        f"<serv:exceptionID>{exception_id}</serv:exceptionID></serv:response></serv:header>"
        "<serv:body><serv:bodyContent/></serv:body></serv:message>"
    )
    return Response(document, media_type="text/xml")


def _is_admin(person: dict[str, Any]) -> bool:
    return FULL_ADMIN_ROLE in person["roles"]


def _webex_id(kind: str, value: str) -> str:
    return base64.b64encode(f"ciscospark://us/{kind}/{value}".encode()).decode().rstrip("=")


def _iso(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def _body(message: str) -> dict[str, Any]:
    return {
        "message": message,
        "errors": [{"description": message}],
        "trackingId": f"ROUTER_{secrets.token_hex(8).upper()}",
    }


def _error(status: int, message: str) -> Response:
    return JSONResponse(_body(message), status_code=status)


def _oauth_error(status: int, error: str, description: str) -> Response:
    return JSONResponse(
        {"error": error, "error_description": description, **_body(description)}, status
    )


def _fault(fault: Fault, path: str) -> Response:
    status, headers = fault.status, fault.headers()
    message = "Too many requests." if status == 429 else "Server error."
    return JSONResponse(_body(message), status, headers=headers)
