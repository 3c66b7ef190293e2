"""The web server's event loop (portal.event_loop): what uvicorn runs the portal on."""

from __future__ import annotations

import asyncio
import socket

import uvicorn

from portal.event_loop import UVICORN_LOOP, ServerLoop


def test_uvicorn_runs_each_worker_on_the_portals_loop() -> None:
    factory = uvicorn.Config("portal.asgi:app", loop=UVICORN_LOOP).get_loop_factory()
    assert factory is not None
    loop = factory()
    try:
        assert isinstance(loop, ServerLoop)
    finally:
        loop.close()


def test_connections_waiting_at_once_are_all_served_without_nagles_delay() -> None:
    # As uvicorn makes the socket it shares between worker processes: protocol number 0, on
    # which asyncio leaves Nagle's algorithm on.
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    accepted: list[asyncio.BaseTransport] = []
    nagle_off: list[int] = []

    async def serve(waiting: int) -> None:
        all_in = asyncio.Event()

        class Accept(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                accepted.append(transport)
                sock = transport.get_extra_info("socket")
                nagle_off.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
                if len(accepted) == waiting:
                    all_in.set()

        server = await asyncio.get_running_loop().create_server(Accept, sock=listener)
        async with server, asyncio.timeout(10):
            await all_in.wait()
            for transport in accepted:
                transport.close()
            await asyncio.sleep(0)

    clients = [socket.create_connection(listener.getsockname()) for _ in range(5)]
    try:
        with asyncio.Runner(loop_factory=ServerLoop) as runner:
            runner.run(serve(len(clients)))
    finally:
        for client in clients:
            client.close()
    assert len(nagle_off) == 5
    assert all(nagle_off)
