"""SMTP delivery with aiosmtplib: a few reused connections per batch, each failure classified."""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import ssl
from collections.abc import Callable, Sequence
from email.message import Message
from typing import Literal

import aiosmtplib
from aiosmtplib.protocol import normalize_message_line_endings
from aiosmtplib.response import SMTPResponse
from aiosmtplib.typing import Default

from portal.mail.interfaces import NOT_ATTEMPTED, MailSender, MaySend, OnResult, SendResult
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
        self._idle: list[_GatedSMTP] = []

    def _client(self) -> _GatedSMTP:
        settings = self.settings
        return _GatedSMTP(
            hostname=settings.host,
            port=settings.port,
            username=settings.username,
            password=str(settings.password) if settings.password else None,
            use_tls=settings.tls == "tls",
            start_tls=settings.tls == "starttls",
            tls_context=self.tls_context,
            timeout=self.timeout,
        )

    async def send_batch(
        self,
        messages: Sequence[Message],
        *,
        on_result: OnResult | None = None,
        stop: asyncio.Event | None = None,
        may_send: MaySend | None = None,
    ) -> list[SendResult]:
        results: list[SendResult | None] = [None] * len(messages)
        queue: asyncio.Queue[int] = asyncio.Queue()
        for index in range(len(messages)):
            queue.put_nowait(index)
        workers = min(self.connections, len(messages))
        batch = _Batch(
            messages, results, on_result or _ignore, stop or asyncio.Event(), may_send or _always
        )
        await asyncio.gather(*(self._work(queue, batch) for _ in range(workers)))
        return [result or NOT_ATTEMPTED for result in results]

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for client in idle:
            await _close(client)

    async def _connect(self) -> _GatedSMTP | SendResult:
        client = self._client()
        try:
            await client.connect()
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as error:
            client.close()
            return classify(error)
        return client

    async def _work(self, queue: asyncio.Queue[int], batch: _Batch) -> None:
        client = self._idle.pop() if self._idle else None
        # The result before, being recorded: the next message's final "." waits for it, so a
        # process that dies has at most one message per connection accepted and not recorded.
        recording: asyncio.Future[None] | None = None
        try:
            while not queue.empty() and not batch.stop.is_set():
                index = queue.get_nowait()
                if not batch.may_send(index):
                    continue
                if client is None or not client.is_connected:
                    connected = await self._connect()
                    if isinstance(connected, SendResult):
                        # Connecting, TLS or login failed: every other message would fail the
                        # same way, and hundreds of refused logins get a mail account locked.
                        await _recorded(recording)
                        await _recorded(batch.done(index, connected))
                        while not queue.empty():
                            await _recorded(batch.done(queue.get_nowait(), connected))
                        return
                    client = connected
                client.before_commit = recording
                client.may_commit = functools.partial(batch.may_send, index)
                try:
                    await client.send_message(batch.messages[index])
                    result = SendResult(True)
                except _Refused:
                    client = None  # dropped before its "."
                    continue
                except (aiosmtplib.SMTPException, OSError, TimeoutError) as error:
                    result = classify(error)
                    if _connection_unusable(error):
                        await _close(client)
                        client = None
                await _recorded(recording)  # if the message failed before its "."
                recording = batch.done(index, result)
            await _recorded(recording)
        except BaseException:
            await _close(client)
            raise
        if client is not None and client.is_connected:
            self._idle.append(client)


async def _recorded(recording: asyncio.Future[None] | None) -> None:
    if recording is not None:
        # Shielded: the outbox's future may be shared by several connections.
        await asyncio.shield(recording)


_LEADING_PERIOD = re.compile(rb"(?m)^\.")


class _Refused(Exception):
    """`may_send` said no to a message before its final ".": the connection was dropped."""


class _GatedSMTP(aiosmtplib.SMTP):
    """aiosmtplib's client, whose DATA waits for `before_commit` (the result before, being
    recorded) before the final ".": the server takes a message on only at that dot, so this
    message is transferred while the one before is recorded, and committed after. Just before
    the dot, `may_commit` is asked whether the message may still go."""

    before_commit: asyncio.Future[None] | None = None
    may_commit: Callable[[], bool] | None = None

    def _refused(self) -> bool:
        may_commit, self.may_commit = self.may_commit, None
        if may_commit is None or may_commit():
            return False
        # Dropped rather than reset: in DATA, only a closed connection makes the server forget.
        self.close()
        return True

    async def data(
        self,
        message: str | bytes,
        /,
        *,
        timeout: float | Literal[Default.token] | None = Default.token,  # noqa: ASYNC109
    ) -> SMTPResponse:
        before_commit, self.before_commit = self.before_commit, None
        if before_commit is None or before_commit.done():
            if before_commit is not None:
                before_commit.result()  # a result that could not be recorded: send no more
            if self._refused():
                raise _Refused
            return await super().data(message, timeout=timeout)  # one write, as usual
        if isinstance(message, str):
            message = message.encode("ascii")
        content = _LEADING_PERIOD.sub(b"..", normalize_message_line_endings(message))
        start = await self.execute_command(b"DATA", timeout=timeout)
        if start.code != aiosmtplib.SMTPStatus.start_input:
            raise aiosmtplib.SMTPDataError(start.code, start.message)
        try:
            if self.protocol is None:
                raise aiosmtplib.SMTPServerDisconnected("Connection lost")
            self.protocol.write(content)
            await asyncio.shield(before_commit)
        except BaseException:
            self.close()  # without its ".", the server drops what it has of the message
            raise
        if self._refused():
            raise _Refused
        try:
            response = await self.execute_command(b".", timeout=timeout)
        except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError):
            self.close()
            raise
        if response.code != aiosmtplib.SMTPStatus.completed:
            raise aiosmtplib.SMTPDataError(response.code, response.message)
        return response


async def _ignore(index: int, result: SendResult) -> None:
    return None


def _always(index: int) -> bool:
    return True


class _Batch:
    """One send_batch call: its messages, their results so far, whom to tell, when to stop."""

    def __init__(
        self,
        messages: Sequence[Message],
        results: list[SendResult | None],
        on_result: OnResult,
        stop: asyncio.Event,
        may_send: MaySend,
    ) -> None:
        self.messages = messages
        self.results = results
        self.on_result = on_result
        self.stop = stop
        self.may_send = may_send

    def done(self, index: int, result: SendResult) -> asyncio.Future[None]:
        """Note the result and tell the caller; done once the caller has dealt with it."""
        self.results[index] = result
        return asyncio.ensure_future(self.on_result(index, result))


def sender_for(settings: Settings) -> MailSender | None:
    """The SMTP sender, or None when no mail server is configured (messages are held)."""
    return SmtpSender(settings.smtp) if settings.smtp.configured else None


def _connection_unusable(error: Exception) -> bool:
    """After a reply that refuses one message the connection goes on; after anything else, not."""
    refused_one = isinstance(
        error, aiosmtplib.SMTPResponseException | aiosmtplib.SMTPRecipientsRefused
    )
    return not refused_one or isinstance(error, aiosmtplib.SMTPAuthenticationError)


async def _close(client: _GatedSMTP | None) -> None:
    if client is None or not client.is_connected:
        return
    try:
        await client.quit()
    except (aiosmtplib.SMTPException, OSError, TimeoutError):
        client.close()
