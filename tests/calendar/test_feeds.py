"""The personal calendar feed: its address, the feed with its validators, and the reset."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlmodel import col

from portal.accounts.models import User
from portal.calendar import feeds, ics
from portal.calendar.models import DECLINED, CalendarEvent, CalendarFeed, EventParticipant
from portal.db import UNSCOPED, Database
from portal.settings import Settings
from tests.calendar.test_details import add_exception, make_event
from tests.conftest import PortalClient, make_company, make_user

# Feeds reach 90 days back from the real clock: these events are near it.
SOON = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0) + dt.timedelta(days=2)
FEED_URL = re.compile(r'value="http://testserver(/calendar/feed/[A-Za-z0-9_-]+\.ics)"')


async def feed_path(client: PortalClient) -> str:
    page = await client.get("/calendar/feed")
    assert page.status_code == 200
    match = FEED_URL.search(page.text)
    assert match, page.text
    return match.group(1)


async def test_the_settings_page_shows_one_lasting_address(
    admin_client: PortalClient, db: Database, admin: User
) -> None:
    page = await admin_client.get("/calendar/feed")
    path = await feed_path(admin_client)
    assert f'value="webcal://testserver{path}"' in page.text
    assert "readonly" in page.text and 'data-copy="feed-webcal"' in page.text
    assert "js/calendar_feed.js" in page.text and "onclick" not in page.text
    assert "Outlook" in page.text and "Google Calendar" in page.text and "Apple" in page.text
    assert await feed_path(admin_client) == path
    async with db.session(company_id=UNSCOPED) as session:
        stored = (await session.execute(select(CalendarFeed))).scalars().all()
    assert [feed.user_id for feed in stored] == [admin.id]


async def test_the_feed_holds_the_persons_events_with_validators(
    admin_client: PortalClient,
    new_client: Callable[[], PortalClient],
    db: Database,
    admin: User,
    member: User,
) -> None:
    organized, _ = await make_event(
        db, admin, title="Organized", start=SOON, rrule="FREQ=DAILY;COUNT=3"
    )
    await add_exception(db, organized, SOON + dt.timedelta(days=1), cancelled=True)
    await make_event(db, member, title="Invited", start=SOON, invitees=[admin], uses_room=True)
    await make_event(db, member, title="Declined", start=SOON, invitees=[(admin, DECLINED)])
    await make_event(db, member, title="Not mine", start=SOON)
    await make_event(db, admin, title="Long ago", start=SOON - dt.timedelta(days=200))
    path = await feed_path(admin_client)
    anyone = new_client()  # no session: the token is the key
    response = await anyone.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/calendar; charset=utf-8"
    calendar = ics.parse(response.text)
    titles = sorted(str(event["summary"]) for event in calendar.walk("VEVENT"))
    assert titles == ["Declined", "Invited", "Organized"]
    assert "Ada Admin" in str(calendar["x-wr-calname"])
    (series,) = [e for e in calendar.walk("VEVENT") if str(e["summary"]) == "Organized"]
    assert "EXDATE" in series
    etag = response.headers["etag"]
    modified = response.headers["last-modified"]
    assert etag.startswith('"') and modified.endswith(" GMT")
    again = await anyone.get(path, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    assert (await anyone.get(path, headers={"If-None-Match": f'W/{etag}, "x"'})).status_code == 304
    assert (await anyone.get(path, headers={"If-Modified-Since": modified})).status_code == 304
    assert (await anyone.get(path, headers={"If-None-Match": '"other"'})).status_code == 200
    assert (await anyone.get(path, headers={"If-Modified-Since": "garbage"})).status_code == 200
    # A change to an event is a new version.
    async with db.session(company_id=admin.company_id, write=True) as session:
        await session.execute(
            update(CalendarEvent)
            .where(col(CalendarEvent.id) == organized.id)
            .values(title="Renamed", updated_at=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5))
        )
        await session.commit()
    changed = await anyone.get(path, headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag
    assert "Renamed" in changed.text


async def test_a_reply_changes_the_feed_version(
    admin_client: PortalClient, db: Database, admin: User, member: User
) -> None:
    _, (invitation,) = await make_event(db, member, start=SOON, invitees=[admin])
    path = await feed_path(admin_client)
    etag = (await admin_client.get(path)).headers["etag"]
    async with db.session(company_id=admin.company_id, write=True) as session:
        await session.execute(
            update(EventParticipant)
            .where(col(EventParticipant.id) == invitation.id)
            .values(partstat="ACCEPTED", responded_at=dt.datetime.now(dt.UTC))
        )
        await session.commit()
    assert (await admin_client.get(path, headers={"If-None-Match": etag})).status_code == 200


async def test_reset_makes_the_old_address_not_found(
    admin_client: PortalClient, new_client: Callable[[], PortalClient], db: Database, admin: User
) -> None:
    await make_event(db, admin, title="Mine", start=SOON)
    old = await feed_path(admin_client)
    anyone = new_client()
    assert (await anyone.get(old)).status_code == 200
    response = await admin_client.post("/calendar/feed/reset")
    assert response.status_code == 303
    page = await admin_client.get("/calendar/feed")
    assert "The old one no longer works" in page.text
    new = await feed_path(admin_client)
    assert new != old
    assert (await anyone.get(old)).status_code == 404
    assert "Mine" in (await anyone.get(new)).text


async def test_unknown_tokens_and_deactivated_people_have_no_feed(
    admin_client: PortalClient, new_client: Callable[[], PortalClient], db: Database, admin: User
) -> None:
    path = await feed_path(admin_client)
    anyone = new_client()
    for bad in ("nope", "x" * 70, "%C3%A9"):
        assert (await anyone.get(f"/calendar/feed/{bad}.ics")).status_code == 404
    async with db.session(company_id=admin.company_id, write=True) as session:
        await session.execute(update(User).where(col(User.id) == admin.id).values(active=False))
        await session.commit()
    assert (await anyone.get(path)).status_code == 404


async def test_a_feed_never_shows_another_companys_events(
    new_client: Callable[[], PortalClient], db: Database, settings: Settings, admin: User
) -> None:
    globex = await make_company(db, "Globex")
    eve = await make_user(db, globex, "eve@globex.example", name="Eve Outsider")
    await make_event(db, eve, title="Globex secret", start=SOON)
    await make_event(db, admin, title="Acme plan", start=SOON)
    async with db.session(company_id=admin.company_id, write=True) as session:
        token = await feeds.feed_token(session, admin)
        await session.commit()
    async with db.session(company_id=UNSCOPED) as session:
        feed = await feeds.feed_for(session, settings, token)
    assert feed is not None
    assert "Acme plan" in feed.text and "Globex secret" not in feed.text


async def test_an_unchanged_feed_is_built_once(
    admin_client: PortalClient,
    new_client: Callable[[], PortalClient],
    db: Database,
    admin: User,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await make_event(db, admin, title="Mine", start=SOON)
    path = await feed_path(admin_client)
    builds: list[str] = []
    build = feeds._build

    async def counted(*args: Any) -> str:
        builds.append(args[-1].etag)
        return await build(*args)

    monkeypatch.setattr(feeds, "_build", counted)
    anyone = new_client()
    first, second = [await anyone.get(path) for _ in range(2)]  # no If-None-Match: apps that
    assert first.text == second.text and len(builds) == 1  # send none get the same text
    await make_event(db, admin, title="Another", start=SOON)
    assert "Another" in (await anyone.get(path)).text and len(builds) == 2
