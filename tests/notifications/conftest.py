"""Notices for tests, and a reader for the live stream that runs the app in-process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.types import Message

from portal.accounts.models import User
from portal.db import Database
from portal.notifications.models import Notification
from portal.notifications.services import notify
from tests.conftest import PortalClient


async def make_notice(
    db: Database,
    recipient: User,
    text: str = "Ada invites you to meet now",
    *,
    actor: User | None = None,
    url: str = "/people",
) -> Notification:
    async with db.session(company_id=recipient.company_id, write=True) as session:
        notice = await notify(
            session, recipient=recipient, actor=actor, kind="test", text=text, url=url
        )
        await session.commit()
        return notice


@pytest.fixture
async def live_app(app: Starlette) -> AsyncIterator[Starlette]:
    """The app with its lifespan running, as under a server: the broadcaster is started."""
    async with app.router.lifespan_context(app):
        yield app


@dataclass(frozen=True)
class ServerSentEvent:
    name: str  # "" for a comment (a heartbeat)
    data: str


class LiveStream:
    """One GET of /notifications/stream, run in-process, read event by event as it arrives.

    httpx's ASGI transport waits for the whole body, which a stream never finishes; so this
    speaks ASGI to the app itself, with the browser's cookies."""

    def __init__(self, app: Starlette, client: PortalClient) -> None:
        self.app = app
        self.cookie = "; ".join(f"{k}={v}" for k, v in client.http.cookies.items())
        self.status: int | None = None
        self.ended = asyncio.Event()
        self._buffer = ""
        self._arrived = asyncio.Condition()
        self._disconnect = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> LiveStream:
        self._task = asyncio.create_task(self.app(self._scope(), self._receive, self._send))
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.disconnect()

    async def disconnect(self) -> None:
        """The browser goes away; the app must finish the response promptly."""
        self._disconnect.set()
        assert self._task is not None
        await asyncio.wait_for(self._task, 2)

    async def next(self, within: float = 2.0) -> ServerSentEvent:
        """The next event or comment; TimeoutError if none comes `within` seconds."""
        async with asyncio.timeout(within), self._arrived:
            await self._arrived.wait_for(lambda: "\n\n" in self._buffer or self.ended.is_set())
            if "\n\n" not in self._buffer:
                raise EOFError("the stream ended")
            block, self._buffer = self._buffer.split("\n\n", 1)
        lines = block.split("\n")
        if lines[0].startswith(":"):
            return ServerSentEvent("", lines[0])
        name = lines[0].removeprefix("event: ")
        return ServerSentEvent(name, "\n".join(line.removeprefix("data: ") for line in lines[1:]))

    async def next_named(self, name: str, within: float = 2.0) -> ServerSentEvent:
        event = await self.next(within)
        assert event.name == name, event
        return event

    def _scope(self) -> dict[str, Any]:
        return {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": "/notifications/stream",
            "raw_path": b"/notifications/stream",
            "query_string": b"",
            "root_path": "",
            "headers": [(b"host", b"testserver"), (b"cookie", self.cookie.encode())],
            "client": ("127.0.0.1", 50000),
            "server": ("testserver", 80),
        }

    async def _receive(self) -> Message:
        await self._disconnect.wait()
        return {"type": "http.disconnect"}

    async def _send(self, message: Message) -> None:
        async with self._arrived:
            if message["type"] == "http.response.start":
                self.status = message["status"]
            elif message["type"] == "http.response.body":
                self._buffer += message.get("body", b"").decode()
                if not message.get("more_body", False):
                    self.ended.set()
            self._arrived.notify_all()
