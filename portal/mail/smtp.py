"""SMTP delivery with aiosmtplib: a few reused connections per batch, each failure classified."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Sequence
from email.message import Message

import aiosmtplib

from portal.mail.interfaces import MailSender, SendResult
from portal.settings import Settings, SmtpSettings

log = logging.getLogger(__name__)


def _reply_text(code: int, message: str) -> str:
    return f"{code} {message}".strip()


def classify(error: Exception) -> SendResult:
    """A failed send as the outbox sees it: 5xx replies are permanent, the rest temporary."""
    if isinstance(error, aiosmtplib.SMTPRecipientsRefused):
        codes = [refusal.code for refusal in error.recipients]
        text = "; ".join(_reply_text(r.code, r.message) for r in error.recipients)
        return SendResult(False, permanent=bool(codes) and min(codes) >= 500, error=text)
    if isinstance(error, aiosmtplib.SMTPAuthenticationError):
        # The server's login, not this message, is wrong: keep it until an admin fixes it.
        return SendResult(False, error=f"login refused: {_reply_text(error.code, error.message)}")
    if isinstance(error, aiosmtplib.SMTPResponseException):
        return SendResult(
            False, permanent=error.code >= 500, error=_reply_text(error.code, error.message)
        )
    return SendResult(
        False, error=f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    )


class SmtpSender:
    """Sends a batch over up to `connections` SMTP connections, each reused for many messages."""

    def __init__(
        self,
        settings: SmtpSettings,
        *,
        connections: int = 4,
        timeout: float = 15.0,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        self.settings = settings
        self.connections = connections
        self.timeout = timeout
        # None: the system's trusted CAs (or SSL_CERT_FILE), with hostname checks.
        self.tls_context = tls_context
        # Connections kept open between the batches of one outbox run; close() ends them.
        self._idle: list[aiosmtplib.SMTP] = []

    def _client(self) -> aiosmtplib.SMTP:
        settings = self.settings
        return aiosmtplib.SMTP(
            hostname=settings.host,
            port=settings.port,
            username=settings.username,
            password=str(settings.password) if settings.password else None,
            use_tls=settings.tls == "tls",
            start_tls=settings.tls == "starttls",
            tls_context=self.tls_context,
            timeout=self.timeout,
        )

    async def send_batch(self, messages: Sequence[Message]) -> list[SendResult]:
        results: list[SendResult | None] = [None] * len(messages)
        queue: asyncio.Queue[int] = asyncio.Queue()
        for index in range(len(messages)):
            queue.put_nowait(index)
        workers = min(self.connections, len(messages))
        await asyncio.gather(*(self._work(queue, messages, results) for _ in range(workers)))
        return [result or SendResult(False, error="not attempted") for result in results]

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for client in idle:
            await _close(client)

    async def _connect(self) -> aiosmtplib.SMTP | SendResult:
        client = self._client()
        try:
            await client.connect()
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as error:
            client.close()
            return classify(error)
        return client

    async def _work(
        self,
        queue: asyncio.Queue[int],
        messages: Sequence[Message],
        results: list[SendResult | None],
    ) -> None:
        client = self._idle.pop() if self._idle else None
        try:
            while not queue.empty():
                index = queue.get_nowait()
                if client is None or not client.is_connected:
                    connected = await self._connect()
                    if isinstance(connected, SendResult):
                        # Connecting, TLS or login failed: every other message would fail the
                        # same way, and hundreds of refused logins get a mail account locked.
                        results[index] = connected
                        while not queue.empty():
                            results[queue.get_nowait()] = connected
                        return
                    client = connected
                try:
                    await client.send_message(messages[index])
                    results[index] = SendResult(True)
                except (aiosmtplib.SMTPException, OSError, TimeoutError) as error:
                    results[index] = classify(error)
                    if _connection_unusable(error):
                        await _close(client)
                        client = None
        except BaseException:
            await _close(client)
            raise
        if client is not None and client.is_connected:
            self._idle.append(client)


def sender_for(settings: Settings) -> MailSender | None:
    """The SMTP sender, or None when no mail server is configured (messages are held)."""
    return SmtpSender(settings.smtp) if settings.smtp.configured else None


def _connection_unusable(error: Exception) -> bool:
    """After a reply that refuses one message the connection goes on; after anything else, not."""
    refused_one = isinstance(
        error, aiosmtplib.SMTPResponseException | aiosmtplib.SMTPRecipientsRefused
    )
    return not refused_one or isinstance(error, aiosmtplib.SMTPAuthenticationError)


async def _close(client: aiosmtplib.SMTP | None) -> None:
    if client is None or not client.is_connected:
        return
    try:
        await client.quit()
    except (aiosmtplib.SMTPException, OSError, TimeoutError):
        client.close()
