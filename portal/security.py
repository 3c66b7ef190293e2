"""CSRF protection and security headers, as ASGI middleware that wraps every route."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
SESSION_ID = "sid"
MAX_BODY = 4 * 1024 * 1024

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)


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
        if scope["type"] != "http" or scope["method"] in SAFE_METHODS:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        problem = self._cross_site(headers)
        body = b""
        if problem is None:
            try:
                body = await _read_body(receive)
            except _BodyTooLarge:
                await _refuse(413, "The upload is too large (4 MB at most).", scope, receive, send)
                return
            if not await self._token_ok(scope, headers, body):
                problem = (
                    "This form has expired or did not come from the portal. "
                    "Go back, reload the page and try again."
                )
        if problem is not None:
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

    async def _token_ok(self, scope: Scope, headers: Headers, body: bytes) -> bool:
        session = scope.get("session")
        if not isinstance(session, dict) or not isinstance(session.get(SESSION_ID), str):
            return False
        expected = csrf_token(self.secret, session)
        sent = headers.get(CSRF_HEADER)
        if sent is None and headers.get("content-type", "").startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data")
        ):
            async with Request(scope, _replay(body)).form() as form:
                value = form.get(CSRF_FIELD)
                sent = value if isinstance(value, str) else None
        return sent is not None and hmac.compare_digest(sent, expected)


def _own_origin(headers: Headers, fallback: str) -> str:
    host = headers.get("host")
    return f"{urlsplit(fallback).scheme}://{host}" if host else fallback


class _BodyTooLarge(Exception):
    pass


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            raise _BodyTooLarge
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
    response: Response = PlainTextResponse(message, status_code=status)
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
