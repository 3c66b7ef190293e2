"""What every adapter does with HTTP the same way: trying again politely, reading Retry-After,
saying what a failed connection means, keeping an access token, and reading JSON answers."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import email.utils
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from time import monotonic
from typing import Any, TypeVar

import httpx
import orjson
import stamina

from portal.conferencing.interfaces import ProviderUnavailable, RateLimited

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try again after a 429, a 5xx, a timeout or a dropped connection."""

    attempts: int = 3
    wait_initial: float = 0.5
    wait_max: float = 5.0
    wait_jitter: float = 0.5
    retry_after_cap: float = 30.0  # a longer Retry-After is cut to this


# What an adapter opened without a policy of its own uses; read when it is opened.
DEFAULT_RETRY = RetryPolicy()


class NotSent(ProviderUnavailable):
    """Failed before the request reached the provider: sending it again cannot act twice."""


async def retrying(
    send: Callable[[], Awaitable[T]], policy: RetryPolicy, *, repeatable: bool = True
) -> T:
    """`send()` until it succeeds, fails for good, or runs out of attempts.

    A RateLimited waits as long as the provider asked (capped). ProviderUnavailable is tried
    again too, unless the request is not `repeatable` (a creation): a 5xx or a timeout may come
    after the provider acted, and a second meeting or user must not follow; only a NotSent is.
    """

    def wait(error: Exception) -> bool | float:
        if isinstance(error, RateLimited):
            if error.retry_after is None:
                return True
            return min(error.retry_after, policy.retry_after_cap)
        return isinstance(error, NotSent if not repeatable else ProviderUnavailable)

    async for attempt in stamina.retry_context(
        on=wait,
        attempts=policy.attempts,
        timeout=None,
        wait_initial=policy.wait_initial,
        wait_max=policy.wait_max,
        wait_jitter=policy.wait_jitter,
    ):
        with attempt:
            result = await send()
    return result


def retry_after(value: str) -> float | None:
    """Seconds to wait from a Retry-After of seconds, of an HTTP date or of an ISO time."""
    value = value.strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        try:
            when = dt.datetime.fromisoformat(value)
        except ValueError:
            return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds())


def unreachable(provider: str, timeout: float, error: httpx.TransportError) -> ProviderUnavailable:
    """What a transport error means for the admin; NotSent when the request never left."""
    unsent = isinstance(error, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
    kind = NotSent if unsent else ProviderUnavailable
    if isinstance(error, httpx.TimeoutException):
        return kind(f"{provider} did not answer within {timeout:g} seconds: try again later.")
    return kind(
        f"{provider} could not be reached: check that the portal's server can reach the "
        "internet, then try again."
    )


async def bearer_request(
    client: httpx.AsyncClient,
    provider: str,
    method: str,
    url: str,
    token: str,
    *,
    params: dict[str, Any] | None = None,
    json: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """`client`'s answer to one request with `token` as its bearer; a transport error raised
    as what it means for the admin (see `unreachable`)."""
    try:
        return await client.request(
            method,
            url,
            params=params,
            json=json,
            headers={"Authorization": f"Bearer {token}", **(headers or {})},
        )
    except httpx.TransportError as error:
        # The adapters give their clients one timeout for everything: read stands for it.
        raise unreachable(provider, client.timeout.read or 0.0, error) from error


class TokenCache:
    """One access token, kept for its lifetime minus `margin` seconds, so that no request
    leaves with a token about to die; `fetch` gives a new one as (token, lifetime)."""

    def __init__(self, fetch: Callable[[], Awaitable[tuple[str, float]]], margin: float) -> None:
        self._fetch = fetch
        self._margin = margin
        self._token: str | None = None
        self._expires = 0.0
        self._lock = asyncio.Lock()

    async def get(self) -> str:
        """The cached token while it has more than the margin to live, else a new one."""
        async with self._lock:
            if self._token is None or monotonic() >= self._expires:
                self._token, lifetime = await self._fetch()
                self._expires = monotonic() + lifetime - self._margin
            return self._token

    def drop(self, token: str) -> None:
        """Forget `token`, which the provider stopped taking before its time."""
        # Another request may already have replaced it with a fresh one: keep that.
        if self._token == token:
            self._token = None

    async def send(
        self,
        request: Callable[[str], Awaitable[httpx.Response]],
        dead: Callable[[httpx.Response], bool] = lambda response: True,
    ) -> httpx.Response:
        """`request(token)`; once more with a new token when the answer is a 401 that `dead`
        says means the token died (providers may revoke one early: a new secret, say)."""
        token = await self.get()
        response = await request(token)
        if response.status_code == 401 and dead(response):
            self.drop(token)
            response = await request(await self.get())
        return response


def json_object(response: httpx.Response, provider: str) -> dict[str, Any]:
    """The answer's JSON object; ProviderUnavailable when it is anything else."""
    try:
        # orjson: a sync reads 336 pages of 300 users, and the standard library's parser was a
        # fifth of its time.
        answer = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        answer = None
    if not isinstance(answer, dict):
        raise ProviderUnavailable(
            f"{provider} answered with something other than the documented JSON."
        )
    return answer


def error_body(response: httpx.Response) -> dict[str, Any]:
    """An error answer's JSON object, or {} when it has none."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def rate_limited(response: httpx.Response, provider: str) -> RateLimited:
    """A 429, with how long the provider asked the portal to wait."""
    seconds = retry_after(response.headers.get("Retry-After", ""))
    when = f"in {seconds:g} seconds" if seconds is not None else "in a minute"
    return RateLimited(f"{provider} is limiting the portal's requests: try again {when}.", seconds)


def server_error(response: httpx.Response, provider: str) -> str:
    """What a 5xx means for the admin."""
    return f"{provider} answered with a server error ({response.status_code}): try again later."


def undocumented(provider: str) -> ProviderUnavailable:
    """An answer without the fields the provider's documentation promises."""
    return ProviderUnavailable(
        f"{provider} answered without the fields its documentation promises: try again later."
    )


@contextlib.contextmanager
def documented_shape(provider: str) -> Iterator[None]:
    """Turn an answer without the documented fields into ProviderUnavailable."""
    try:
        yield
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as error:
        raise undocumented(provider) from error
