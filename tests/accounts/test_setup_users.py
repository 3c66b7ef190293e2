"""Company Setup > Users: adding, editing, deactivating and reactivating people."""

from __future__ import annotations

from sqlalchemy import func, select

from portal.accounts.models import Company, User
from portal.db import UNSCOPED, Database
from portal.mail.models import HELD, OutboxMessage
from tests.conftest import PortalClient, make_user

NEW_PERSON = {
    "display_name": "Carol Danvers",
    "email": "Carol@Acme.Example",
    "title": "Pilot",
    "department": "Operations",
    "phone": "+1 415 555 0101",
    "time_zone": "America/New_York",
    "role": "member",
}


async def _count(db: Database, model: type, company: Company) -> int:
    async with db.session(company_id=company.id) as session:
        return (await session.execute(select(func.count()).select_from(model))).scalar_one()


async def test_admin_adds_a_person_who_gets_a_set_password_email(
    admin_client: PortalClient, db: Database, acme: Company
) -> None:
    form = await admin_client.get("/setup/users/new")
    assert form.status_code == 200
    response = await admin_client.post("/setup/users/new", NEW_PERSON)
    assert response.status_code == 303
    person_page = await admin_client.get(response.headers["location"])
    assert "Carol Danvers is added" in person_page.text
    assert "has not set a password yet" in person_page.text
    listing = await admin_client.get("/setup/users")
    assert "Carol Danvers" in listing.text and "Invited" in listing.text
    async with db.session(company_id=acme.id) as session:
        carol = (
            await session.execute(select(User).where(User.email == "carol@acme.example"))
        ).scalar_one()
        mail = (await session.execute(select(OutboxMessage))).scalar_one()
    assert carol.password_hash is None and carol.time_zone == "America/New_York"
    assert mail.to_address == "carol@acme.example" and mail.status == HELD
    assert mail.subject == "Ada Admin added you to Acme on the portal"
    assert mail.reply_to == "ada@acme.example"
    assert "http://testserver/set-password/" in mail.body_text
    assert "http://testserver/set-password/" in mail.body_html


async def test_bad_input_gets_messages_and_writes_nothing(
    admin_client: PortalClient, db: Database, acme: Company, admin: User
) -> None:
    cases = [
        ({"email": ""}, "Enter an email address."),
        ({"email": "carol@@acme"}, "is not a valid email address"),
        ({"email": "ADA@acme.example"}, "already uses this email address"),
        ({"display_name": "x" * 101}, "Name can be at most 100 characters."),
        ({"display_name": "   "}, "Enter the name."),
        ({"time_zone": "Mars/Olympus"}, "is not a time zone we know"),
        ({"phone": "call me <maybe>"}, "Use digits, spaces"),
        ({"role": "owner"}, "Choose admin or member."),
    ]
    for change, message in cases:
        response = await admin_client.post("/setup/users/new", {**NEW_PERSON, **change})
        assert response.status_code == 400, change
        assert message in response.text.replace("&#34;", '"'), (change, response.text[:2000])
        assert "nothing was saved" in response.text
    assert await _count(db, User, acme) == 1
    assert await _count(db, OutboxMessage, acme) == 0


async def test_admin_edits_a_person(
    admin_client: PortalClient, db: Database, acme: Company, member: User
) -> None:
    page = await admin_client.get(f"/setup/users/{member.id}")
    assert "Bob Member" in page.text
    values = {**NEW_PERSON, "display_name": "Robert Member", "email": member.email}
    response = await admin_client.post(f"/setup/users/{member.id}", values)
    assert response.status_code == 303
    async with db.session(company_id=acme.id) as session:
        stored = await session.get(User, member.id)
    assert stored is not None and stored.display_name == "Robert Member" and stored.title == "Pilot"


async def test_deactivation_signs_the_person_out_and_reactivation_lets_them_back(
    admin_client: PortalClient, new_client, member: User
) -> None:
    bob = new_client()
    await bob.sign_in(member.email)
    assert (await bob.get("/people")).status_code == 200
    response = await admin_client.post(f"/setup/users/{member.id}/deactivate")
    assert response.status_code == 303
    assert (
        "deactivated and signed out" in (await admin_client.get(response.headers["location"])).text
    )
    kicked = await bob.get("/people")
    assert kicked.status_code == 303
    refused = await bob.post(
        "/signin", {"email": member.email, "password": "correct horse battery"}
    )
    assert "deactivated" in refused.text
    listing = await admin_client.get("/setup/users?status=inactive")
    assert "Bob Member" in listing.text
    await admin_client.post(f"/setup/users/{member.id}/reactivate")
    await bob.sign_in(member.email)


async def test_admin_cannot_deactivate_themselves_or_the_last_admin(
    admin_client: PortalClient, admin: User, member: User, db: Database, acme: Company
) -> None:
    response = await admin_client.post(f"/setup/users/{admin.id}/deactivate")
    page = await admin_client.get(response.headers["location"])
    assert "You can&#39;t deactivate yourself." in page.text
    demote = await admin_client.post(
        f"/setup/users/{admin.id}", {**NEW_PERSON, "email": admin.email, "role": "member"}
    )
    assert demote.status_code == 400
    assert "at least one active admin" in demote.text
    async with db.session(company_id=acme.id) as session:
        stored = await session.get(User, admin.id)
    assert stored is not None and stored.active and stored.is_admin


async def test_resend_link_queues_a_new_email(
    admin_client: PortalClient, db: Database, acme: Company
) -> None:
    invited = await make_user(db, acme, "new@acme.example", password=None)
    response = await admin_client.post(f"/setup/users/{invited.id}/resend")
    assert response.status_code == 303
    assert await _count(db, OutboxMessage, acme) == 1


async def test_user_list_searches_and_paginates(
    admin_client: PortalClient, db: Database, acme: Company
) -> None:
    for index in range(30):
        await make_user(
            db, acme, f"person{index:02d}@acme.example", name=f"Person {index:02d}", password=None
        )
    first = await admin_client.get("/setup/users")
    assert "1–25 of 31" in first.text and 'rel="next"' in first.text
    second = await admin_client.get("/setup/users?page=2")
    assert "26–31 of 31" in second.text
    beyond = await admin_client.get("/setup/users?page=99")
    assert "26–31 of 31" in beyond.text
    fragment = await admin_client.get("/setup/users?q=person 07", headers={"HX-Request": "true"})
    assert "Person 07" in fragment.text and "Person 08" not in fragment.text
    assert "<html" not in fragment.text
    assert "HX-Request" in fragment.headers["vary"]
    empty = await admin_client.get("/setup/users?q=zzz")
    assert "No one matches this filter." in empty.text


async def test_unscoped_sessions_must_say_so(db: Database) -> None:
    import pytest

    from portal.db import UnscopedQuery

    async with db.session(company_id=None) as session:
        with pytest.raises(UnscopedQuery):
            await session.execute(select(User))
    async with db.session(company_id=UNSCOPED) as session:
        await session.execute(select(User))


async def test_user_list_search_is_the_directorys_with_wildcards_taken_literally(
    admin_client: PortalClient, db: Database, acme: Company, admin: User
) -> None:
    await make_user(db, acme, "pat@acme.example", name="Pat 100% Sure", department="Sales")
    await make_user(db, acme, "under_score@acme.example", name="Uma Under")
    gone = await make_user(db, acme, "gone@acme.example", name="Gina Gone", title="Scribe")
    async with db.transaction(company_id=acme.id) as session:
        stored = await session.get(User, gone.id)
        assert stored is not None
        stored.active = False
    # "%" and "_" are characters to find, not wildcards that match everyone.
    percent = await admin_client.get("/setup/users?q=%25")
    assert "Pat 100% Sure" in percent.text and "Uma Under" not in percent.text
    underscore = await admin_client.get("/setup/users?q=_")
    assert "Uma Under" in underscore.text and "Pat 100% Sure" not in underscore.text
    # The directory's search finds titles too, and the admin's list also deactivated people.
    everyone = await admin_client.get("/setup/users?q=scribe")
    assert "Gina Gone" in everyone.text and "Deactivated" in everyone.text
    inactive = await admin_client.get("/setup/users?q=gina&status=inactive")
    assert "Gina Gone" in inactive.text
    active = await admin_client.get("/setup/users?q=gina&status=active")
    assert "Gina Gone" not in active.text and "No one matches this filter." in active.text
    directory = await admin_client.get("/people?q=gina")
    assert "Gina Gone" not in directory.text
