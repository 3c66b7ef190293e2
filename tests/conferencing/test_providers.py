"""The provider registry: what the admin enters for each provider, and opening an adapter."""

from __future__ import annotations

import pytest

from portal.conferencing.interfaces import BadCredentials, RetiredCredentials
from portal.conferencing.providers import (
    AUTOMATIC,
    KINDS,
    NO_ACCOUNT,
    PASSWORD,
    CredentialField,
    open_host_authorizing,
    open_password_provider,
    open_provider,
)
from portal.conferencing.providers.bluejeans import BlueJeansProvider
from portal.conferencing.providers.goto import GoToProvider
from portal.conferencing.providers.imeet import IMeetProvider
from portal.conferencing.providers.ringcentral import RingCentralProvider
from portal.conferencing.providers.webex import WebexProvider
from portal.conferencing.providers.webex_xml import WebexPasswordProvider
from portal.conferencing.providers.zoom import ZoomProvider
from tests.conferencing.conftest import serve
from tests.conferencing.imeet_simulator import IMeetAccount, imeet_app, imeet_endpoints
from tests.conferencing.zoom_simulator import ZoomAccount, zoom_app, zoom_endpoints


def test_kinds_in_the_order_the_admin_sees_them() -> None:
    assert list(KINDS) == [
        "zoom",
        "webex",
        "webex_password",
        "goto",
        "ringcentral",
        "imeet",
        "bluejeans",
        "jitsi",
    ]
    assert all(key == kind.key for key, kind in KINDS.items())


def test_how_each_providers_people_link_their_accounts() -> None:
    people = {key: kind.people for key, kind in KINDS.items()}
    assert people == {
        "zoom": AUTOMATIC,
        "webex": AUTOMATIC,
        "webex_password": PASSWORD,
        "goto": PASSWORD,
        "ringcentral": AUTOMATIC,
        "imeet": AUTOMATIC,
        "bluejeans": PASSWORD,
        "jitsi": NO_ACCOUNT,
    }
    assert [key for key, kind in KINDS.items() if kind.host_authorization] == ["webex"]
    assert "retired" in KINDS["bluejeans"].warning
    assert dict(KINDS["goto"].fields[-1].choices) == {
        "meeting": "GoTo Meeting",
        "training": "GoTo Training",
        "webinar": "GoTo Webinar",
    }


@pytest.mark.parametrize(
    ("key", "adapter"),
    [
        ("webex", WebexProvider),
        ("ringcentral", RingCentralProvider),
    ],
)
def test_automatic_providers_open_as_providers(key: str, adapter: type) -> None:
    assert isinstance(open_provider(key, {}, {}), adapter)


@pytest.mark.parametrize(
    ("key", "adapter"),
    [
        ("webex_password", WebexPasswordProvider),
        ("goto", GoToProvider),
        ("bluejeans", BlueJeansProvider),
    ],
)
def test_password_providers_open_only_as_password_providers(key: str, adapter: type) -> None:
    assert isinstance(open_password_provider(key, {"site": "acme"}, {}), adapter)
    with pytest.raises(KeyError):
        open_password_provider("zoom", {}, {})
    with pytest.raises(KeyError):
        open_host_authorizing(key, {}, {})


def test_zoom_asks_for_a_server_to_server_oauth_app() -> None:
    zoom = KINDS["zoom"]
    assert [(f.name, f.label, f.secret) for f in zoom.fields] == [
        ("account_id", "Account ID", False),
        ("client_id", "Client ID", False),
        ("client_secret", "Client secret", True),
    ]
    assert [value for value, _ in zoom.provisioning] == [
        "create",
        "autoCreate",
        "custCreate",
        "ssoCreate",
    ]
    assert zoom.needs_account
    assert "Server-to-Server OAuth" in zoom.notes


def test_imeet_asks_for_the_api_key_from_pgi() -> None:
    imeet = KINDS["imeet"]
    assert imeet.fields == (
        CredentialField("api_key", "API key", secret=True, help=imeet.fields[0].help),
    )
    assert imeet.provisioning == (("provision", "Create an iMeet client"),)
    assert imeet.needs_account
    assert "PGi account manager" in imeet.notes


def test_jitsi_needs_no_account() -> None:
    jitsi = KINDS["jitsi"]
    assert (jitsi.fields, jitsi.provisioning, jitsi.needs_account) == ((), (), False)
    assert "no account" in jitsi.notes
    assert "until an account is connected" in jitsi.notes


async def test_open_imeet_at_the_given_endpoint() -> None:
    account = IMeetAccount("the-key")
    account.add_client("ada@example.com", "Ada", "Lovelace")
    with serve(imeet_app(account)) as url:
        provider = open_provider("imeet", {"api_key": "the-key"}, imeet_endpoints(url))
        assert isinstance(provider, IMeetProvider)
        await provider.verify()
        assert (await provider.user_by_email("ada@example.com")).name == "Ada Lovelace"
        await provider.aclose()
    assert account.requests[0] == ("POST", "/provisioning/client/list")


async def test_open_zoom_at_the_given_endpoints() -> None:
    account = ZoomAccount("acct", "client", "secret")
    account.add_user("ada@example.com", "Ada", "Lovelace")
    credentials = {"account_id": "acct", "client_id": "client", "client_secret": "secret"}
    with serve(zoom_app(account)) as url:
        provider = open_provider("zoom", credentials, zoom_endpoints(url))
        assert isinstance(provider, ZoomProvider)
        await provider.verify()
        assert (await provider.user_by_email("ada@example.com")).name == "Ada Lovelace"
        await provider.aclose()
    assert account.requests[:2] == [("POST", "/oauth/token"), ("GET", "/v2/users/me")]


@pytest.mark.parametrize(
    ("key", "credentials", "error"),
    [
        ("imeet", {}, BadCredentials),
        ("zoom", {}, BadCredentials),
        ("zoom", {"client_id": "jwt-key", "client_secret": "jwt-secret"}, RetiredCredentials),
    ],
)
async def test_missing_credentials_are_explained_by_the_adapter(
    key: str, credentials: dict[str, str], error: type[Exception]
) -> None:
    provider = open_provider(key, credentials, {})
    with pytest.raises(error):
        await provider.verify()
    await provider.aclose()


@pytest.mark.parametrize("key", ["jitsi", "teams", ""])
def test_no_adapter_for_jitsi_or_an_unknown_provider(key: str) -> None:
    with pytest.raises(KeyError):
        open_provider(key, {}, {})
