"""What the outbox needs from a mail transport."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from email.message import Message
from typing import Protocol


@dataclass(frozen=True)
class SendResult:
    accepted: bool
    # A 5xx reply: sending again will not help. Anything else not accepted is retried.
    permanent: bool = False
    error: str = ""


class MailSender(Protocol):
    async def send_batch(self, messages: Sequence[Message]) -> list[SendResult]:
        """Send each message; one result per message, in the same order."""
        ...

    async def close(self) -> None:
        """Let go of any connection kept open between batches."""
        ...
