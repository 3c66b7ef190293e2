"""The emailed set-password link: real, signed, single-use and expiring."""

from __future__ import annotations

import re
import time

from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from sqlalchemy import select

from portal.accounts.models import Company, User
from portal.accounts.tokens import SALT
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
