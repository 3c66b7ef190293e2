"""Signing in and out: messages, the throttle, and sessions that end when they should."""

from __future__ import annotations

from sqlalchemy import select

from portal.accounts.models import Company, LoginThrottle, User
from portal.db import UNSCOPED, Database
from tests.conftest import PASSWORD, PortalClient, make_company, make_user


async def test_sign_in_redirects_home_and_shows_the_top_bar(
    client: PortalClient, admin: User
) -> None:
    response = await client.sign_in("  ADA@Acme.Example ")
    assert response.headers["location"] == "http://testserver/"
    page = await client.get("/people")
    assert page.status_code == 200
    assert "Ada Admin" in page.text
    assert 'aria-label="Company Setup"' in page.text
    assert "Account Settings" in page.text and "Sign out" in page.text
    assert ">Create</summary>" in page.text and ">Meet Now</a>" in page.text


async def test_member_sees_no_gear_and_cannot_open_company_setup(
    client: PortalClient, member: User
) -> None:
    await client.sign_in(member.email)
    page = await client.get("/people")
    assert 'aria-label="Company Setup"' not in page.text
    response = await client.get("/setup/users")
    assert response.status_code == 403
    assert "Only company admins" in response.text


async def test_wrong_password_and_unknown_email_get_the_same_clear_message(
    client: PortalClient, member: User
) -> None:
    wrong = await client.post("/signin", {"email": member.email, "password": "not it at all"})
    unknown = await client.post(
        "/signin", {"email": "nobody@acme.example", "password": "not it at all"}
    )
    for response in (wrong, unknown):
        assert response.status_code == 400
        assert "Wrong email or password." in response.text
    assert (await client.get("/people")).status_code == 303


async def test_malformed_or_empty_email_is_refused_with_a_message(
    client: PortalClient, member: User
) -> None:
    empty = await client.post("/signin", {"email": "", "password": PASSWORD})
    assert "Enter an email address." in empty.text
    malformed = await client.post("/signin", {"email": "bob@", "password": PASSWORD})
    assert "is not a valid email address" in malformed.text


async def test_five_failures_in_a_row_slow_further_tries(
    client: PortalClient, member: User, db: Database
) -> None:
    for attempt in range(1, 6):
        response = await client.post(
            "/signin", {"email": member.email, "password": f"wrong-{attempt}"}
        )
        assert response.status_code == 400
    assert "Too many failed attempts: wait 30 seconds" in response.text
    # Even the right password waits now, and says so.
    locked = await client.post("/signin", {"email": member.email, "password": PASSWORD})
    assert locked.status_code == 400
    assert "Too many failed sign-in attempts for bob@acme.example. Try again in" in locked.text
    async with db.session(company_id=UNSCOPED) as session:
        throttle = await session.get(LoginThrottle, member.email)
    assert throttle is not None and throttle.failures == 5


async def test_a_success_resets_the_failure_count(
    client: PortalClient, member: User, db: Database
) -> None:
    for _ in range(3):
        await client.post("/signin", {"email": member.email, "password": "wrong password"})
    await client.sign_in(member.email)
    async with db.session(company_id=UNSCOPED) as session:
        throttle = await session.get(LoginThrottle, member.email)
    assert throttle is not None and throttle.failures == 0


async def test_deactivated_person_is_told_so(
    client: PortalClient, db: Database, acme: Company
) -> None:
    user = await make_user(db, acme, "gone@acme.example")
    async with db.session(company_id=acme.id, write=True) as session:
        stored = await session.get(User, user.id)
        assert stored is not None
        stored.active = False
        await session.commit()
    response = await client.post("/signin", {"email": user.email, "password": PASSWORD})
    assert response.status_code == 400
    assert "This account has been deactivated" in response.text


async def test_sign_in_issues_a_fresh_session(client: PortalClient, member: User) -> None:
    await client.get("/signin")
    before = client.http.cookies.get("portal_session")
    await client.sign_in(member.email)
    after = client.http.cookies.get("portal_session")
    assert before and after and before != after
    assert client._token is None


async def test_sign_out_ends_every_copy_of_the_cookie(client: PortalClient, member: User) -> None:
    await client.sign_in(member.email)
    stolen = client.http.cookies.get("portal_session")
    response = await client.post("/signout")
    assert response.status_code == 303
    client.http.cookies.set("portal_session", stolen or "")
    replay = await client.get("/people")
    assert replay.status_code == 303
    assert "/signin" in replay.headers["location"]


async def test_a_tampered_cookie_signs_nobody_in_and_says_why(
    client: PortalClient, member: User
) -> None:
    await client.sign_in(member.email)
    cookie = client.http.cookies.get("portal_session") or ""
    client.http.cookies.clear()
    client.http.cookies.set(
        "portal_session", cookie[:-4] + ("AAAA" if not cookie.endswith("AAAA") else "BBBB")
    )
    response = await client.get("/people")
    assert response.status_code == 303
    page = await client.get(response.headers["location"])
    assert "Your session was not valid; please sign in again." in page.text


async def test_next_parameter_returns_to_the_page_but_never_off_site(
    client: PortalClient, member: User
) -> None:
    response = await client.get("/setup/users?page=2")
    assert response.headers["location"].endswith("/signin?next=%2Fsetup%2Fusers%3Fpage%3D2")
    ok = await client.post(
        "/signin", {"email": member.email, "password": PASSWORD, "next": "/settings/profile"}
    )
    assert ok.headers["location"] == "/settings/profile"
    await client.post("/signout")
    evil = await client.post(
        "/signin", {"email": member.email, "password": PASSWORD, "next": "//evil.example/"}
    )
    assert evil.headers["location"] == "http://testserver/"


async def test_same_address_in_two_companies_asks_which_one(
    client: PortalClient, db: Database, acme: Company
) -> None:
    globex = await make_company(db, "Globex")
    await make_user(db, acme, "sam@example.com")
    other = await make_user(db, globex, "SAM@example.com")
    first = await client.post("/signin", {"email": "sam@example.com", "password": PASSWORD})
    assert first.status_code == 200
    assert "more than one company" in first.text and "Globex" in first.text
    chosen = await client.post(
        "/signin", {"email": "sam@example.com", "password": PASSWORD, "company_id": str(globex.id)}
    )
    assert chosen.status_code == 303
    page = await client.get("/people")
    assert "Globex" in page.text
    async with db.session(company_id=globex.id) as session:
        assert (await session.execute(select(User.email))).scalars().all() == [other.email]
