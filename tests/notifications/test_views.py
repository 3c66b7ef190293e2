"""The bell, its menu and the Notifications page, through the portal's routes."""

from __future__ import annotations

import re

from portal.accounts.models import Company, User
from portal.db import Database
from portal.notifications import services
from tests.conftest import PortalClient
from tests.notifications.conftest import make_notice

HTMX = {"HX-Request": "true"}


async def _unread(db: Database, user: User) -> int:
    async with db.session(company_id=user.company_id) as session:
        return await services.unread_count(session, user)


async def test_every_page_has_the_bell_and_the_live_stream(
    client: PortalClient, member: User
) -> None:
    await client.sign_in(member.email)
    page = await client.get("/people")
    assert 'id="notifications-bell"' in page.text
    assert 'aria-label="Notifications"' in page.text
    assert 'sse-connect="http://testserver/notifications/stream"' in page.text
    assert 'sse-swap="notice"' in page.text
    signed_out = await client.get("/signin")
    assert "notifications-bell" not in signed_out.text and "sse-connect" not in signed_out.text


async def test_the_page_lists_notices_escaped_with_their_actor_and_the_count(
    client: PortalClient, db: Database, admin: User, member: User
) -> None:
    await make_notice(db, member, "Ada <b>invites</b> you", actor=admin)
    await make_notice(db, member, "A second one")
    await client.sign_in(member.email)
    page = await client.get("/notifications")
    assert "<h1>Notifications</h1>" in page.text
    assert "Ada &lt;b&gt;invites&lt;/b&gt; you" in page.text and "<b>invites" not in page.text
    assert f'href="http://testserver/people/{admin.id}"' in page.text
    assert 'aria-label="Notifications, 2 unread"' in page.text
    assert "Mark all as read" in page.text


async def test_the_page_has_an_empty_state_and_pages(
    client: PortalClient, db: Database, member: User
) -> None:
    await client.sign_in(member.email)
    assert "No notifications yet." in (await client.get("/notifications")).text
    for number in range(services.PAGE_SIZE + 3):
        await make_notice(db, member, f"notice number {number}")
    second = (await client.get("/notifications?page=2")).text
    assert re.findall(r"notice number \d+", second) == [
        "notice number 2",
        "notice number 1",
        "notice number 0",
    ]
    assert 'rel="prev"' in second and f"of {services.PAGE_SIZE + 3}" in second


async def test_the_menu_shows_the_latest_notices(
    client: PortalClient, db: Database, member: User
) -> None:
    await make_notice(db, member, "Ada invites you to meet now")
    await client.sign_in(member.email)
    menu = await client.get("/notifications/menu", headers=HTMX)
    assert "Ada invites you to meet now" in menu.text and "Mark all as read" in menu.text
    assert "hx-swap-oob" not in menu.text
    assert "<html" not in menu.text


async def test_opening_a_notice_marks_it_read_and_follows_its_link(
    client: PortalClient, db: Database, member: User
) -> None:
    notice = await make_notice(db, member, url="/join/tok3n")
    await client.sign_in(member.email)
    response = await client.post(f"/notifications/{notice.id}/open")
    assert response.status_code == 303 and response.headers["location"] == "/join/tok3n"
    assert await _unread(db, member) == 0
    # From htmx: the page navigates itself (the CSP's form-action would stop a form's redirect
    # to a room on another site).
    response = await client.post(f"/notifications/{notice.id}/open", headers=HTMX)
    assert response.status_code == 204 and response.headers["HX-Redirect"] == "/join/tok3n"


async def test_another_persons_notice_cannot_be_opened(
    client: PortalClient, db: Database, admin: User, member: User
) -> None:
    theirs = await make_notice(db, admin)
    await client.sign_in(member.email)
    assert (await client.post(f"/notifications/{theirs.id}/open")).status_code == 404
    assert (await client.post("/notifications/999999/open")).status_code == 404
    assert (await client.post("/notifications/nope/open")).status_code == 404
    assert await _unread(db, admin) == 1


async def test_mark_all_as_read_from_the_page_and_from_the_menu(
    client: PortalClient, db: Database, member: User
) -> None:
    await make_notice(db, member)
    await client.sign_in(member.email)
    response = await client.post("/notifications/read-all")
    assert response.status_code == 303 and response.headers["location"].endswith("/notifications")
    assert "All your notifications are marked as read." in (await client.get("/notifications")).text
    assert await _unread(db, member) == 0

    await make_notice(db, member)
    menu = await client.post("/notifications/read-all", headers=HTMX)
    assert menu.status_code == 200 and "No notifications yet." not in menu.text
    assert "Mark all as read" not in menu.text
    # The bell comes along out of band, so it is right even without the live stream.
    assert 'hx-swap-oob="true"' in menu.text and 'aria-label="Notifications"' in menu.text
    assert await _unread(db, member) == 0


async def test_posts_need_the_csrf_token(
    client: PortalClient, db: Database, acme: Company, member: User
) -> None:
    notice = await make_notice(db, member)
    await client.sign_in(member.email)
    for path in (f"/notifications/{notice.id}/open", "/notifications/read-all"):
        response = await client.http.post(path, headers=HTMX)
        assert response.status_code == 403, path
        response = await client.http.post(path, data={"csrf_token": "0" * 64})
        assert response.status_code == 403, path
    assert await _unread(db, member) == 1


async def test_signed_out_people_are_sent_to_sign_in(client: PortalClient) -> None:
    for path in ("/notifications", "/notifications/menu", "/notifications/stream"):
        response = await client.http.get(path)
        assert response.status_code == 303 and "/signin" in response.headers["location"], path
