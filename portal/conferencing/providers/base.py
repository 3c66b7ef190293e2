"""What every adapter does with HTTP the same way: trying again politely, reading Retry-After,
and saying what a failed connection means."""

from __future__ import annotations

import datetime as dt
import email.utils
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import httpx
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
