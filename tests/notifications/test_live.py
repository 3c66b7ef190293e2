"""The live stream: a committed notice reaches its recipient's open pages, and nothing else does."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text
from starlette.applications import Starlette

from portal.accounts.models import Company, User
from portal.db import Database
from portal.notifications import services
from portal.notifications.live import Event, Subscription
from tests.conftest import PortalClient
from tests.notifications.conftest import LiveStream, make_notice

NO_UNREAD = 'aria-label="Notifications"'


@pytest.fixture
def postgres(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's: set PORTAL_TEST_DATABASE_URL to run this")


async def _signed_in(new_client: object, user: User) -> PortalClient:
    client: PortalClient = new_client()  # type: ignore[operator]
    await client.sign_in(user.email)
    return client


async def test_a_committed_notice_reaches_the_open_stream(
    live_app: Starlette, new_client: object, db: Database, admin: User, member: User
) -> None:
    browser = await _signed_in(new_client, member)
    async with LiveStream(live_app, browser) as stream:
        first = await stream.next_named("count")
        assert stream.status == 200 and NO_UNREAD in first.data
        await make_notice(db, member, "Ada <i>invites</i> you to meet now", actor=admin)
        count = await stream.next_named("count")
        assert 'aria-label="Notifications, 1 unread"' in count.data
        assert 'sse-swap="count"' in count.data
        notice = await stream.next_named("notice")
        assert "Ada &lt;i&gt;invites&lt;/i&gt; you to meet now" in notice.data
        assert 'class="toast toast-notice"' in notice.data and 'name="csrf_token"' in notice.data


async def test_a_rolled_back_notice_is_never_announced(
    live_app: Starlette, new_client: object, db: Database, acme: Company, member: User
) -> None:
    browser = await _signed_in(new_client, member)
    async with LiveStream(live_app, browser) as stream:
        await stream.next_named("count")
        async with db.session(company_id=acme.id, write=True) as session:
            await services.notify(
                session, recipient=member, actor=None, kind="test", text="rolled back", url="/"
            )
            await session.rollback()
        with pytest.raises(TimeoutError):
            await stream.next(within=0.5)
        await make_notice(db, member, "committed")
        assert 'aria-label="Notifications, 1 unread"' in (await stream.next_named("count")).data
        notice = await stream.next_named("notice")
        assert "committed" in notice.data and "rolled back" not in notice.data


async def test_a_notice_raised_in_a_savepoint_waits_for_the_outer_commit(
    live_app: Starlette, new_client: object, db: Database, acme: Company, member: User
) -> None:
    async with LiveStream(live_app, await _signed_in(new_client, member)) as stream:
        await stream.next_named("count")
        async with db.session(company_id=acme.id, write=True) as session:
            async with session.begin_nested():
                await services.notify(
                    session, recipient=member, actor=None, kind="test", text="saved", url="/"
                )
            with pytest.raises(TimeoutError):
                await stream.next(within=0.3)
            await session.commit()
        await stream.next_named("count")
        assert "saved" in (await stream.next_named("notice")).data


async def test_a_notice_reaches_only_its_recipients_streams(
    live_app: Starlette, new_client: object, db: Database, admin: User, member: User
) -> None:
    async with (
        LiveStream(live_app, await _signed_in(new_client, member)) as first_tab,
        LiveStream(live_app, await _signed_in(new_client, member)) as second_tab,
        LiveStream(live_app, await _signed_in(new_client, admin)) as admins,
    ):
        for stream in (first_tab, second_tab, admins):
            await stream.next_named("count")
        await make_notice(db, member, "for Bob")
        for stream in (first_tab, second_tab):
            await stream.next_named("count")
            assert "for Bob" in (await stream.next_named("notice")).data
        with pytest.raises(TimeoutError):
            await admins.next(within=0.3)


async def test_reading_in_one_tab_recounts_the_bell_in_every_tab(
    live_app: Starlette, new_client: object, db: Database, acme: Company, member: User
) -> None:
    await make_notice(db, member)
    async with (
        LiveStream(live_app, await _signed_in(new_client, member)) as first_tab,
        LiveStream(live_app, await _signed_in(new_client, member)) as second_tab,
    ):
        for stream in (first_tab, second_tab):
            assert "1 unread" in (await stream.next_named("count")).data
        async with db.transaction(company_id=acme.id) as session:
            await services.mark_all_read(session, member)
        for stream in (first_tab, second_tab):
            assert NO_UNREAD in (await stream.next_named("count")).data


async def test_a_quiet_stream_sends_heartbeats(
    live_app: Starlette, new_client: object, member: User
) -> None:
    live_app.state.notifications.heartbeat = 0.05
    async with LiveStream(live_app, await _signed_in(new_client, member)) as stream:
        await stream.next_named("count")
        assert (await stream.next()).data == ": heartbeat"


async def test_the_stream_ends_when_the_browser_leaves_or_the_server_stops(
    live_app: Starlette, new_client: object, member: User
) -> None:
    browser = await _signed_in(new_client, member)
    stream = LiveStream(live_app, browser)
    async with stream:
        await stream.next_named("count")
    # Leaving: disconnect() waited for the app to finish the response (and unsubscribe).
    assert not stream.ended.is_set()

    async with LiveStream(live_app, browser) as stream:
        await stream.next_named("count")
        live_app.state.notifications.close_streams()
        await asyncio.wait_for(stream.ended.wait(), 2)


async def test_a_signed_out_session_gets_no_stream_and_loses_an_open_one(
    live_app: Starlette, new_client: object, db: Database, member: User
) -> None:
    browser = await _signed_in(new_client, member)
    other = await _signed_in(new_client, member)
    async with LiveStream(live_app, browser) as stream:
        await stream.next_named("count")
        await other.post("/signout")  # signs Bob out everywhere
        await make_notice(db, member, "after sign-out")
        await asyncio.wait_for(stream.ended.wait(), 2)
        with pytest.raises(EOFError):
            await stream.next()
    response = await browser.http.get("/notifications/stream")
    assert response.status_code == 303 and "/signin" in response.headers["location"]


async def test_a_slow_reader_loses_its_oldest_events_not_the_newest() -> None:
    subscription = Subscription(user_id=1, company_id=1, size=2)
    for number in (1, 2, 3):
        subscription.offer(Event(number, 1, 1))
    assert [await subscription.next(), await subscription.next()] == [
        Event(2, 1, 1),
        Event(3, 1, 1),
    ]


def test_events_carry_only_ids() -> None:
    event = Event(7, 3, 2)
    assert Event.from_json(event.to_json()) == event
    assert Event.from_json(Event(None, 3, 2).to_json()) == Event(None, 3, 2)


async def test_the_listener_ignores_a_stray_payload(
    postgres: None, live_app: Starlette, new_client: object, db: Database, member: User
) -> None:
    async with LiveStream(live_app, await _signed_in(new_client, member)) as stream:
        await stream.next_named("count")
        async with db.engine.begin() as connection:
            await connection.execute(text("SELECT pg_notify('portal_notifications', 'not json')"))
        await make_notice(db, member, "still listening")
        await stream.next_named("count")
        assert "still listening" in (await stream.next_named("notice")).data


async def test_the_listener_reconnects_and_every_bell_recounts(
    postgres: None, live_app: Starlette, new_client: object, db: Database, member: User
) -> None:
    async with LiveStream(live_app, await _signed_in(new_client, member)) as stream:
        await stream.next_named("count")
        async with db.engine.begin() as connection:
            killed = await connection.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE application_name = 'portal-notifications'"
                    " AND datname = current_database()"
                )
            )
            assert killed.scalars().all() == [True]
        # Notices raised while it was away are not replayed, but the count is made right again.
        assert NO_UNREAD in (await stream.next_named("count", within=5)).data
        await make_notice(db, member, "after the reconnect")
        await stream.next_named("count")
        assert "after the reconnect" in (await stream.next_named("notice")).data
