"""Each person's side of conferencing (portal.conferencing.people): whom a connection serves,
where a person hosts, their own username and password (against the GoTo simulator), and a
host's authorization of the portal, with a frozen clock."""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from collections.abc import Iterator

import pytest
from dateutil.relativedelta import relativedelta
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from sqlalchemy import func, select

from portal.accounts.models import Company, User
from portal.conferencing import people, secrets
from portal.conferencing.interfaces import HostTokens
from portal.conferencing.models import (
    CHOSEN,
    DEPARTMENTS,
    LOGIN_OK,
    ConferencingChoice,
    ConferencingConnection,
    ConferencingLogin,
)
from portal.conferencing.providers import base
from portal.conferencing.providers.base import RetryPolicy
from portal.db import Database
from portal.forms import FormErrors
from portal.settings import Settings
from tests.conferencing.conftest import serve
from tests.conferencing.factories import GOTO, WEBEX, ZOOM, add_connection
from tests.conferencing.goto_simulator import GoToAccount, goto_app, goto_endpoints
from tests.conferencing.webex_simulator import WebexAccount, webex_app, webex_endpoints
from tests.conftest import make_company, make_user

BOB_GOTO = ("bob.goto", "goto pass 1")
NOW = dt.datetime(2026, 3, 31, 12, 0, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """A provider that is down is tried again at once: the tests check what follows."""
    monkeypatch.setattr(base, "DEFAULT_RETRY", RetryPolicy(2, 0.01, 0.01, 0, 0.01))


@pytest.fixture
def goto() -> GoToAccount:
    account = GoToAccount(GOTO["client_id"], GOTO["client_secret"])
    account.add_organizer(*BOB_GOTO, "bob@goto.example", "Bob", "Member")
    return account


@pytest.fixture
def webex() -> WebexAccount:
    return WebexAccount(WEBEX["client_id"], WEBEX["client_secret"])


@pytest.fixture
def settings(settings: Settings, goto: GoToAccount, webex: WebexAccount) -> Iterator[Settings]:
    with serve(goto_app(goto)) as goto_url, serve(webex_app(webex)) as webex_url:
        endpoints = {**goto_endpoints(goto_url), **webex_endpoints(webex_url)}
        yield dataclasses.replace(settings, provider_endpoints=endpoints)


@pytest.fixture
def frozen(monkeypatch: pytest.MonkeyPatch) -> list[dt.datetime]:
    """people's clock, moved by the test: now[0]."""
    now = [NOW]
    monkeypatch.setattr(people, "utcnow", lambda: now[0])
    return now


async def _serving(db: Database, person: User) -> list[str]:
    async with db.session(company_id=person.company_id) as session:
        return [connection.name for connection in await people.serving(session, person)]


async def test_a_connection_serves_everyone_some_departments_or_people_chosen_by_hand(
    db: Database, settings: Settings, acme: Company, admin: User, member: User
) -> None:
    carol = await make_user(db, acme, "carol@acme.example", department="Engineering")
    await add_connection(db, settings, acme, "zoom", ZOOM, name="Zoom for all")
    await add_connection(
        db,
        settings,
        acme,
        "goto",
        GOTO,
        name="GoTo for Sales",
        serves=DEPARTMENTS,
        departments=["Sales"],
    )
    await add_connection(
        db, settings, acme, "webex", WEBEX, name="Webex for Carol", serves=CHOSEN, members=[carol]
    )
    assert await _serving(db, member) == ["Zoom for all", "GoTo for Sales"]
    assert await _serving(db, carol) == ["Zoom for all", "Webex for Carol"]
    assert await _serving(db, admin) == ["Zoom for all"]
    # Someone not stored yet has no id to be chosen by: served by nothing.
    unsaved = User(company_id=acme.id or 0, email="new@acme.example", display_name="New")
    assert await _serving(db, unsaved) == []


async def test_a_person_hosts_on_the_one_connection_or_the_one_they_choose(
    db: Database, settings: Settings, acme: Company, member: User
) -> None:
    async with db.session(company_id=acme.id) as session:
        nowhere = await people.hosting(session, member)
    assert nowhere.connection is None and not nowhere.choose  # Jitsi Meet
    zoom = await add_connection(db, settings, acme, "zoom", ZOOM)
    async with db.session(company_id=acme.id) as session:
        assert (await people.hosting(session, member)).connection == zoom
    goto = await add_connection(db, settings, acme, "goto", GOTO)
    async with db.session(company_id=acme.id) as session:
        undecided = await people.hosting(session, member)
    assert undecided.connection is None and undecided.choose
    assert [c.id for c in undecided.serving] == [zoom.id, goto.id]

    async with db.transaction(company_id=acme.id) as session:
        await people.choose(session, member, goto.id or 0)
    async with db.transaction(company_id=acme.id) as session:
        await people.choose(session, member, zoom.id or 0)  # changed: one choice, updated
    async with db.session(company_id=acme.id) as session:
        assert (await people.hosting(session, member)).connection == zoom
        count = select(func.count()).select_from(ConferencingChoice)
        assert (await session.execute(count)).scalar_one() == 1


async def test_a_choice_is_one_of_the_connections_serving_the_person(
    db: Database, settings: Settings, acme: Company, member: User
) -> None:
    await add_connection(db, settings, acme, "zoom", ZOOM)
    sales_only = await add_connection(
        db, settings, acme, "goto", GOTO, serves=DEPARTMENTS, departments=["Support"]
    )
    globex = await make_company(db, "Globex")
    theirs = await add_connection(db, settings, globex, "zoom", ZOOM)
    for connection_id in (sales_only.id or 0, theirs.id or 0, 0):
        async with db.session(company_id=acme.id, write=True) as session:
            with pytest.raises(FormErrors) as refused:
                await people.choose(session, member, connection_id)
        assert refused.value.errors == {"default": "Choose one of the accounts listed here."}


async def _goto_connection(
    db: Database, settings: Settings, company: Company
) -> ConferencingConnection:
    return await add_connection(db, settings, company, "goto", GOTO)


async def _logins(db: Database, company: Company) -> list[ConferencingLogin]:
    async with db.session(company_id=company.id) as session:
        return list((await session.execute(select(ConferencingLogin))).scalars())


async def test_a_username_and_password_are_checked_with_the_provider_and_kept_encrypted(
    db: Database, settings: Settings, acme: Company, member: User, goto: GoToAccount
) -> None:
    connection = await _goto_connection(db, settings, acme)
    form = {"username": f"  {BOB_GOTO[0]} ", "password": BOB_GOTO[1]}
    async with db.transaction(company_id=acme.id) as session:
        await people.save_password(session, settings, connection, member, form)
    (login,) = await _logins(db, acme)
    assert (login.username, login.email, login.name) == (
        BOB_GOTO[0],
        "bob@goto.example",
        "Bob Member",
    )
    assert login.state == LOGIN_OK and login.user_id == member.id and login.provider_user_id
    assert BOB_GOTO[1] not in login.secret
    assert people.password_of(settings, login) == BOB_GOTO[1]
    # The token is bound to the company: copied to another's row, it reads as nothing.
    with pytest.raises(secrets.UnreadableSecrets):
        secrets.decrypt(settings, (acme.id or 0) + 1, login.secret)
    sent = [r for r in goto.sent if r.path == "/oauth/token"][-1].form()
    assert sent == {"grant_type": "password", "username": BOB_GOTO[0], "password": BOB_GOTO[1]}

    # Saved again (a new password): the same row, updated.
    goto.change_password(BOB_GOTO[0], "goto pass 2")
    async with db.transaction(company_id=acme.id) as session:
        await people.save_password(
            session, settings, connection, member, {**form, "password": "goto pass 2"}
        )
    (again,) = await _logins(db, acme)
    assert again.id == login.id and people.password_of(settings, again) == "goto pass 2"


@pytest.mark.parametrize(
    ("form", "errors"),
    [
        ({"username": "", "password": ""}, {"username", "password"}),
        ({"username": BOB_GOTO[0], "password": "wrong"}, {"password"}),
        ({"username": "x" * 300, "password": "p"}, {"username"}),
        ({"username": "bob", "password": "p\x07"}, {"password"}),
        ({"username": "bob", "password": "p" * 201}, {"password"}),
    ],
)
async def test_a_refused_username_or_password_saves_nothing(
    db: Database,
    settings: Settings,
    acme: Company,
    member: User,
    form: dict[str, str],
    errors: set[str],
) -> None:
    connection = await _goto_connection(db, settings, acme)
    async with db.session(company_id=acme.id, write=True) as session:
        with pytest.raises(FormErrors) as refused:
            await people.save_password(session, settings, connection, member, form)
    assert set(refused.value.errors) == errors
    assert await _logins(db, acme) == []


async def test_a_provider_that_is_down_saves_nothing_and_says_so(
    db: Database, settings: Settings, acme: Company, member: User, goto: GoToAccount
) -> None:
    connection = await _goto_connection(db, settings, acme)
    goto.fail_next(503, count=5)
    form = {"username": BOB_GOTO[0], "password": BOB_GOTO[1]}
    async with db.session(company_id=acme.id, write=True) as session:
        with pytest.raises(FormErrors) as refused:
            await people.save_password(session, settings, connection, member, form)
    assert set(refused.value.errors) == {"form"}
    assert refused.value.errors["form"].endswith("Nothing was saved.")
    assert await _logins(db, acme) == []


async def test_an_automatic_provider_takes_no_password(
    db: Database, settings: Settings, acme: Company, member: User
) -> None:
    zoom = await add_connection(db, settings, acme, "zoom", ZOOM)
    async with db.session(company_id=acme.id, write=True) as session:
        with pytest.raises(FormErrors) as refused:
            await people.save_password(session, settings, zoom, member, {"username": "b"})
    assert refused.value.errors == {"form": "Zoom accounts are linked automatically."}


async def test_forgetting_a_login_removes_only_the_persons_own(
    db: Database, settings: Settings, acme: Company, admin: User, member: User
) -> None:
    connection = await _goto_connection(db, settings, acme)
    form = {"username": BOB_GOTO[0], "password": BOB_GOTO[1]}
    for person in (admin, member):
        async with db.transaction(company_id=acme.id) as session:
            await people.save_password(session, settings, connection, person, form)
    async with db.transaction(company_id=acme.id) as session:
        await people.forget_login(session, connection, member)
    assert [login.user_id for login in await _logins(db, acme)] == [admin.id]


# Host authorization (Webex in SSO mode).


def _login(until: dt.datetime | None, *, with_tokens: bool = True) -> ConferencingLogin:
    return ConferencingLogin(
        company_id=1,
        connection_id=1,
        user_id=1,
        secret="encrypted tokens" if with_tokens else "",
        host_authorized_until=until,
    )


def test_an_authorization_holds_until_its_end_and_not_at_it() -> None:
    until = NOW + relativedelta(months=3)
    assert people.host_authorized(_login(until), until - dt.timedelta(microseconds=1))
    assert not people.host_authorized(_login(until), until)
    assert not people.host_authorized(_login(until), until + dt.timedelta(days=1))
    assert not people.host_authorized(_login(None), NOW)
    assert not people.host_authorized(_login(until, with_tokens=False), NOW)  # tokens dropped
    assert not people.host_authorized(None, NOW)


async def test_an_authorization_lasts_3_months_and_each_hosted_session_extends_it(
    db: Database,
    settings: Settings,
    acme: Company,
    member: User,
    webex: WebexAccount,
    frozen: list[dt.datetime],
) -> None:
    connection = await add_connection(
        db, settings, acme, "webex", {**WEBEX, "refresh_token": webex.admin_refresh_token}
    )
    bob = webex.add_person(member.email, "Bob Member")
    host_tokens = HostTokens("expired", webex.grant(bob["id"]), NOW - dt.timedelta(days=1))
    async with db.transaction(company_id=acme.id) as session:
        login = await people.keep_authorization(session, settings, connection, member, host_tokens)
    assert login.host_authorized_until == dt.datetime(2026, 6, 30, 12, 0, tzinfo=dt.UTC)
    frozen[0] = dt.datetime(2026, 6, 30, 11, 59, 59, tzinfo=dt.UTC)
    assert people.host_authorized(login)
    frozen[0] = dt.datetime(2026, 6, 30, 12, 0, tzinfo=dt.UTC)
    assert not people.host_authorized(login)

    frozen[0] = dt.datetime(2026, 5, 1, 9, 0, tzinfo=dt.UTC)
    async with db.transaction(company_id=acme.id) as session:
        stored = await people.login_of(session, connection, member)
        assert stored is not None
        room = await people.hosted_room(session, settings, connection, stored)
    assert room == webex.rooms[bob["id"]]
    async with db.session(company_id=acme.id) as session:
        extended = await people.login_of(session, connection, member)
    assert extended is not None
    assert extended.host_authorized_until == dt.datetime(2026, 8, 1, 9, 0, tzinfo=dt.UTC)


def _state_of(settings: Settings, payload: object, *, age: int = 0) -> str:
    """A state signed like the portal's, `age` seconds old."""

    class Signed(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - age

    serializer = URLSafeTimedSerializer(
        str(settings.secret_key), salt=people.STATE_SALT, signer=Signed
    )
    return serializer.dumps(payload)


async def test_a_state_is_good_for_its_person_in_its_browser_for_a_while(
    db: Database, settings: Settings, acme: Company, admin: User, member: User
) -> None:
    connection = await add_connection(db, settings, acme, "webex", WEBEX)
    state, nonce = people.authorization_state(settings, connection, member)
    assert people.read_state(settings, state, member, nonce) == connection.id

    def refused(state: str, person: User = member, nonce: str | None = nonce) -> str:
        with pytest.raises(people.AuthorizationFailed) as failed:
            people.read_state(settings, state, person, nonce)
        return str(failed.value)

    payload = {"c": member.company_id, "u": member.id, "k": connection.id, "n": nonce}
    old = _state_of(settings, payload, age=people.STATE_MAX_AGE + 5)
    assert "took too long" in refused(old)
    assert people.read_state(settings, _state_of(settings, payload, age=60), member, nonce)
    # Replayed: its nonce left the session with its first return; or from another browser.
    assert "already used" in refused(state, nonce=None)
    assert "already used" in refused(state, nonce="another-browsers-nonce")
    # Another person, of this company or another, cannot use it.
    assert "already used" in refused(state, person=admin)
    globex = await make_company(db, "Globex")
    outsider = await make_user(db, globex, "eve@globex.example")
    outsider.id = member.id  # the same number in another company is still someone else
    assert "already used" in refused(state, person=outsider)
    # Tampered with, or signed for something else.
    assert refused(state[:-2] + "xx") == "This authorization link is not valid."
    assert (
        refused(_state_of(settings, {**payload, "k": "1"}))
        == "This authorization link is not valid."
    )
    assert refused(_state_of(settings, ["not", "a", "dict"])).startswith("This authorization")
