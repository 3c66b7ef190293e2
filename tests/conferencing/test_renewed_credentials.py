"""Credentials a provider renews while the portal works (Webex's rotated refresh token) are kept
for the next adapter: after a company sync, a person's own sync, a Reassociate, connecting and
checking again, also when the work then fails. Against the Webex simulator with
`rotate_refresh_tokens` on, where a refresh token dies once it is exchanged."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest
from cryptography.fernet import Fernet
from starlette.datastructures import Secret

from portal.accounts.models import Company, User
from portal.conferencing import person_sync, secrets, sync
from portal.conferencing.connections import (
    MASK,
    connect,
    credentials,
    keep_renewed_credentials,
    masked_credentials,
)
from portal.conferencing.interfaces import RenewsCredentials
from portal.conferencing.models import FAILED, SUCCEEDED, ConferencingConnection, SyncRun
from portal.conferencing.providers import base, open_provider
from portal.conferencing.providers.base import RetryPolicy
from portal.db import Database
from portal.settings import Settings
from tests.conferencing.conftest import serve
from tests.conferencing.factories import WEBEX, add_connection
from tests.conferencing.webex_simulator import WebexAccount, webex_app, webex_endpoints
from tests.conftest import PortalClient, make_user

# How many times an adapter sends a request (fast_retries): a fault on each of them fails it.
ATTEMPTS = 2


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """A provider that is down is tried again at once: the tests check what follows."""
    monkeypatch.setattr(base, "DEFAULT_RETRY", RetryPolicy(ATTEMPTS, 0.01, 0.01, 0, 0.01))


@pytest.fixture
def webex() -> WebexAccount:
    account = WebexAccount(WEBEX["client_id"], WEBEX["client_secret"])
    account.add_person("bob@acme.example", "Bob Member")
    account.rotate_refresh_tokens = True
    return account


@pytest.fixture
def settings(settings: Settings, webex: WebexAccount) -> Iterator[Settings]:
    with serve(webex_app(webex)) as url:
        yield dataclasses.replace(settings, provider_endpoints=webex_endpoints(url))


@pytest.fixture
async def connection(
    db: Database, settings: Settings, acme: Company, webex: WebexAccount
) -> ConferencingConnection:
    values = {**WEBEX, "refresh_token": webex.admin_refresh_token}
    return await add_connection(db, settings, acme, "webex", values)


async def _sync(db: Database, settings: Settings, connection: ConferencingConnection) -> SyncRun:
    """A company sync of the connection, asked for and run to its end."""
    async with db.transaction(company_id=connection.company_id) as session:
        run = await sync.request_sync(session, connection)
    done = await sync.run_sync(db, settings, connection.company_id, run.id or 0)
    assert done is not None
    return done


async def _person_sync(
    db: Database, settings: Settings, connection: ConferencingConnection, person: User
) -> SyncRun:
    async with db.transaction(company_id=connection.company_id) as session:
        run = await person_sync.request_person_sync(session, connection, person)
    done = await person_sync.run_person_sync(db, settings, person.company_id, run.id or 0)
    assert done is not None
    return done


async def _stored(
    db: Database, settings: Settings, connection: ConferencingConnection
) -> tuple[dict[str, str], ConferencingConnection]:
    """The connection's credentials as the next adapter gets them, and its row as stored."""
    async with db.session(company_id=connection.company_id) as session:
        row = await session.get(ConferencingConnection, connection.id)
        assert row is not None
        return credentials(settings, row), row


def _alive(webex: WebexAccount) -> list[str]:
    """The refresh tokens Webex still takes: with rotation, the newest one alone."""
    return list(webex.refresh_tokens)


async def test_a_refresh_token_rotated_during_a_sync_is_what_the_next_sync_uses(
    db: Database,
    settings: Settings,
    connection: ConferencingConnection,
    webex: WebexAccount,
    member: User,
) -> None:
    first = await _sync(db, settings, connection)
    assert first.status == SUCCEEDED, first.error
    assert webex.admin_refresh_token not in webex.refresh_tokens  # the entered one is dead

    second = await _sync(db, settings, connection)

    assert second.status == SUCCEEDED, second.error
    assert webex.count("POST", "/v1/access_token") == 2
    stored, row = await _stored(db, settings, connection)
    assert _alive(webex) == [stored["refresh_token"]]
    assert (stored["client_id"], stored["client_secret"]) == (
        WEBEX["client_id"],
        WEBEX["client_secret"],
    )
    # Kept encrypted like the rest, and masked on the admin's page like the rest.
    assert row.public_credentials == {"client_id": WEBEX["client_id"]}
    assert stored["refresh_token"] not in row.secret_credentials
    assert secrets.decrypt(settings, row.company_id, row.secret_credentials) == {
        "client_secret": WEBEX["client_secret"],
        "refresh_token": stored["refresh_token"],
    }
    assert dict(masked_credentials(row))["Administrator's refresh token"] == MASK


async def test_a_sync_that_fails_after_the_rotation_keeps_the_new_token(
    db: Database,
    settings: Settings,
    connection: ConferencingConnection,
    webex: WebexAccount,
    member: User,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The token call passes (and rotates); every try at the people list then fails.
    webex.fail_next(500, count=ATTEMPTS, path="/v1/people")

    failed = await _sync(db, settings, connection)

    assert failed.status == FAILED and "server error" in failed.error
    assert webex.admin_refresh_token not in webex.refresh_tokens
    stored, _ = await _stored(db, settings, connection)
    assert _alive(webex) == [stored["refresh_token"]]
    assert stored["refresh_token"] not in caplog.text
    again = await _sync(db, settings, connection)
    assert again.status == SUCCEEDED, again.error


async def test_a_failed_sync_still_encrypts_the_credentials_again_with_the_first_key(
    db: Database, settings: Settings, acme: Company, webex: WebexAccount
) -> None:
    """Nothing renewed (Webex cannot be reached): the stored credentials are encrypted again
    with the first key all the same, so the old one can be dropped."""
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    before = dataclasses.replace(settings, conferencing_keys=(Secret(old),))
    values = {**WEBEX, "refresh_token": webex.admin_refresh_token}
    connection = await add_connection(db, before, acme, "webex", values)
    both = dataclasses.replace(
        settings,
        conferencing_keys=(Secret(new), Secret(old)),
        provider_endpoints={"webex_api": "http://127.0.0.1:9/v1"},  # refuses at once
    )

    run = await _sync(db, both, connection)

    assert run.status == FAILED
    after = dataclasses.replace(settings, conferencing_keys=(Secret(new),))
    stored, _ = await _stored(db, after, connection)
    assert stored == values


async def test_a_persons_own_sync_keeps_the_rotated_token_for_the_next(
    db: Database,
    settings: Settings,
    connection: ConferencingConnection,
    webex: WebexAccount,
    member: User,
) -> None:
    first = await _person_sync(db, settings, connection, member)
    second = await _person_sync(db, settings, connection, member)

    assert (first.status, second.status) == (SUCCEEDED, SUCCEEDED), second.error
    stored, _ = await _stored(db, settings, connection)
    assert _alive(webex) == [stored["refresh_token"]]


async def test_a_persons_own_sync_that_fails_after_the_rotation_keeps_the_new_token(
    db: Database,
    settings: Settings,
    connection: ConferencingConnection,
    webex: WebexAccount,
    member: User,
) -> None:
    webex.fail_next(500, count=ATTEMPTS, path="/v1/people")

    failed = await _person_sync(db, settings, connection, member)

    assert failed.status == FAILED
    again = await _person_sync(db, settings, connection, member)
    assert again.status == SUCCEEDED, again.error


async def test_a_refused_reassociate_keeps_the_rotated_token(
    client: PortalClient,
    db: Database,
    settings: Settings,
    connection: ConferencingConnection,
    webex: WebexAccount,
    acme: Company,
) -> None:
    carol = await make_user(db, acme, "carol@acme.example")  # Webex has no Carol
    await client.sign_in(carol.email)

    refused = await client.post(f"/settings/conferencing/{connection.id}/reassociate")

    assert refused.status_code == 400
    assert "No Webex (SSO) user has the email carol@acme.example" in refused.text
    stored, _ = await _stored(db, settings, connection)
    assert _alive(webex) == [stored["refresh_token"]]
    assert (await _sync(db, settings, connection)).status == SUCCEEDED


async def test_connecting_keeps_the_token_rotated_while_checking_it(
    db: Database, settings: Settings, acme: Company, webex: WebexAccount
) -> None:
    form = {**WEBEX, "refresh_token": webex.admin_refresh_token, "name": "Webex"}
    async with db.transaction(company_id=acme.id) as session:
        connection = await connect(session, settings, acme.id or 0, "webex", form)

    stored, _ = await _stored(db, settings, connection)
    assert stored["refresh_token"] != webex.admin_refresh_token
    assert _alive(webex) == [stored["refresh_token"]]
    assert (await _sync(db, settings, connection)).status == SUCCEEDED


async def test_checking_the_stored_credentials_again_keeps_the_token_rotated_before_a_refusal(
    admin_client: PortalClient,
    db: Database,
    settings: Settings,
    connection: ConferencingConnection,
    webex: WebexAccount,
) -> None:
    webex.fail_next(500, count=ATTEMPTS, path="/v1/people/me")

    # Blank secrets keep the stored ones: the admin checks them again.
    form = {"client_id": WEBEX["client_id"], "client_secret": "", "refresh_token": ""}
    refused = await admin_client.post(f"/setup/conferencing/{connection.id}/credentials", form)

    assert refused.status_code == 400
    stored, _ = await _stored(db, settings, connection)
    assert _alive(webex) == [stored["refresh_token"]]
    assert stored["refresh_token"] not in refused.text  # masked as before
    assert (await _sync(db, settings, connection)).status == SUCCEEDED


async def test_credentials_an_admin_replaced_meanwhile_stand(
    db: Database, settings: Settings, connection: ConferencingConnection
) -> None:
    provider = open_provider(
        "webex", credentials(settings, connection), settings.provider_endpoints
    )
    await provider.verify()  # rotates the refresh token it was opened with
    await provider.aclose()
    replaced = {**WEBEX, "client_secret": "regenerated", "refresh_token": "typed-anew"}
    async with db.transaction(company_id=connection.company_id) as session:
        row = await session.get(ConferencingConnection, connection.id)
        assert row is not None
        row.secret_credentials = secrets.encrypt(
            settings, row.company_id, {k: replaced[k] for k in ("client_secret", "refresh_token")}
        )

    async with db.transaction(company_id=connection.company_id) as session:
        kept = await keep_renewed_credentials(session, settings, connection, provider)

    assert kept is False
    stored, _ = await _stored(db, settings, connection)
    assert stored == replaced


async def test_of_two_adapters_renewing_the_same_token_the_last_write_wins(
    db: Database, settings: Settings, connection: ConferencingConnection, webex: WebexAccount
) -> None:
    opened = credentials(settings, connection)
    first, second = (open_provider("webex", opened, settings.provider_endpoints) for _ in range(2))
    exchanged = webex.refresh_tokens[opened["refresh_token"]]
    await first.verify()
    # Should Webex answer the second as well (a grace for the token just exchanged), both
    # adapters hold a token of their own.
    webex.refresh_tokens[opened["refresh_token"]] = exchanged
    await second.verify()
    for provider in (first, second):
        await provider.aclose()

    for provider in (first, second):
        async with db.transaction(company_id=connection.company_id) as session:
            assert await keep_renewed_credentials(session, settings, connection, provider)

    stored, _ = await _stored(db, settings, connection)
    assert isinstance(second, RenewsCredentials)
    assert stored == second.credentials()
