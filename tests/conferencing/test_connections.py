"""Connecting a company's Zoom account: checked with the provider, secrets encrypted, nothing
saved on any error; options, replacing credentials and removing the connection."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select
from starlette.datastructures import Secret

from portal.accounts.models import Company, User
from portal.conferencing import secrets
from portal.conferencing.connections import (
    MASK,
    connect,
    connection_of,
    credentials,
    disconnect,
    masked_credentials,
    replace_credentials,
    update_options,
)
from portal.conferencing.models import ConferencingConnection, ProviderAccount, SyncRun
from portal.conferencing.sync import request_sync
from portal.db import Database
from portal.forms import FormErrors
from portal.settings import Settings, SettingsError
from tests.conferencing.conftest import ZOOM_CREDENTIALS
from tests.conferencing.zoom_simulator import ZoomAccount

FORM = ZOOM_CREDENTIALS


async def _connections(db: Database, company: Company) -> list[ConferencingConnection]:
    async with db.session(company_id=company.id) as session:
        return list((await session.execute(select(ConferencingConnection))).scalars())


async def test_good_credentials_are_saved_with_the_secret_encrypted(
    db: Database, zoom_settings: Settings, acme: Company
) -> None:
    async with db.transaction(company_id=acme.id) as session:
        await connect(session, zoom_settings, acme.id or 0, "zoom", FORM)
    (saved,) = await _connections(db, acme)
    assert saved.provider == "zoom"
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


@pytest.mark.parametrize("key", ["jitsi", "webex", ""])
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
        await connect(session, zoom_settings, acme.id or 0, "zoom", FORM)
    zoom.client_id = "client-2"
    async with db.transaction(company_id=acme.id) as session:
        connection = await connection_of(session)
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
        await connect(session, zoom_settings, acme.id or 0, "zoom", FORM)
    async with db.session(company_id=acme.id, write=True) as session:
        connection = await connection_of(session)
        assert connection is not None
        with pytest.raises(FormErrors):
            await replace_credentials(
                session, zoom_settings, connection, {**FORM, "client_secret": "wrong"}
            )
    (saved,) = await _connections(db, acme)
    assert credentials(zoom_settings, saved) == FORM


async def test_a_second_connection_is_refused(
    db: Database, zoom_settings: Settings, acme: Company
) -> None:
    async with db.transaction(company_id=acme.id) as session:
        await connect(session, zoom_settings, acme.id or 0, "zoom", FORM)
    async with db.session(company_id=acme.id, write=True) as session:
        with pytest.raises(FormErrors) as raised:
            await connect(session, zoom_settings, acme.id or 0, "zoom", FORM)
    assert "already" in raised.value.errors["form"]


async def test_options_are_checked_and_saved(
    db: Database, zoom_settings: Settings, acme: Company
) -> None:
    async with db.transaction(company_id=acme.id) as session:
        connection = await connect(session, zoom_settings, acme.id or 0, "zoom", FORM)
        for bad, field in [
            ({"sync_hour": "24"}, "sync_hour"),
            ({"sync_hour": "２"}, "sync_hour"),
            ({"sync_hour": "3", "auto_create": "on"}, "provisioning"),
            ({"sync_hour": "3", "provisioning": "nope"}, "provisioning"),
        ]:
            with pytest.raises(FormErrors) as raised:
                await update_options(session, connection, bad)
            assert field in raised.value.errors
        await update_options(
            session,
            connection,
            {
                "sync_hour": "23",
                "auto_create": "on",
                "provisioning": "autoCreate",
                "join_before_host": "on",
            },
        )
    (saved,) = await _connections(db, acme)
    assert (saved.sync_hour, saved.auto_create, saved.provisioning) == (23, True, "autoCreate")
    assert saved.join_before_host and not saved.allow_jitsi_fallback


async def test_disconnecting_removes_the_mapping_and_the_history(
    db: Database, zoom_settings: Settings, acme: Company, admin: User
) -> None:
    async with db.transaction(company_id=acme.id) as session:
        connection = await connect(session, zoom_settings, acme.id or 0, "zoom", FORM)
        session.add(
            ProviderAccount(
                company_id=acme.id or 0,
                connection_id=connection.id or 0,
                provider_user_id="u1",
                status="active",
                user_id=admin.id,
            )
        )
        await request_sync(session, connection)
    async with db.transaction(company_id=acme.id) as session:
        connection = await connection_of(session)
        assert connection is not None
        await disconnect(session, connection)
    async with db.session(company_id=acme.id) as session:
        for table in (ConferencingConnection, ProviderAccount, SyncRun):
            assert (await session.execute(select(table))).first() is None


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
    """Both check that the company has no connection before either commits: the second is
    refused plainly, not with a database error."""

    async def connect_and_hold() -> str:
        async with db.session(company_id=acme.id, write=True) as session:
            try:
                await connect(session, zoom_settings, acme.id or 0, "zoom", FORM)
            except FormErrors as error:
                return error.errors["form"]
            await asyncio.sleep(0.3)  # the other's check runs before this commits
            await session.commit()
            return "connected"

    answers = await asyncio.gather(connect_and_hold(), connect_and_hold())
    assert sorted(answers) == [
        "A conferencing account is connected already: remove it first.",
        "connected",
    ]
    assert len(await _connections(db, acme)) == 1
