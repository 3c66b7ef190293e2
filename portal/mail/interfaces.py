"""What the outbox needs from a mail transport."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from email.message import Message
from typing import Protocol


@dataclass(frozen=True)
class SendResult:
    accepted: bool
    # A 5xx reply: sending again will not help. Anything else not accepted is retried.
    permanent: bool = False
    error: str = ""


NOT_ATTEMPTED = SendResult(False, error="not attempted")

# Told of each message's result as it comes: (its index in the batch, the result).
OnResult = Callable[[int, SendResult], Awaitable[None]]
# Whether the message at this index may still go: asked as it starts and again just before the
# server is asked to take it (the final "." of DATA).
MaySend = Callable[[int], bool]


class MailSender(Protocol):
    async def send_batch(
        self,
        messages: Sequence[Message],
        *,
        on_result: OnResult | None = None,
        stop: asyncio.Event | None = None,
        may_send: MaySend | None = None,
    ) -> list[SendResult]:
        """Send each message; one result per message, in the same order.

        `on_result` is awaited after each message, before its connection takes the next one (so
        a result is recorded before more is sent). Once `stop` is set no new message is
        started; those never started are NOT_ATTEMPTED and `on_result` never hears of them.
        A message `may_send` refuses is NOT_ATTEMPTED too: refused before its final ".", its
        connection is dropped, so that the server keeps nothing of it.
        """
        ...

    async def close(self) -> None:
        """Let go of any connection kept open between batches."""
        ...
