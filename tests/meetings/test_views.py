"""Meet Now through the portal's own routes: the form, one click, join links, history."""

from __future__ import annotations

import datetime as dt
import json

from sqlalchemy import func, select

from portal.accounts.models import Company, User
from portal.conferencing.rooms import jitsi_room_url
from portal.db import UNSCOPED, Database
from portal.mail.models import OutboxMessage
from portal.meetings.models import Meeting, MeetingInvitee, MeetingJoin
from portal.settings import Settings
from tests.conftest import PortalClient, make_company, make_user

HTMX = {"HX-Request": "true"}


async def sent(db: Database) -> list[str]:
    async with db.session(company_id=UNSCOPED) as session:
        rows = await session.execute(select(OutboxMessage.to_address))
        return sorted(rows.scalars())


async def joins(db: Database) -> int:
    async with db.session(company_id=UNSCOPED) as session:
        return (await session.execute(select(func.count()).select_from(MeetingJoin))).scalar_one()


async def test_one_click_invites_and_tells_the_page_where_the_room_is(
    admin_client: PortalClient, settings: Settings, db: Database, admin: User, member: User
) -> None:
    response = await admin_client.post(
        "/meetings/start",
        {"invitee": member.id, "one_click": "1", "request_key": "one-click-key-1"},
        headers=HTMX,
    )
    assert response.status_code == 200
    assert "Invitation sent to Bob Member." in response.text
    trigger = json.loads(response.headers["HX-Trigger"])["meeting-started"]
    assert trigger["roomUrl"] == jitsi_room_url(settings, admin)
    assert trigger["nextKey"] != "one-click-key-1"
    assert response.headers["HX-Retarget"] == "#toasts"
    assert await sent(db) == ["bob@acme.example"]


async def test_the_form_reports_bad_input_in_place(
    admin_client: PortalClient, db: Database, member: User
) -> None:
    response = await admin_client.post(
        "/meetings/start",
        {"invitee": member.id, "emails": "nope@", "request_key": "form-key-123"},
        headers=HTMX,
    )
    assert response.status_code == 422
    assert "is not a valid email address" in response.text
    # The picked colleague is still picked, so the host only fixes the address.
    assert f'name="invitee" value="{member.id}"' in response.text
    assert await sent(db) == []


async def test_one_click_refusals_come_back_as_a_toast(
    admin_client: PortalClient, db: Database, acme: Company
) -> None:
    gone = await make_user(db, acme, "gone@acme.example", name="Gone Person")
    async with db.session(company_id=acme.id, write=True) as session:
        person = await session.get(User, gone.id)
        assert person is not None
        person.active = False
        await session.commit()
    response = await admin_client.post(
        "/meetings/start",
        {"invitee": gone.id, "one_click": "1", "request_key": "one-click-key-2"},
        headers=HTMX,
    )
    assert response.status_code == 422
    assert "Gone Person can no longer be invited" in response.text
    assert response.headers["HX-Retarget"] == "#toasts"


async def test_without_javascript_a_page_links_to_the_room(
    admin_client: PortalClient, settings: Settings, admin: User, member: User
) -> None:
    response = await admin_client.post(
        "/meetings/start", {"invitee": member.id, "request_key": "no-js-key-12"}
    )
    assert response.status_code == 200
    assert "Invitation sent to Bob Member." in response.text
    assert f'href="{jitsi_room_url(settings, admin)}"' in response.text


async def test_inviting_someone_of_another_company_is_not_found(
    admin_client: PortalClient, db: Database, member: User
) -> None:
    globex = await make_company(db, "Globex")
    stranger = await make_user(db, globex, "hank@globex.example")
    response = await admin_client.post(
        "/meetings/start",
        {"invitee": [member.id, stranger.id], "request_key": "isolation-key"},
        headers=HTMX,
    )
    assert response.status_code == 404
    assert await sent(db) == []


async def test_the_picker_suggests_colleagues_but_not_you_or_those_picked(
    admin_client: PortalClient, db: Database, acme: Company, member: User
) -> None:
    await make_user(db, acme, "bobby@acme.example", name="Bobby Tables")
    globex = await make_company(db, "Globex")
    await make_user(db, globex, "bo@globex.example", name="Bo Globex")
    response = await admin_client.get("/meetings/people?q=bo", headers=HTMX)
    assert "Bob Member" in response.text and "Bobby Tables" in response.text
    assert "Bo Globex" not in response.text
    picked = await admin_client.get(f"/meetings/people?q=bo&invitee={member.id}", headers=HTMX)
    assert "Bob Member" not in picked.text and "Bobby Tables" in picked.text
    none = await admin_client.get("/meetings/people?q=zzz", headers=HTMX)
    assert "No colleague matches" in none.text


async def test_the_form_page_can_start_with_a_person_picked(
    admin_client: PortalClient, member: User
) -> None:
    response = await admin_client.get(f"/meetings/now?with={member.id}")
    assert response.status_code == 200
    assert f'name="invitee" value="{member.id}"' in response.text


async def test_the_form_page_picks_only_someone_who_may_be_invited(
    admin_client: PortalClient, db: Database, acme: Company, admin: User, member: User
) -> None:
    gone = await make_user(db, acme, "gone@acme.example", name="Gone Person")
    async with db.session(company_id=acme.id, write=True) as session:
        person = await session.get(User, gone.id)
        assert person is not None
        person.active = False
        await session.commit()
    for with_id in (admin.id, gone.id, f"{member.id}\u0663", "\u0663", 2**31):
        response = await admin_client.get("/meetings/now", params={"with": with_id})
        assert response.status_code == 200
        assert 'name="invitee" value=' not in response.text, with_id


async def test_a_join_link_redirects_to_the_room_for_guests_too(
    admin_client: PortalClient,
    new_client: object,
    db: Database,
    settings: Settings,
    admin: User,
    member: User,
) -> None:
    await admin_client.post(
        "/meetings/start", {"emails": "guest@example.org", "request_key": "join-key-123"}
    )
    async with db.session(company_id=UNSCOPED) as session:
        invitee = (await session.execute(select(MeetingInvitee))).scalar_one()
    guest: PortalClient = new_client()  # type: ignore[operator]
    response = await guest.get(f"/join/{invitee.join_token}")
    assert response.status_code == 303
    assert response.headers["location"] == jitsi_room_url(settings, admin)
    assert (await guest.get("/join/not-a-real-token")).status_code == 404
    # The public page commits the click itself.
    assert await joins(db) == 1


async def test_an_old_join_link_says_the_meeting_ended(
    admin_client: PortalClient, new_client: object, db: Database, member: User
) -> None:
    await admin_client.post(
        "/meetings/start", {"invitee": member.id, "request_key": "old-meeting-key"}
    )
    async with db.session(company_id=UNSCOPED, write=True) as session:
        meeting = (await session.execute(select(Meeting))).scalar_one()
        invitee = (await session.execute(select(MeetingInvitee))).scalar_one()
        meeting.started_at = meeting.started_at.replace(year=meeting.started_at.year - 1)
        invitee.opens_at = meeting.started_at
        invitee.closes_at = meeting.started_at + dt.timedelta(hours=12)
        await session.commit()
    guest: PortalClient = new_client()  # type: ignore[operator]
    response = await guest.get(f"/join/{invitee.join_token}")
    assert response.status_code == 410
    assert "This meeting has ended" in response.text and "Ada Admin" in response.text
    assert await joins(db) == 0


async def test_a_join_link_before_its_window_says_when_it_opens(
    admin_client: PortalClient, new_client: object, db: Database, member: User
) -> None:
    await admin_client.post(
        "/meetings/start", {"invitee": member.id, "request_key": "early-meeting-key"}
    )
    opens_at = dt.datetime(2099, 5, 6, 14, 45, tzinfo=dt.UTC)
    async with db.session(company_id=UNSCOPED, write=True) as session:
        invitee = (await session.execute(select(MeetingInvitee))).scalar_one()
        # A calendar event's link: open 15 minutes before it starts, closed at its end.
        invitee.opens_at = opens_at
        invitee.closes_at = opens_at + dt.timedelta(minutes=75)
        await session.commit()
    guest: PortalClient = new_client()  # type: ignore[operator]
    response = await guest.get(f"/join/{invitee.join_token}")
    assert response.status_code == 403
    assert "This meeting is not open yet" in response.text
    assert "06 May 2099 at 14:45 UTC" in response.text and "Ada Admin" in response.text
    assert await joins(db) == 0
    async with db.session(company_id=UNSCOPED) as session:
        stored = await session.get(MeetingInvitee, invitee.id)
    assert stored is not None and stored.first_joined_at is None


async def test_history_shows_the_hosts_meetings(
    admin_client: PortalClient, db: Database, member: User
) -> None:
    empty = await admin_client.get("/meetings")
    assert "You haven't started a meeting yet" in empty.text
    await admin_client.post(
        "/meetings/start",
        {"invitee": member.id, "message": "Standup?", "request_key": "history-key-1"},
    )
    page = await admin_client.get("/meetings")
    assert "Bob Member" in page.text and "Standup?" in page.text and "not joined" in page.text
    fragment = await admin_client.get("/meetings?page=1", headers=HTMX)
    assert "<html" not in fragment.text and 'class="person-link"' in fragment.text
    async with db.session(company_id=UNSCOPED) as session:
        assert (await session.execute(select(func.count()).select_from(Meeting))).scalar() == 1


async def test_a_cached_card_leaves_the_key_to_the_page_but_a_profile_has_one(
    admin_client: PortalClient, member: User
) -> None:
    card = await admin_client.get(f"/people/{member.id}/card", headers=HTMX)
    assert 'name="request_key" value=""' in card.text
    profile = await admin_client.get(f"/people/{member.id}")
    assert 'name="request_key" value=""' not in profile.text
    assert 'name="request_key" value="' in profile.text


async def test_link_previews_and_repeated_clicks_are_not_joins(
    admin_client: PortalClient, new_client: object, db: Database, settings: Settings, admin: User
) -> None:
    await admin_client.post(
        "/meetings/start", {"emails": "guest@example.org", "request_key": "preview-key-123"}
    )
    async with db.session(company_id=UNSCOPED) as session:
        invitee = (await session.execute(select(MeetingInvitee))).scalar_one()
    link = f"/join/{invitee.join_token}"
    guest: PortalClient = new_client()  # type: ignore[operator]
    for agent in ("Slackbot-LinkExpanding 1.0", "Mozilla/5.0 (compatible; Googlebot/2.1)"):
        preview = await guest.get(link, headers={"User-Agent": agent})
        assert preview.status_code == 303
    assert (await guest.http.head(link)).status_code == 303
    assert await joins(db) == 0
    browser = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Chrome/126.0 Safari/537.36"}
    for _ in range(2):
        response = await guest.get(link, headers=browser)
        assert response.headers["location"] == jitsi_room_url(settings, admin)
    assert await joins(db) == 1
