"""Connecting a company's Zoom accounts: checked with the provider, secrets encrypted, nothing
saved on any error, each under a name of its own; the sitewide settings and each connection's
own, replacing credentials and removing a connection."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select, update
from sqlmodel import col
from starlette.datastructures import Secret

from portal.accounts.models import Company, User
from portal.conferencing import secrets
from portal.conferencing.connections import (
    MASK,
    auto_create,
    connect,
    connection_by_id,
    credentials,
    disconnect,
    join_before_host,
    masked_credentials,
    provisioning_method,
    replace_credentials,
    sitewide_settings,
)
from portal.conferencing.models import (
    CHOSEN,
    DEPARTMENTS,
    EVERYONE,
    ConferencingConnection,
    ConferencingLogin,
    ConferencingSettings,
    ConnectionMember,
    ProviderAccount,
    SyncRun,
)
from portal.conferencing.options import update_settings, update_sitewide
from portal.conferencing.sync import request_sync
from portal.db import Database
from portal.forms import FormErrors
from portal.settings import Settings, SettingsError
from tests.conferencing.conftest import ZOOM_CREDENTIALS
from tests.conferencing.zoom_simulator import ZoomAccount
from tests.conftest import make_company, make_user

FORM = ZOOM_CREDENTIALS
# A connection's settings form as the page sends it unchanged.
SETTINGS = {
    "name": "Zoom",
    "serves": EVERYONE,
    "auto_create": "",
    "provisioning": "create",
    "join_before_host": "",
    "sync_hour": "2",
}


async def _connections(db: Database, company: Company) -> list[ConferencingConnection]:
    async with db.session(company_id=company.id) as session:
        return list((await session.execute(select(ConferencingConnection))).scalars())


async def test_good_credentials_are_saved_with_the_secret_encrypted(
    db: Database, zoom_settings: Settings, acme: Company
) -> None:
    async with db.transaction(company_id=acme.id) as session:
        await connect(session, zoom_settings, acme.id or 0, "zoom", FORM)
    (saved,) = await _connections(db, acme)
    assert (saved.provider, saved.name, saved.serves) == ("zoom", "Zoom", EVERYONE)
    assert saved.auto_create is None and saved.join_before_host is None
    assert saved.public_credentials == {"account_id": "acct-1", "client_id": "client-1"}
    assert "s3cret-value" not in saved.secret_credentials
    assert credentials(zoom_settings, saved) == FORM
    assert masked_credentials(saved) == [
        ("Account ID", "acct-1"),
        ("Client ID", "client-1"),
        ("Client secret", MASK),
    ]


@pytest.mark.parametrize(
    ("form", "field", "words"),
    [
        ({}, "client_secret", "Enter the Client secret"),
        ({**FORM, "client_id": "  "}, "client_id", "Enter the Client ID"),
        ({**FORM, "client_secret": "two words"}, "client_secret", "single word"),
        ({**FORM, "client_id": "x" * 501}, "client_id", "single word"),
        ({**FORM, "account_id": "acct\x00"}, "account_id", "single word"),
    ],
)
async def test_empty_or_malformed_fields_get_a_message_each_and_the_provider_is_not_asked(
    db: Database,
    zoom_settings: Settings,
    zoom: ZoomAccount,
    acme: Company,
    form: dict[str, str],
    field: str,
    words: str,
) -> None:
    async with db.session(company_id=acme.id, write=True) as session:
        with pytest.raises(FormErrors) as raised:
            await connect(session, zoom_settings, acme.id or 0, "zoom", form)
    assert words in raised.value.errors[field]
    assert zoom.requests == []
    assert await _connections(db, acme) == []


@pytest.mark.parametrize(
    ("arrange", "form", "words"),
    [
        (lambda zoom: None, {**FORM, "client_secret": "wrong"}, "secret"),
        (lambda zoom: zoom.make_non_admin(), FORM, "admin"),
        (lambda zoom: zoom.fail_next(503, count=10), FORM, "try again"),
        (lambda zoom: None, {"client_id": "jwt-key", "client_secret": "jwt-secret"}, "JWT"),
    ],
    ids=["wrong-secret", "not-an-admin", "provider-down", "jwt-app"],
)
async def test_what_the_provider_refuses_is_said_plainly_and_nothing_is_saved(
    db: Database,
    zoom_settings: Settings,
    zoom: ZoomAccount,
    acme: Company,
    arrange: object,
    form: dict[str, str],
    words: str,
) -> None:
    arrange(zoom)  # type: ignore[operator]
    async with db.session(company_id=acme.id, write=True) as session:
        with pytest.raises(FormErrors) as raised:
            await connect(session, zoom_settings, acme.id or 0, "zoom", form)
    assert words.lower() in raised.value.errors["form"].lower()
    assert await _connections(db, acme) == []


@pytest.mark.parametrize("key", ["jitsi", "nope", ""])
async def test_a_provider_without_an_account_or_unknown_is_refused(
    db: Database, settings: Settings, acme: Company, key: str
) -> None:
    async with db.session(company_id=acme.id, write=True) as session:
        with pytest.raises(FormErrors) as raised:
            await connect(session, settings, acme.id or 0, key, FORM)
    assert "provider" in raised.value.errors


async def test_a_blank_secret_keeps_the_stored_one_when_credentials_are_replaced(
    db: Database, zoom_settings: Settings, zoom: ZoomAccount, acme: Company
) -> None:
    async with db.transaction(company_id=acme.id) as session:
        connected = await connect(session, zoom_settings, acme.id or 0, "zoom", FORM)
    zoom.client_id = "client-2"
    async with db.transaction(company_id=acme.id) as session:
        connection = await connection_by_id(session, connected.id or 0)
        assert connection is not None
        await replace_credentials(
            session,
            zoom_settings,
            connection,
            {**FORM, "client_id": "client-2", "client_secret": ""},
        )
    (saved,) = await _connections(db, acme)
    assert credentials(zoom_settings, saved) == {**FORM, "client_id": "client-2"}


async def test_replacing_with_credentials_the_provider_refuses_keeps_the_old_ones(
    db: Database, zoom_settings: Settings, acme: Company
) -> None:
    async with db.transaction(company_id=acme.id) as session:
        connected = await connect(session, zoom_settings, acme.id or 0, "zoom", FORM)
    async with db.session(company_id=acme.id, write=True) as session:
        connection = await connection_by_id(session, connected.id or 0)
        assert connection is not None
        with pytest.raises(FormErrors):
            await replace_credentials(
                session, zoom_settings, connection, {**FORM, "client_secret": "wrong"}
            )
    (saved,) = await _connections(db, acme)
    assert credentials(zoom_settings, saved) == FORM


async def test_a_second_connection_needs_a_name_of_its_own(
    db: Database, zoom_settings: Settings, zoom: ZoomAccount, acme: Company
) -> None:
    async with db.transaction(company_id=acme.id) as session:
        await connect(session, zoom_settings, acme.id or 0, "zoom", FORM)
    asked = len(zoom.requests)
    for name in ("", "  zoom ", "ZOOM"):
        async with db.session(company_id=acme.id, write=True) as session:
            with pytest.raises(FormErrors) as raised:
                await connect(session, zoom_settings, acme.id or 0, "zoom", {**FORM, "name": name})
        assert "Another connection is named" in raised.value.errors["name"]
    for name, words in [("x" * 81, "80 characters"), ("Zoom\x00", "one line")]:
        async with db.session(company_id=acme.id, write=True) as session:
            with pytest.raises(FormErrors) as raised:
                await connect(session, zoom_settings, acme.id or 0, "zoom", {**FORM, "name": name})
        assert words in raised.value.errors["name"]
    # A name refused is refused before the provider is asked.
    assert len(zoom.requests) == asked
    async with db.transaction(company_id=acme.id) as session:
        sales = {**FORM, "name": "  Zoom   for Sales "}
        await connect(session, zoom_settings, acme.id or 0, "zoom", sales)
    assert sorted(c.name for c in await _connections(db, acme)) == ["Zoom", "Zoom for Sales"]
    # Names are the company's own: another company may use the same.
    globex = await make_company(db, "Globex")
    async with db.transaction(company_id=globex.id) as session:
        await connect(session, zoom_settings, globex.id or 0, "zoom", FORM)


async def _zoom_connection(
    db: Database, settings: Settings, company: Company
) -> ConferencingConnection:
    async with db.transaction(company_id=company.id) as session:
        return await connect(session, settings, company.id or 0, "zoom", FORM)


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"sync_hour": "24"}, "sync_hour", "0 to 23"),
        ({"sync_hour": "２"}, "sync_hour", "0 to 23"),
        ({"provisioning": "nope"}, "provisioning", "from the list"),
        ({"provisioning": ""}, "provisioning", "from the list"),
        ({"auto_create": "maybe"}, "auto_create", "As sitewide"),
        ({"join_before_host": "yes"}, "join_before_host", "As sitewide"),
        ({"serves": "nobody"}, "serves", "whom"),
        ({"serves": DEPARTMENTS}, "departments", "at least one"),
        ({"name": ""}, None, ""),
        ({"name": "n" * 81}, "name", "80 characters"),
        ({"name": "ZOOM FOR SALES"}, "name", "Another connection is named"),
    ],
)
async def test_a_connections_settings_are_checked_and_nothing_is_half_written(
    db: Database,
    zoom_settings: Settings,
    acme: Company,
    change: dict[str, str],
    field: str | None,
    words: str,
) -> None:
    connection = await _zoom_connection(db, zoom_settings, acme)
    async with db.transaction(company_id=acme.id) as session:
        await connect(
            session, zoom_settings, acme.id or 0, "zoom", {**FORM, "name": "Zoom for Sales"}
        )
    # Every other field changed and valid: none of them may be kept when one is refused.
    form = {**SETTINGS, "sync_hour": "5", "auto_create": "on", "join_before_host": "off", **change}
    async with db.transaction(company_id=acme.id) as session:
        mine = await connection_by_id(session, connection.id or 0)
        assert mine is not None
        if field is None:
            # A blank name keeps the one the connection has.
            await update_settings(session, mine, form, [])
            assert mine.name == "Zoom"
            return
        with pytest.raises(FormErrors) as raised:
            await update_settings(session, mine, form, [])
    assert words in raised.value.errors[field]
    async with db.session(company_id=acme.id) as session:
        stored = await connection_by_id(session, connection.id or 0)
    assert stored is not None
    assert (stored.name, stored.sync_hour, stored.auto_create, stored.join_before_host) == (
        "Zoom",
        2,
        None,
        None,
    )


async def test_a_connections_settings_are_saved(
    db: Database, zoom_settings: Settings, acme: Company, member: User
) -> None:
    connection = await _zoom_connection(db, zoom_settings, acme)
    await make_user(db, acme, "sue@acme.example", department="Support")
    form = {
        **SETTINGS,
        "name": "Zoom for Sales and Support",
        "serves": DEPARTMENTS,
        "auto_create": "on",
        "provisioning": "autoCreate",
        "join_before_host": "off",
        "sync_hour": "23",
    }
    async with db.transaction(company_id=acme.id) as session:
        mine = await connection_by_id(session, connection.id or 0)
        assert mine is not None
        with pytest.raises(FormErrors) as raised:
            await update_settings(session, mine, form, ["Sales", "Marketing"])
        assert "from the list" in raised.value.errors["departments"]
        await update_settings(session, mine, form, ["Support", "Sales", "Sales"])
    (saved,) = await _connections(db, acme)
    assert (saved.name, saved.serves, saved.departments) == (
        "Zoom for Sales and Support",
        DEPARTMENTS,
        ["Sales", "Support"],
    )
    assert (saved.sync_hour, saved.auto_create, saved.provisioning) == (23, True, "autoCreate")
    assert saved.join_before_host is False
    # A department whose last person left stays choosable for the connection that has it.
    async with db.transaction(company_id=acme.id) as session:
        await session.execute(
            update(User).where(col(User.department) == "Support").values(active=False)
        )
        mine = await connection_by_id(session, connection.id or 0)
        assert mine is not None
        await update_settings(session, mine, {**form, "serves": CHOSEN}, ["Support"])
        assert (mine.serves, mine.departments) == (CHOSEN, ["Support"])


async def test_the_sitewide_settings_are_saved_from_their_checkboxes(
    db: Database, acme: Company
) -> None:
    async with db.session(company_id=acme.id) as session:
        defaults = await sitewide_settings(session, acme.id or 0)
    assert defaults.id is None and not defaults.auto_create and not defaults.require_account
    form = {"join_before_host": "on", "allow_jitsi_fallback": "on", "require_account": "on"}
    async with db.transaction(company_id=acme.id) as session:
        await update_sitewide(session, acme.id or 0, form)
    async with db.transaction(company_id=acme.id) as session:
        await update_sitewide(
            session, acme.id or 0, {**form, "auto_create": "on", "require_account": ""}
        )
    async with db.session(company_id=acme.id) as session:
        (stored,) = (await session.execute(select(ConferencingSettings))).scalars()
    assert (stored.auto_create, stored.join_before_host, stored.allow_jitsi_fallback) == (
        True,
        True,
        True,
    )
    assert not stored.require_account


async def test_two_admins_saving_the_sitewide_settings_first_at_once_make_one_row(
    db: Database, acme: Company
) -> None:
    async def save(form: dict[str, str]) -> None:
        async with db.session(company_id=acme.id, write=True) as session:
            await update_sitewide(session, acme.id or 0, form)
            await asyncio.sleep(0.2)  # the other's first save runs before this commits
            await session.commit()

    await asyncio.gather(save({"auto_create": "on"}), save({"join_before_host": "on"}))
    async with db.session(company_id=acme.id) as session:
        rows = list((await session.execute(select(ConferencingSettings))).scalars())
    assert len(rows) == 1


@pytest.mark.parametrize(
    ("sitewide", "own", "resolved"),
    [(False, None, False), (True, None, True), (True, False, False), (False, True, True)],
)
def test_a_connection_says_as_sitewide_or_its_own(
    sitewide: bool, own: bool | None, resolved: bool
) -> None:
    settings = ConferencingSettings(company_id=1, auto_create=sitewide, join_before_host=sitewide)
    connection = ConferencingConnection(
        company_id=1,
        name="Zoom",
        provider="zoom",
        secret_credentials="",
        auto_create=own,
        join_before_host=own,
    )
    assert auto_create(connection, settings) is resolved
    assert join_before_host(connection, settings) is resolved


def test_creation_takes_the_providers_first_way_until_one_is_chosen() -> None:
    zoom = ConferencingConnection(company_id=1, name="Zoom", provider="zoom", secret_credentials="")
    assert provisioning_method(zoom) == "create"
    zoom.provisioning = "ssoCreate"
    assert provisioning_method(zoom) == "ssoCreate"
    goto = ConferencingConnection(company_id=1, name="GoTo", provider="goto", secret_credentials="")
    assert provisioning_method(goto) == ""


async def test_disconnecting_removes_what_was_kept_for_that_connection_only(
    db: Database, zoom_settings: Settings, acme: Company, admin: User
) -> None:
    kept = (ProviderAccount, SyncRun, ConnectionMember, ConferencingLogin)
    connections = []
    for name in ("Zoom", "Zoom for Sales"):
        async with db.transaction(company_id=acme.id) as session:
            connection = await connect(
                session, zoom_settings, acme.id or 0, "zoom", {**FORM, "name": name}
            )
            ids = {"company_id": acme.id or 0, "connection_id": connection.id or 0}
            session.add_all(
                [
                    ProviderAccount(
                        **ids, provider_user_id="u1", status="active", user_id=admin.id
                    ),
                    ConnectionMember(**ids, user_id=admin.id or 0),
                    ConferencingLogin(**ids, user_id=admin.id or 0, username="ada"),
                ]
            )
            await request_sync(session, connection)
        connections.append(connection)
    async with db.transaction(company_id=acme.id) as session:
        connection = await connection_by_id(session, connections[0].id or 0)
        assert connection is not None
        await disconnect(session, connection)
    async with db.session(company_id=acme.id) as session:
        assert [c.name for c in await _connections(db, acme)] == ["Zoom for Sales"]
        for table in kept:
            rows = (await session.execute(select(table))).scalars().all()
            assert [row.connection_id for row in rows] == [connections[1].id], table


# Secrets at rest: rotation with MultiFernet.


def test_secrets_decrypt_after_a_new_key_is_put_first_and_rotate_to_it(
    settings: Settings,
) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    before = dataclasses.replace(settings, conferencing_keys=(Secret(old),))
    token = secrets.encrypt(before, 7, {"client_secret": "s"})
    both = dataclasses.replace(settings, conferencing_keys=(Secret(new), Secret(old)))
    assert secrets.decrypt(both, 7, token) == {"client_secret": "s"}
    rotated = secrets.rotate(both, token)
    after = dataclasses.replace(settings, conferencing_keys=(Secret(new),))
    assert secrets.decrypt(after, 7, rotated) == {"client_secret": "s"}
    with pytest.raises(secrets.UnreadableSecrets):
        secrets.decrypt(after, 7, token)


def test_without_keys_one_is_derived_from_the_secret_key(settings: Settings) -> None:
    token = secrets.encrypt(settings, 7, {"api_key": "k"})
    assert secrets.decrypt(settings, 7, token) == {"api_key": "k"}
    other = dataclasses.replace(settings, secret_key=Secret("another-secret-key-" * 3))
    with pytest.raises(secrets.UnreadableSecrets):
        secrets.decrypt(other, 7, token)


def test_a_token_cannot_be_moved_to_another_company(settings: Settings) -> None:
    token = secrets.encrypt(settings, 7, {"api_key": "k"})
    with pytest.raises(secrets.UnreadableSecrets) as raised:
        secrets.decrypt(settings, 8, token)
    assert "enter the credentials again" in str(raised.value)


def test_keys_and_provider_endpoints_come_from_the_environment() -> None:
    first, second = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    read = Settings.from_env(
        {
            "PORTAL_DATABASE_URL": "sqlite:///x.db",
            "PORTAL_SECRET_KEY": "k" * 40,
            "PORTAL_CONFERENCING_KEYS": f" {first} ,{second}",
            "PORTAL_ZOOM_API_URL": "http://127.0.0.1:9/v2/",
            "PORTAL_IMEET_API_URL": "https://imeet.example/api",
        }
    )
    assert [str(key) for key in read.conferencing_keys] == [first, second]
    assert dict(read.provider_endpoints) == {
        "zoom_api": "http://127.0.0.1:9/v2",
        "imeet_api": "https://imeet.example/api",
    }
    for name, value in [
        ("PORTAL_CONFERENCING_KEYS", "not-a-key"),
        ("PORTAL_ZOOM_OAUTH_URL", "ftp://zoom.example"),
    ]:
        with pytest.raises(SettingsError, match=name):
            Settings.from_env(
                {
                    "PORTAL_DATABASE_URL": "sqlite:///x.db",
                    "PORTAL_SECRET_KEY": "k" * 40,
                    name: value,
                }
            )


async def test_two_admins_connecting_at_once_make_one_connection_and_one_clear_refusal(
    db: Database, zoom_settings: Settings, acme: Company
) -> None:
    """Both check that no connection has the name before either commits: the second is
    refused plainly, not with a database error."""

    async def connect_and_hold() -> str:
        async with db.session(company_id=acme.id, write=True) as session:
            try:
                await connect(session, zoom_settings, acme.id or 0, "zoom", FORM)
            except FormErrors as error:
                return error.errors["name"]
            await asyncio.sleep(0.3)  # the other's check runs before this commits
            await session.commit()
            return "connected"

    answers = await asyncio.gather(connect_and_hold(), connect_and_hold())
    assert sorted(answers) == [
        "Another connection is named “Zoom”: choose another name.",
        "connected",
    ]
    assert len(await _connections(db, acme)) == 1
