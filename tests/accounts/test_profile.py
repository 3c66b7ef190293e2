"""Account Settings > Profile: a person edits themselves and changes their password."""

from __future__ import annotations

from portal.accounts.models import Company, User
from portal.db import Database
from tests.conftest import PASSWORD, PortalClient


async def _stored(db: Database, user: User) -> User:
    async with db.session(company_id=user.company_id) as session:
        stored = await session.get(User, user.id)
    assert stored is not None
    return stored


async def test_person_edits_their_profile(client: PortalClient, member: User, db: Database) -> None:
    await client.sign_in(member.email)
    page = await client.get("/settings/profile")
    assert page.status_code == 200 and "Bob Member" in page.text
    response = await client.post(
        "/settings/profile",
        {
            "display_name": "Bob  Builder",
            "title": "Builder",
            "phone": "+44 20 7946 0000",
            "time_zone": "Asia/Tokyo",
        },
    )
    assert response.status_code == 303
    stored = await _stored(db, member)
    assert (stored.display_name, stored.title, stored.time_zone) == (
        "Bob Builder",
        "Builder",
        "Asia/Tokyo",
    )
    assert "Your profile is saved." in (await client.get("/settings/profile")).text


async def test_profile_errors_are_shown_and_nothing_changes(
    client: PortalClient, member: User, db: Database
) -> None:
    await client.sign_in(member.email)
    response = await client.post(
        "/settings/profile",
        {"display_name": "", "title": "t" * 101, "phone": "", "time_zone": "Nowhere/City"},
    )
    assert response.status_code == 400
    assert "Enter the name." in response.text
    assert "Title can be at most 100 characters." in response.text
    assert "is not a time zone we know" in response.text
    assert (await _stored(db, member)).display_name == "Bob Member"


async def test_password_change_signs_out_other_browsers(
    client: PortalClient, new_client, member: User, db: Database
) -> None:
    other = new_client()
    await other.sign_in(member.email)
    await client.sign_in(member.email)
    new_password = "a much better passphrase"
    response = await client.post(
        "/settings/password",
        {
            "current_password": PASSWORD,
            "new_password": new_password,
            "confirm_password": new_password,
        },
    )
    assert response.status_code == 303
    assert (await client.get("/settings/profile")).status_code == 200
    assert (await other.get("/settings/profile")).status_code == 303
    await other.sign_in(member.email, new_password)


async def test_password_change_refusals(client: PortalClient, member: User, acme: Company) -> None:
    await client.sign_in(member.email)
    cases = [
        ({"current_password": "wrong one!"}, "Your current password is not right."),
        ({"new_password": "short", "confirm_password": "short"}, "Use at least 8 characters."),
        (
            {"new_password": "password123", "confirm_password": "password123"},
            "one of the most common",
        ),
        (
            {"new_password": "bob@acme.example", "confirm_password": "bob@acme.example"},
            "email address",
        ),
        ({"confirm_password": "something else"}, "The two passwords are not the same."),
    ]
    for change, message in cases:
        form = {
            "current_password": PASSWORD,
            "new_password": "a fine new passphrase",
            "confirm_password": "a fine new passphrase",
            **change,
        }
        response = await client.post("/settings/password", form)
        assert response.status_code == 400
        assert message in response.text, change
    await client.post("/signout")
    await client.sign_in(member.email, PASSWORD)
