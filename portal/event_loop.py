"""The web server's event loop: asyncio's own, with Nagle's algorithm off on every connection.

uvicorn picks uvloop when it is installed, and uvloop serves the requests that are ready at once
in an order that leaves a few of them waiting for many rounds. A people search among 100,000
people at 50 connections measured p50 57 ms and p99 456 ms on uvloop, against p99 100 ms at the
same rate on asyncio's loop, which serves them in turn (bench/pages.py; a bare endpoint that
computes for 2 ms does the same). The portal's hot pages read on the loop itself
(db.CompanyReader), so each request holds the loop for its whole time, which is what uvloop
serves unfairly.

asyncio turns Nagle's algorithm off only on sockets that say they are TCP's, and the listening
socket uvicorn shares between worker processes does not (its protocol number is 0): each
response's body then waited for the client's delayed acknowledgement of its headers, 40 ms.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any


class ServerLoop(asyncio.SelectorEventLoop):
    """The loop `portal serve` runs uvicorn with (UVICORN_LOOP)."""

    def _make_socket_transport(
        self, sock: socket.socket, protocol: Any, waiter: Any = None, **kwargs: Any
    ) -> Any:
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return super()._make_socket_transport(sock, protocol, waiter, **kwargs)  # type: ignore[misc]

    def _accept_connection(self, *args: Any, **kwargs: Any) -> None:
        # asyncio accepts as many waiting connections as the backlog allows, so the worker that
        # wakes first takes a whole burst and the others none: with 50 connections opened at
        # once, one worker served them all while the other idled. One at a time, the workers
        # woken by the same readiness share them, as they do under uvloop.
        protocol_factory, sock, sslcontext, server, _backlog, *rest = args
        super()._accept_connection(  # type: ignore[misc]
            protocol_factory, sock, sslcontext, server, 1, *rest, **kwargs
        )


# uvicorn's --loop for it: an import string, which uvicorn calls for each worker's loop.
UVICORN_LOOP = f"{__name__}:{ServerLoop.__name__}"
