"""What every provider simulator does alike: record each request, wait `delay`, and play the
faults a test asked for with `fail_next` before the endpoint answers."""

from __future__ import annotations

import asyncio
import json
import threading
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response

Handler = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True)
class SentRequest:
    """One request as the simulator received it, for tests that check what was sent."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, str]:
        return dict(parse_qsl(self.body.decode()))

    def xml(self) -> ET.Element:
        return ET.fromstring(self.body)  # noqa: S314 (the adapter under test wrote it)


@dataclass(frozen=True)
class Fault:
    """A failed answer to play: `status`, with Retry-After when `retry_after` is set."""

    status: int
    retry_after: float | None
    path: str = ""  # "": whichever request comes next; else the next to this path

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)} if self.retry_after is not None else {}


class SimulatedService:
    """The requests a simulator received and the faults it is to play next."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []
        self.sent: list[SentRequest] = []
        self.delay = 0.0  # seconds before every answer
        self._faults: list[Fault] = []
        self._lock = threading.Lock()

    def fail_next(
        self, status: int, count: int = 1, retry_after: float | None = None, *, path: str = ""
    ) -> None:
        """Answer the next `count` requests (token requests included; only those to `path`, if
        given) with `status`."""
        with self._lock:
            self._faults.extend([Fault(status, retry_after, path)] * count)

    def count(self, method: str, path: str) -> int:
        return self.requests.count((method, path))

    def _fault_for(self, fault: Fault, path: str) -> bool:
        """Whether `fault` is played on a request to `path`."""
        return fault.path in ("", path)

    def _take_fault(self, path: str) -> Fault | None:
        with self._lock:
            for index, fault in enumerate(self._faults):
                if self._fault_for(fault, path):
                    return self._faults.pop(index)
            return None

    def front(self, answer_fault: Callable[[Fault, str], Response]) -> Callable[..., Handler]:
        """A wrapper for the simulator's endpoints that records each request, then (unless
        `faults=False`) waits `delay` and answers the next fault with `answer_fault(fault,
        path)` instead of the endpoint."""

        def wrap(handler: Handler, *, faults: bool = True) -> Handler:
            async def endpoint(request: Request) -> Response:
                body = await request.body()
                path = request.url.path
                self.requests.append((request.method, path))
                headers = {k.lower(): v for k, v in request.headers.items()}
                query = dict(request.query_params)
                self.sent.append(SentRequest(request.method, path, query, headers, body))
                if faults:
                    if self.delay:
                        await asyncio.sleep(self.delay)
                    fault = self._take_fault(path)
                    if fault is not None:
                        return answer_fault(fault, path)
                return await handler(request)

            return endpoint

        return wrap
