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


# Told of each message's result as it comes: (its index in the batch, the result).
OnResult = Callable[[int, SendResult], Awaitable[None]]


class MailSender(Protocol):
    async def send_batch(
        self,
        messages: Sequence[Message],
        *,
        on_result: OnResult | None = None,
        stop: asyncio.Event | None = None,
    ) -> list[SendResult]:
        """Send each message; one result per message, in the same order.

        `on_result` is awaited after each message, before its connection takes the next one (so
        a result is recorded before more is sent). Once `stop` is set no new message is
        started; those never started are "not attempted" and `on_result` never hears of them.
        """
        ...

    async def close(self) -> None:
        """Let go of any connection kept open between batches."""
        ...
