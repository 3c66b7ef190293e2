"""Webex's older site login: each person's webExID and password, through the Webex Meetings XML
API (the XML API reference, developer.cisco.com).

One POST of a `serv:message` to https://{site}.webex.com/WBXService/XMLService per request,
signed in by the `securityContext` (siteName, webExID, password); the answer's `serv:result` is
SUCCESS or FAILURE with an `exceptionID`.
"""

from __future__ import annotations

import datetime as dt
import re
import xml.etree.ElementTree as ET
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx

from portal.conferencing.interfaces import (
    BadCredentials,
    ConferencingError,
    CreatedMeeting,
    MeetingRequest,
    PersonalAccount,
    ProviderUnavailable,
)
from portal.conferencing.providers import base
from portal.conferencing.providers.base import RetryPolicy

WEBEX_XML_URL = "https://{site}.webex.com/WBXService/XMLService"
SERVICE_NS = "http://www.webex.com/schemas/2002/06/service"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
NAMESPACES = {
    "serv": SERVICE_NS,
    "use": f"{SERVICE_NS}/user",
    "meet": f"{SERVICE_NS}/meeting",
}
# A site name is the first label of https://{site}.webex.com.
SITE_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
# The XML API's "Incorrect user or password".
AUTHENTICATION_FAILED = {"030002"}
# Webex numbers its time zones; 20 is "GMT+00:00, Greenwich (Casablanca)", so a start sent in UTC
# is read as UTC.
GMT_TIME_ZONE_ID = "20"
# How long before the start attendees may join when they may join first: 900, as in Cisco's
# own CreateMeeting sample.
OPEN_TIME_SECONDS = 900

BAD_SITE = (
    "{site!r} is not a Webex site name: enter the first part of the site's address, letters, "
    "digits and hyphens only (acme for acme.webex.com)."
)
UNKNOWN_SITE = (
    "No Webex site named {site}: check the site name, the first part of the site's address "
    "(acme for acme.webex.com)."
)
REFUSED_SIGN_IN = "Webex refused this username and password: check them and try again."
NOT_XML = "Webex answered with something other than the XML service's answer: try again later."


class XmlFailure(ConferencingError):
    """The XML API answered FAILURE: `exception_id` says why."""

    def __init__(self, reason: str, exception_id: str) -> None:
        super().__init__(f"Webex refused the request: {reason.rstrip('.')}.")
        self.exception_id = exception_id


class WebexPasswordProvider:
    """A Webex site whose people sign in with their own webExID and password."""

    def __init__(
        self,
        site: str,
        *,
        xml_url: str = "",
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._site = site.strip()
        self._xml_url = xml_url or WEBEX_XML_URL.format(site=self._site)
        self._timeout = timeout
        self._retry = retry or base.DEFAULT_RETRY
        self._client = httpx.AsyncClient(timeout=timeout, follow_redirects=False)

    async def verify(self) -> None:
        """Raise unless the site name is one and the site's XML service answers."""
        self._check_site()
        message, _ = _xml_request(self._site, "ep.GetAPIVersion")
        try:
            await self._call(message)
        except XmlFailure as failure:
            # GetAPIVersion needs no user: a FAILURE can only be the site.
            raise BadCredentials(UNKNOWN_SITE.format(site=self._site)) from failure

    async def sign_in(self, username: str, password: str) -> PersonalAccount:
        """The person's Webex account (BadCredentials: Webex refuses the username or password)."""
        webex_id = self._signing_in(username, password)
        message, content = _xml_request(self._site, "user.GetUser", webex_id, password)
        _text(content, "webExId", webex_id)
        user = await self._signed_in(message)
        first, last = _field(user, "use:firstName"), _field(user, "use:lastName")
        return PersonalAccount(
            user_id=_field(user, "use:webExId") or webex_id,
            email=_field(user, "use:email"),
            name=f"{first} {last}".strip(),
            room_url=_field(user, "use:personalMeetingRoom/use:personalMeetingRoomURL"),
        )

    async def start_meeting(
        self, username: str, password: str, request: MeetingRequest
    ) -> CreatedMeeting:
        """A meeting hosted by the person, with its attendees' and its host's links."""
        webex_id = self._signing_in(username, password)
        message, content = _xml_request(self._site, "meeting.CreateMeeting", webex_id, password)
        _text(ET.SubElement(content, "metaData"), "confName", request.topic)
        # The schema is a sequence: the elements go in the order Cisco's samples use.
        schedule = ET.SubElement(content, "schedule")
        _text(schedule, "startDate", _xml_time(request.start, request.time_zone))
        jbh = request.join_before_host
        _text(schedule, "openTime", str(OPEN_TIME_SECONDS if jbh else 0))
        _text(schedule, "joinTeleconfBeforeHost", "TRUE" if jbh else "FALSE")
        _text(schedule, "duration", str(request.duration_minutes))
        _text(schedule, "timeZoneID", GMT_TIME_ZONE_ID)
        created = await self._signed_in(message, repeatable=False)
        key = _field(created, "meet:meetingkey")
        join_url = _field(created, "meet:iCalendarURL/serv:attendee")
        start_url = _field(created, "meet:iCalendarURL/serv:host")
        if not (key and join_url and start_url):
            raise base.undocumented("Webex")
        return CreatedMeeting(id=key, join_url=join_url, start_url=start_url)

    async def aclose(self) -> None:
        """Let go of the HTTP connections."""
        await self._client.aclose()

    def _check_site(self) -> None:
        if not SITE_NAME.fullmatch(self._site):
            raise BadCredentials(BAD_SITE.format(site=self._site))

    def _signing_in(self, username: str, password: str) -> str:
        self._check_site()
        webex_id = username.strip()
        if not (webex_id and password):
            raise BadCredentials(REFUSED_SIGN_IN)
        return webex_id

    async def _signed_in(self, message: ET.Element, *, repeatable: bool = True) -> ET.Element:
        try:
            return await self._call(message, repeatable=repeatable)
        except XmlFailure as failure:
            if failure.exception_id in AUTHENTICATION_FAILED:
                raise BadCredentials(REFUSED_SIGN_IN) from failure
            raise

    async def _call(self, message: ET.Element, *, repeatable: bool = True) -> ET.Element:
        """The answer's bodyContent, retried while Webex is busy or unreachable (a creation
        only when Webex cannot have acted on it)."""
        document = ET.tostring(message, encoding="UTF-8", xml_declaration=True)
        return await base.retrying(lambda: self._send(document), self._retry, repeatable=repeatable)

    async def _send(self, document: bytes) -> ET.Element:
        try:
            response = await self._client.post(
                self._xml_url, content=document, headers={"Content-Type": "application/xml"}
            )
        except httpx.TransportError as error:
            raise base.unreachable("Webex", self._timeout, error) from error
        status = response.status_code
        if status == 429:
            raise base.rate_limited(response, "Webex")
        if status >= 500:
            raise ProviderUnavailable(base.server_error(response, "Webex"))
        if status == 404:
            raise BadCredentials(UNKNOWN_SITE.format(site=self._site))
        if not response.is_success:
            raise ConferencingError(
                f"Webex's XML service refused the request ({status}): check the site name."
            )
        return _body_content(response.content)


def _xml_request(
    site: str, request_type: str, webex_id: str = "", password: str = ""
) -> tuple[ET.Element, ET.Element]:
    """A `serv:message` for `request_type` (e.g. "user.GetUser") and its bodyContent to fill."""
    message = ET.Element("serv:message", {"xmlns:serv": SERVICE_NS, "xmlns:xsi": XSI_NS})
    context = ET.SubElement(ET.SubElement(message, "header"), "securityContext")
    _text(context, "siteName", site)
    if webex_id:
        _text(context, "webExID", webex_id)
        _text(context, "password", password)
    body = ET.SubElement(message, "body")
    kind = f"java:com.webex.service.binding.{request_type}"
    return message, ET.SubElement(body, "bodyContent", {"xsi:type": kind})


def _text(parent: ET.Element, tag: str, text: str) -> None:
    ET.SubElement(parent, tag).text = text  # ElementTree escapes it


def _field(content: ET.Element, path: str) -> str:
    return (content.findtext(path, default="", namespaces=NAMESPACES) or "").strip()


def _body_content(document: bytes) -> ET.Element:
    """The bodyContent of a SUCCESS; XmlFailure for a FAILURE."""
    # Webex's answers have no DTD; refusing one leaves no entity for expat to expand.
    if b"<!DOCTYPE" in document.upper():
        raise ProviderUnavailable(NOT_XML)
    try:
        root = ET.fromstring(document)  # noqa: S314 (no DTD, see above)
    except ET.ParseError as error:
        raise ProviderUnavailable(NOT_XML) from error
    response = root.find("serv:header/serv:response", NAMESPACES)
    if response is None:
        raise ProviderUnavailable(NOT_XML)
    result = _field(response, "serv:result")
    content = root.find("serv:body/serv:bodyContent", NAMESPACES)
    if result == "FAILURE":
        reason = _field(response, "serv:reason") or "no reason given"
        raise XmlFailure(reason, _field(response, "serv:exceptionID"))
    if result != "SUCCESS" or content is None:
        raise ProviderUnavailable(NOT_XML)
    return content


def _xml_time(start: dt.datetime | None, time_zone: str) -> str:
    """The XML API's MM/DD/YYYY HH:MM:SS, in UTC (see GMT_TIME_ZONE_ID); None is now."""
    when = start or dt.datetime.now(dt.UTC)
    if when.tzinfo is None:
        when = when.replace(tzinfo=_zone(time_zone))
    return when.astimezone(dt.UTC).strftime("%m/%d/%Y %H:%M:%S")


def _zone(name: str) -> dt.tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return dt.UTC
