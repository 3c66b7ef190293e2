"""The sign-in throttle: a try is claimed before its password is checked, per address and source."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from sqlalchemy import select, update
from starlette.applications import Starlette

from portal.accounts import signin
from portal.accounts.models import LoginThrottle, SignInSourceThrottle, User
from portal.app import create_app
from portal.db import UNSCOPED, Database, utcnow
from portal.settings import Settings
from tests.conftest import PASSWORD, PortalClient


class CountingArgon2(Argon2Hasher):
    """The tests' cheap Argon2, noting every password it checks; checks wait at `gate` if set."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=1024, parallelism=1)
        self.checked: list[str | bytes] = []
        self.gate: threading.Event | None = None
        self._lock = threading.Lock()

    def verify(self, password: str | bytes, hash: str | bytes) -> bool:
        with self._lock:
            self.checked.append(password)
        if self.gate is not None:
            self.gate.wait(timeout=15)
        return super().verify(password, hash)


@pytest.fixture
def counting() -> CountingArgon2:
    return CountingArgon2()


@pytest.fixture
def settings(settings: Settings, counting: CountingArgon2) -> Settings:
    return dataclasses.replace(settings, password_hasher=PasswordHash((counting,)))


async def _until(condition: Callable[[], bool], seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "gave up waiting"
        await asyncio.sleep(0.01)


async def _throttle(db: Database, email: str) -> LoginThrottle | None:
    async with db.session(company_id=UNSCOPED) as session:
        return await session.get(LoginThrottle, email)


def _wrong(email: str, n: int = 0) -> dict[str, str]:
    return {"email": email, "password": f"wrong password {n}"}


async def test_a_race_of_fifty_wrong_tries_checks_five_and_the_right_one_waits(
    client: PortalClient, member: User, counting: CountingArgon2, db: Database
) -> None:
    await client.csrf()
    counting.gate = threading.Event()
    wrong = [
        asyncio.create_task(client.post("/signin", _wrong(member.email, n))) for n in range(50)
    ]
    try:
        # Five tries hold a claim while their passwords are checked; the rest are turned away.
        await _until(lambda: sum(task.done() for task in wrong) >= 45)
        right = await asyncio.wait_for(
            client.post("/signin", {"email": member.email, "password": PASSWORD}), 10
        )
    finally:
        counting.gate.set()
        answers = await asyncio.gather(*wrong, return_exceptions=True)
    assert len(counting.checked) == 5 and PASSWORD not in counting.checked
    assert right.status_code == 400
    assert "Too many failed sign-in attempts for bob@acme.example. Try again in" in right.text
    assert [getattr(answer, "status_code", answer) for answer in answers] == [400] * 50
    assert sum("Wrong email or password." in answer.text for answer in answers) == 5  # type: ignore[union-attr]
    throttle = await _throttle(db, member.email)
    assert throttle is not None and throttle.failures == 5 and throttle.locked_until is not None


async def test_a_hundred_parallel_wrong_tries_check_at_most_five_passwords(
    client: PortalClient, member: User, counting: CountingArgon2
) -> None:
    await client.csrf()
    answers = await asyncio.gather(
        *(client.post("/signin", _wrong(member.email, n)) for n in range(100))
    )
    assert {answer.status_code for answer in answers} == {400}
    assert len(counting.checked) <= 5


async def test_sixty_failures_ask_for_the_longest_wait_instead_of_failing(
    client: PortalClient, member: User, db: Database
) -> None:
    async with db.transaction(company_id=UNSCOPED) as session:
        session.add(LoginThrottle(email=member.email, failures=60))
    wrong = await client.post("/signin", _wrong(member.email))
    assert wrong.status_code == 400
    assert "Too many failed attempts: wait 15 minutes before trying again." in wrong.text
    right = await client.post("/signin", {"email": member.email, "password": PASSWORD})
    assert right.status_code == 400
    assert "Try again in 15 minutes." in right.text


def test_the_wait_doubles_up_to_the_longest_and_never_overflows() -> None:
    waits = [signin.ADDRESS_THROTTLE.wait(failures) for failures in (4, 5, 6, 7, 10, 47, 10**9)]
    assert waits == [
        dt.timedelta(0),
        dt.timedelta(seconds=30),
        dt.timedelta(seconds=60),
        dt.timedelta(seconds=120),
        dt.timedelta(minutes=15),
        dt.timedelta(minutes=15),
        dt.timedelta(minutes=15),
    ]
    assert signin.SOURCE_THROTTLE.wait(10**9) == dt.timedelta(hours=1)


async def test_a_claim_that_never_finishes_counts_until_the_lock_ends(
    client: PortalClient, member: User, db: Database
) -> None:
    for _ in range(5):  # five tries whose process died while checking the password
        async with db.transaction(company_id=UNSCOPED) as session:
            attempt = await signin.begin_sign_in(session, member.email, "whatever", "192.0.2.1")
        assert attempt.error is None
    async with db.transaction(company_id=UNSCOPED) as session:
        locked = await signin.begin_sign_in(session, member.email, PASSWORD, "192.0.2.1")
    assert locked.error is not None and "Try again in 30 seconds" in locked.error
    async with db.transaction(company_id=UNSCOPED) as session:
        await session.execute(
            update(LoginThrottle).values(locked_until=utcnow() - dt.timedelta(seconds=1))
        )
    await client.sign_in(member.email)
    throttle = await _throttle(db, member.email)
    assert throttle is not None and throttle.failures == 0 and throttle.locked_until is None


async def test_a_right_password_does_not_count_as_a_failure(
    client: PortalClient, member: User, db: Database
) -> None:
    for n in range(4):
        await client.post("/signin", _wrong(member.email, n))
    await client.sign_in(member.email)
    await client.post("/signout")
    for n in range(4):  # four more, not a fifth and beyond: the count started again
        response = await client.post("/signin", _wrong(member.email, n))
        assert "Too many" not in response.text
    async with db.session(company_id=UNSCOPED) as session:
        source = await session.get(SignInSourceThrottle, "127.0.0.1")
    assert source is not None and source.failures == 8


# Per source: one client address (one /64 in IPv6) across every email address.


async def _fail_thirty_times(client: PortalClient, **kwargs: Any) -> None:
    for n in range(30):
        response = await client.post("/signin", _wrong(f"guess{n}@acme.example", n), **kwargs)
        assert response.status_code == 400 and "Wrong email or password." in response.text
    assert "Too many failed attempts: wait 60 seconds" in response.text


async def test_one_source_trying_many_addresses_is_made_to_wait(
    client: PortalClient, member: User
) -> None:
    await _fail_thirty_times(client)
    blocked = await client.post("/signin", {"email": member.email, "password": PASSWORD})
    assert blocked.status_code == 400
    assert "Too many failed sign-in attempts from your network. Try again in 60 seconds" in (
        blocked.text
    )


async def test_sign_ins_from_a_source_do_not_count_against_it(
    client: PortalClient, member: User, db: Database
) -> None:
    for n in range(29):
        await client.post("/signin", _wrong(f"guess{n}@acme.example", n))
    for _ in range(3):
        await client.sign_in(member.email)
        await client.post("/signout")
    last = await client.post("/signin", _wrong("guess29@acme.example"))
    assert "Wrong email or password. Too many failed attempts: wait 60 seconds" in last.text
    async with db.transaction(company_id=UNSCOPED) as session:  # fifteen quiet minutes later
        await session.execute(
            update(SignInSourceThrottle).values(
                locked_until=utcnow() - dt.timedelta(minutes=16),
                forget_at=utcnow() - dt.timedelta(minutes=1),
            )
        )
    await client.sign_in(member.email)
    async with db.session(company_id=UNSCOPED) as session:
        source = await session.get(SignInSourceThrottle, "127.0.0.1")
    assert source is not None and source.failures == 0


async def test_x_forwarded_for_is_ignored_without_a_trusted_proxy(
    client: PortalClient, member: User
) -> None:
    for n in range(30):
        await client.post(
            "/signin", _wrong(f"guess{n}@acme.example"), headers={"X-Forwarded-For": f"10.0.0.{n}"}
        )
    blocked = await client.post(
        "/signin",
        {"email": member.email, "password": PASSWORD},
        headers={"X-Forwarded-For": "10.0.1.1"},
    )
    assert "Too many failed sign-in attempts from your network" in blocked.text


@pytest.fixture
async def proxied_client(settings: Settings, db: Database) -> AsyncIterator[PortalClient]:
    """The portal behind a proxy on this machine (the test client's address) that it trusts."""
    application: Starlette = create_app(
        dataclasses.replace(settings, trusted_proxies=("127.0.0.1/32",))
    )
    await application.state.db.dispose()
    application.state.db = db
    portal_client = PortalClient(application)
    yield portal_client
    await portal_client.aclose()


async def test_behind_a_trusted_proxy_the_forwarded_address_is_the_source(
    proxied_client: PortalClient, member: User
) -> None:
    await _fail_thirty_times(proxied_client, headers={"X-Forwarded-For": "198.51.100.7"})
    right = {"email": member.email, "password": PASSWORD}
    # What the client wrote in the header itself is left of what the proxy added: not believed.
    spoofed = await proxied_client.post(
        "/signin", right, headers={"X-Forwarded-For": "203.0.113.9, 198.51.100.7"}
    )
    assert "Too many failed sign-in attempts from your network" in spoofed.text
    other = await proxied_client.post("/signin", right, headers={"X-Forwarded-For": "198.51.100.8"})
    assert other.status_code == 303


@pytest.mark.parametrize(
    ("peer", "forwarded", "trusted", "source"),
    [
        ("203.0.113.5", [], (), "203.0.113.5"),
        ("2001:db8:1:2:aaaa::1", [], (), "2001:db8:1:2::/64"),
        ("2001:db8:1:2:bbbb::9", [], (), "2001:db8:1:2::/64"),
        ("::ffff:203.0.113.5", [], (), "203.0.113.5"),
        (None, [], (), "unknown"),
        ("127.0.0.1", ["198.51.100.7"], (), "127.0.0.1"),
        ("127.0.0.1", ["198.51.100.7"], ("127.0.0.1/32",), "198.51.100.7"),
        ("127.0.0.1", ["203.0.113.9", "198.51.100.7:5555"], ("127.0.0.1/32",), "198.51.100.7"),
        ("10.0.0.3", ["203.0.113.9, 10.0.0.2"], ("10.0.0.0/8",), "203.0.113.9"),
        ("127.0.0.1", ["[2001:db8::1]:443"], ("127.0.0.1/32",), "2001:db8::/64"),
        ("127.0.0.1", ["not an address"], ("127.0.0.1/32",), "127.0.0.1"),
        ("127.0.0.1", ["10.0.0.2"], ("127.0.0.1/32", "10.0.0.0/8"), "10.0.0.2"),
    ],
)
def test_the_source_of_a_sign_in(
    peer: str | None, forwarded: list[str], trusted: tuple[str, ...], source: str
) -> None:
    assert signin.sign_in_source(peer, forwarded, trusted) == source


async def test_an_hourly_job_forgets_the_sources_whose_count_is_forgotten_anyway(
    db: Database, settings: Settings
) -> None:
    from portal import features
    from portal.accounts.jobs import FORGET_QUIET_SOURCES
    from portal.jobs import JobEnv

    now = utcnow()
    async with db.transaction(company_id=UNSCOPED) as session:
        session.add_all(
            [
                SignInSourceThrottle(source="192.0.2.1", failures=3, forget_at=now),
                SignInSourceThrottle(
                    source="192.0.2.2", failures=31, forget_at=now + dt.timedelta(minutes=5)
                ),
            ]
        )
    assert FORGET_QUIET_SOURCES in features.jobs() and FORGET_QUIET_SOURCES.cron
    await FORGET_QUIET_SOURCES.run(JobEnv(db, settings, lambda: None))
    async with db.session(company_id=UNSCOPED) as session:
        kept = (await session.execute(select(SignInSourceThrottle.source))).scalars().all()
    assert kept == ["192.0.2.2"]
