"""The emailed set-password link: real, signed, single-use and expiring."""

from __future__ import annotations

import dataclasses
import re
import time

import httpx
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from sqlalchemy import select

from portal.accounts.models import Company, User
from portal.accounts.tokens import SALT
from portal.app import create_app
from portal.db import Database
from portal.mail.models import OutboxMessage
from portal.settings import Settings
from tests.conftest import PortalClient, make_user


class _SignedLongAgo(TimestampSigner):
    """Signs as if 73 hours ago: one hour past the link's 72-hour limit."""

    def get_timestamp(self) -> int:
        return int(time.time()) - 73 * 3600


LINK = re.compile(r"http://testserver(/set-password/[^\s\"<]+)")


async def _last_link(db: Database, company: Company) -> str:
    async with db.session(company_id=company.id) as session:
        mail = (
            (await session.execute(select(OutboxMessage).order_by(OutboxMessage.id.desc())))
            .scalars()
            .first()
        )
    assert mail is not None
    match = LINK.search(mail.body_text)
    assert match
    return match.group(1)


async def test_invited_person_sets_a_password_once_and_is_signed_in(
    admin_client: PortalClient, new_client, db: Database, acme: Company
) -> None:
    await admin_client.post(
        "/setup/users/new",
        {"display_name": "Nina New", "email": "nina@acme.example", "time_zone": "UTC"},
    )
    path = await _last_link(db, acme)
    nina = new_client()
    page = await nina.get(path)
    assert page.status_code == 200 and "nina@acme.example" in page.text
    weak = await nina.post(path, {"new_password": "12345678", "confirm_password": "12345678"})
    assert weak.status_code == 400 and "most common" in weak.text
    done = await nina.post(
        path, {"new_password": "nina's own phrase", "confirm_password": "nina's own phrase"}
    )
    assert done.status_code == 303
    assert "Your password is set." in (await nina.get("/people")).text
    again = await new_client().get(path)
    assert again.status_code == 400 and "already been used" in again.text
    await new_client().sign_in("nina@acme.example", "nina's own phrase")


async def test_tampered_and_expired_links_are_refused(
    client: PortalClient, db: Database, acme: Company, settings: Settings
) -> None:
    user = await make_user(db, acme, "late@acme.example", password=None)
    tampered = await client.get("/set-password/not-a-real-token")
    assert tampered.status_code == 400 and "not valid" in tampered.text
    expired = URLSafeTimedSerializer(
        str(settings.secret_key), salt=SALT, signer=_SignedLongAgo
    ).dumps([user.id, user.company_id, "x"])
    response = await client.get(f"/set-password/{expired}")
    assert response.status_code == 400 and "This link has expired." in response.text


async def test_forgot_password_sends_a_reset_link_without_telling_who_exists(
    client: PortalClient, member: User, db: Database, acme: Company
) -> None:
    for email in (member.email, "stranger@acme.example"):
        response = await client.post("/forgot-password", {"email": email})
        assert response.status_code == 303
        page = await client.get(response.headers["location"])
        assert "If that address belongs to an active account" in page.text
    path = await _last_link(db, acme)
    assert (
        await client.post(
            path, {"new_password": "brand new phrase", "confirm_password": "brand new phrase"}
        )
    ).status_code == 303
    # Asking again at once sends nothing more: the inbox is not a target for floods.
    await client.post("/signout")
    await client.post("/forgot-password", {"email": member.email})
    async with db.session(company_id=acme.id) as session:
        count = len((await session.execute(select(OutboxMessage))).scalars().all())
    assert count == 1


async def test_a_link_sent_to_a_mistyped_address_stops_working_once_it_is_corrected(
    admin_client: PortalClient, new_client, db: Database, acme: Company
) -> None:
    person = {"display_name": "Nina New", "email": "nina@acme.exmaple", "time_zone": "UTC"}
    await admin_client.post("/setup/users/new", person)
    typo_link = await _last_link(db, acme)
    async with db.session(company_id=acme.id) as session:
        nina = (
            await session.execute(select(User).where(User.email == "nina@acme.exmaple"))
        ).scalar_one()
    fixed = await admin_client.post(
        f"/setup/users/{nina.id}", {**person, "email": "nina@acme.example", "role": "member"}
    )
    assert fixed.status_code == 303, fixed.text
    stranger = new_client()
    page = await stranger.get(typo_link)
    assert page.status_code == 400 and "no longer valid" in page.text
    taken = await stranger.post(
        typo_link,
        {"new_password": "a stranger's phrase", "confirm_password": "a stranger's phrase"},
    )
    assert taken.status_code == 400
    await admin_client.post(f"/setup/users/{nina.id}/resend")
    assert (await new_client().get(await _last_link(db, acme))).status_code == 200


async def test_another_host_is_refused_and_never_named_in_a_link(
    client: PortalClient, member: User, db: Database, acme: Company
) -> None:
    evil = {"Host": "evil.example"}
    for path in ("/signin", "/people", "/set-password/x", "/join/abc"):
        response = await client.http.get(path, headers=evil)
        assert response.status_code == 400, path
        assert "evil.example" not in response.headers.get("location", "")
    token = await client.csrf()
    asked = await client.http.post(
        "/forgot-password", data={"csrf_token": token, "email": member.email}, headers=evil
    )
    assert asked.status_code == 400
    await client.post("/forgot-password", {"email": member.email})
    async with db.session(company_id=acme.id) as session:
        (mail,) = (await session.execute(select(OutboxMessage))).scalars().all()
    assert "evil.example" not in mail.body_text + mail.body_html
    assert "http://testserver/set-password/" in mail.body_text


async def test_another_name_of_this_machine_moves_to_the_base_url(
    settings: Settings, db: Database
) -> None:
    app = create_app(dataclasses.replace(settings, base_url="http://127.0.0.1:8000"))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost:8000") as http:
        moved = await http.get("/signin?next=%2Fpeople")
        assert moved.status_code == 307
        assert moved.headers["location"] == "http://127.0.0.1:8000/signin?next=%2Fpeople"
        page = await http.get("/signin", headers={"Host": "127.0.0.1:8000"})
        assert page.status_code == 200
        assert 'action="http://127.0.0.1:8000/signin' in page.text
        assert "localhost" not in page.text
    await app.state.db.dispose()
