"""CSRF protection and security headers, as ASGI middleware that wraps every route."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import secrets
from collections.abc import AsyncIterator
from urllib.parse import parse_qsl, urlsplit

from starlette.datastructures import FormData, Headers
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from portal.forms import SEARCH_PARAMETERS
from portal.htmx import is_htmx

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
SESSION_ID = "sid"
MAX_BODY = 4 * 1024 * 1024
# What one form may hold (Starlette's own defaults, named so that a refusal can say them);
# files are not fields: an upload may be larger, up to MAX_BODY.
MAX_FIELD = 1024 * 1024
MAX_FIELDS = 1000
MAX_FILES = 10
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
NUL_REFUSED = (
    "A field holds a NUL character, which no text in the portal may hold. Remove it and try again."
)
ADDRESS_NUL_REFUSED = "The address holds a NUL character (%00), which the portal does not accept."

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)


class InputRefused(Exception):
    """The request cannot be read as it was sent: `status` and `message` are the answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def csrf_token(secret: str, session: dict[str, object]) -> str:
    """The token for this session's forms: an HMAC of the session's random id."""
    sid = session.get(SESSION_ID)
    if not isinstance(sid, str):
        sid = secrets.token_urlsafe(18)
        session[SESSION_ID] = sid
    return hmac.new(secret.encode(), sid.encode(), hashlib.sha256).hexdigest()


class CSRFMiddleware:
    """Refuses unsafe requests from other sites or without this session's token."""

    def __init__(self, app: ASGIApp, *, secret: str, base_url: str) -> None:
        self.app = app
        self.secret = secret
        parts = urlsplit(base_url)
        self.origin = f"{parts.scheme}://{parts.netloc}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if _nul_in_address(scope):
            await _refuse(400, ADDRESS_NUL_REFUSED, scope, receive, send)
            return
        if scope["method"] in SAFE_METHODS:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        problem = self._cross_site(headers)
        if problem is not None:
            await _refuse(403, problem, scope, receive, send)
            return
        try:
            body = await _read_body(receive)
            # Every form is read here, within the limits and free of NUL, so that no view
            # meets one it cannot read (Starlette's own 400 would be raised out here, a 500).
            form_token = await _form_token(scope, headers, body)
        except InputRefused as refusal:
            await _refuse(refusal.status, refusal.message, scope, receive, send)
            return
        sent = headers.get(CSRF_HEADER)
        if not self._token_ok(scope, form_token if sent is None else sent):
            problem = (
                "This form has expired or did not come from the portal. "
                "Go back, reload the page and try again."
            )
            await _refuse(403, problem, scope, receive, send)
            return
        await self.app(scope, _replay(body), send)

    def _cross_site(self, headers: Headers) -> str | None:
        site = headers.get("sec-fetch-site")
        if site is not None and site not in {"same-origin", "none"}:
            return "Requests from other sites are refused."
        origin = headers.get("origin")
        if origin is not None and origin not in {self.origin, _own_origin(headers, self.origin)}:
            return "Requests from other sites are refused."
        return None

    def _token_ok(self, scope: Scope, sent: str | None) -> bool:
        session = scope.get("session")
        if not isinstance(session, dict) or not isinstance(session.get(SESSION_ID), str):
            return False
        expected = csrf_token(self.secret, session)
        return sent is not None and hmac.compare_digest(sent, expected)


def _nul_in_address(scope: Scope) -> bool:
    """A NUL in the path or in a query parameter: no id, token, page or address holds one
    (search text drops it instead, see SEARCH_PARAMETERS)."""
    if "\x00" in scope.get("path", ""):
        return True
    query: bytes = scope.get("query_string", b"")
    if b"\x00" not in query and b"%00" not in query:
        return False
    return any(
        "\x00" in name or ("\x00" in value and name not in SEARCH_PARAMETERS)
        for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True)
    )


@contextlib.asynccontextmanager
async def open_form(request: Request) -> AsyncIterator[FormData]:
    """The request's form within the portal's limits, no text in it holding a NUL;
    InputRefused (400 or 413, with a message for people) when it cannot be read so."""
    try:
        form = await request.form(
            max_files=MAX_FILES, max_fields=MAX_FIELDS, max_part_size=MAX_FIELD
        )
    except MultiPartException as error:
        raise _form_refusal(error.message) from None
    except HTTPException as error:  # what Starlette makes of a MultiPartException in an app
        raise _form_refusal(error.detail) from None
    try:
        for name, value in form.multi_items():
            if "\x00" in name or (isinstance(value, str) and "\x00" in value):
                raise InputRefused(400, NUL_REFUSED)
        yield form
    finally:
        await form.close()


def _form_refusal(detail: str) -> InputRefused:
    # Starlette says which limit was passed only in its message.
    if detail.startswith("Too many files"):
        return InputRefused(413, f"This form sends too many files ({MAX_FILES} at most).")
    if detail.startswith("Too many fields"):
        return InputRefused(413, f"This form has too many fields ({MAX_FIELDS:,} at most).")
    if "exceeded maximum size" in detail:
        return InputRefused(
            413, f"A field of this form is too long ({MAX_FIELD // (1024 * 1024)} MB at most)."
        )
    return InputRefused(
        400, f"This form could not be read ({detail.rstrip('.')}). Reload the page and try again."
    )


async def _form_token(scope: Scope, headers: Headers, body: bytes) -> str | None:
    """The token sent in a form's own field, after reading the whole form (see open_form)."""
    if not headers.get("content-type", "").lower().startswith(FORM_TYPES):
        return None
    async with open_form(Request(scope, _replay(body))) as form:
        value = form.get(CSRF_FIELD)
        return value if isinstance(value, str) else None


def _own_origin(headers: Headers, fallback: str) -> str:
    host = headers.get("host")
    return f"{urlsplit(fallback).scheme}://{host}" if host else fallback


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            raise InputRefused(413, "The upload is too large (4 MB at most).")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


async def _refuse(status: int, message: str, scope: Scope, receive: Receive, send: Send) -> None:
    """The error page (the message alone for htmx), as the app's own error pages answer."""
    request = Request(scope, receive)
    templates = getattr(getattr(scope.get("app"), "state", None), "templates", None)
    response: Response
    if templates is None or is_htmx(request):
        response = PlainTextResponse(message, status_code=status)
    else:
        context = {"status": status, "message": message}
        response = templates.TemplateResponse(
            request, "errors/error.html", context, status_code=status
        )
    await response(scope, receive, send)


class SecurityHeadersMiddleware:
    """Adds CSP, framing, referrer and sniffing headers to every response."""

    def __init__(self, app: ASGIApp, *, https: bool) -> None:
        self.app = app
        self.headers = [
            (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
            (b"x-frame-options", b"DENY"),
            (b"referrer-policy", b"same-origin"),
            (b"x-content-type-options", b"nosniff"),
        ]
        if https:
            self.headers.append((b"strict-transport-security", b"max-age=31536000"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                # A response that sets its own policy (the sandboxed email preview) keeps it.
                present = {name.lower() for name, _ in headers}
                message["headers"] = headers + [h for h in self.headers if h[0] not in present]
            await send(message)

        await self.app(scope, receive, send_with_headers)
