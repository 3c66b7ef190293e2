"""The conferencing providers a company can connect: what the admin enters for each, and
how to open an adapter over those credentials."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import cast

from portal.conferencing.interfaces import HostAuthorizing, PasswordProvider, Provider
from portal.conferencing.providers import (
    bluejeans,
    goto,
    imeet,
    ringcentral,
    webex,
    webex_xml,
    zoom,
)

# How a provider's people get their account linked in the portal.
AUTOMATIC = "automatic"  # found by email with the company's credentials, by sync
PASSWORD = "password"  # noqa: S105  (each person enters their own username and password)
NO_ACCOUNT = "none"  # Jitsi Meet: nothing to link


@dataclass(frozen=True)
class CredentialField:
    name: str  # form field and key in the credentials dict, e.g. "client_secret"
    label: str  # "Client secret"
    secret: bool  # True: encrypted at rest, never shown back (masked)
    help: str = ""
    choices: tuple[tuple[str, str], ...] = ()  # (value, label): a select instead of a text box


@dataclass(frozen=True)
class ProviderKind:
    key: str  # "zoom" | "imeet" | "jitsi"
    label: str  # "Zoom" | "iMeet" | "Jitsi Meet"
    fields: tuple[CredentialField, ...]  # () when the provider needs no account
    provisioning: tuple[tuple[str, str], ...]  # (wire value, admin label); () = no creation
    notes: str  # a sentence or two for the admin page
    needs_account: bool
    people: str = AUTOMATIC  # AUTOMATIC, PASSWORD or NO_ACCOUNT
    # Hosts authorize the portal once, then again when it lapses (Webex in SSO mode).
    host_authorization: bool = False
    # A sentence the admin page shows in warning colours (a service its vendor retired).
    warning: str = ""

    @property
    def signs_in(self) -> bool:
        """Each person enters their own username and password."""
        return self.people == PASSWORD


ZOOM = ProviderKind(
    key="zoom",
    label="Zoom",
    fields=(
        CredentialField("account_id", "Account ID", secret=False),
        CredentialField("client_id", "Client ID", secret=False),
        CredentialField("client_secret", "Client secret", secret=True),
    ),
    provisioning=zoom.PROVISIONING,
    notes=(
        "Create a Server-to-Server OAuth app in the Zoom App Marketplace (Develop > Build App > "
        "Server-to-Server OAuth) with the scopes user:read:admin, user:write:admin and "
        "meeting:write:admin, then enter its Account ID, Client ID and Client secret here."
    ),
    needs_account=True,
)

IMEET = ProviderKind(
    key="imeet",
    label="iMeet",
    fields=(
        CredentialField(
            "api_key",
            "API key",
            secret=True,
            help="The company administrator's key, from your PGi account manager.",
        ),
    ),
    provisioning=imeet.PROVISIONING,
    notes=(
        "The company's iMeet API key comes from its PGi account manager. Every person's iMeet "
        "room is their personal room: each meeting they host opens the same link."
    ),
    needs_account=True,
)

WEBEX = ProviderKind(
    key="webex",
    label="Webex (SSO)",
    fields=(
        CredentialField("client_id", "Integration client ID", secret=False),
        CredentialField("client_secret", "Integration client secret", secret=True),
        CredentialField(
            "refresh_token",
            "Administrator's refresh token",
            secret=True,
            help="From authorizing the integration once as a Webex administrator.",
        ),
    ),
    provisioning=(),
    notes=(
        "Create an integration at developer.webex.com with the scopes spark:people_read, "
        "spark-admin:people_read, meeting:preferences_read, meeting:admin_preferences_read and "
        "meeting:admin_schedule_write, authorize it once as a full administrator, and add "
        "this portal's address (below) to its redirect URIs: Webex sends hosts back there. "
        "People are found by email and synced automatically; the first time each person hosts, "
        "they authorize the portal at Webex, and again after 3 months without hosting. "
        'To let attendees in before the host, turn on "allow attendees to join before host" '
        "in Webex Site Administration as well as here."
    ),
    needs_account=True,
    host_authorization=True,
)

WEBEX_PASSWORD = ProviderKind(
    key="webex_password",
    label="Webex (username and password)",
    fields=(
        CredentialField(
            "site",
            "Webex site name",
            secret=False,
            help="The first part of your site's address: acme for acme.webex.com.",
        ),
    ),
    provisioning=(),
    notes=(
        "Each person enters their Webex username and password on their Conferencing Accounts "
        "page. Allow this portal's address (below) in Webex Site Administration, and turn on "
        '"allow attendees to join before host" there to let attendees in first.'
    ),
    needs_account=True,
    people=PASSWORD,
)

GOTO = ProviderKind(
    key="goto",
    label="GoTo Meeting, Training or Webinar",
    fields=(
        CredentialField("client_id", "OAuth client ID", secret=False),
        CredentialField("client_secret", "OAuth client secret", secret=True),
        CredentialField("product", "Product", secret=False, choices=goto.PRODUCTS),
    ),
    provisioning=(),
    notes=(
        "Enter the company's GoTo OAuth client. Each person enters their GoTo username and "
        "password on their Conferencing Accounts page; meetings are created on the product "
        "chosen here. GoTo lets only clients that had direct login before its direct-login "
        "migration sign people in with a password: a client made since then is accepted here "
        "but cannot sign anyone in, so ask GoTo support to enable direct login for yours."
    ),
    needs_account=True,
    people=PASSWORD,
)

BLUEJEANS = ProviderKind(
    key="bluejeans",
    label="BlueJeans",
    fields=(
        CredentialField("client_id", "App key", secret=False),
        CredentialField("client_secret", "App secret", secret=True),
    ),
    provisioning=(),
    notes="Each person enters their BlueJeans username and password on their Conferencing "
    "Accounts page; each meeting opens their personal room.",
    needs_account=True,
    people=PASSWORD,
    warning=(
        "Verizon retired BlueJeans in 2024: this connection is kept for accounts that still "
        "work, and a new one should use another provider."
    ),
)

RINGCENTRAL = ProviderKind(
    key="ringcentral",
    label="RingCentral Video",
    fields=(
        CredentialField("client_id", "Client ID", secret=False),
        CredentialField("client_secret", "Client secret", secret=True),
        CredentialField(
            "jwt",
            "JWT credential",
            secret=True,
            help="A JWT credential of an administrator, from the RingCentral developer console.",
        ),
    ),
    provisioning=(),
    notes=(
        "Create a REST API app with JWT auth in the RingCentral developer console (scopes "
        "ReadAccounts and Video). People are found by email and synced automatically; each "
        "person's room is their RingCentral Video default bridge. For the portal to create "
        "meetings for a person, they make the JWT's user their delegate in RingCentral Video "
        "(Settings > Schedule meetings for me)."
    ),
    needs_account=True,
)

JITSI = ProviderKind(
    key="jitsi",
    label="Jitsi Meet",
    fields=(),
    provisioning=(),
    notes=(
        "Jitsi Meet needs no account: every person has their own unguessable room, and it is "
        "what everyone uses until an account is connected."
    ),
    needs_account=False,
    people=NO_ACCOUNT,
)

# In the order the admin's select lists them.
KINDS: dict[str, ProviderKind] = {
    kind.key: kind
    for kind in (ZOOM, WEBEX, WEBEX_PASSWORD, GOTO, RINGCENTRAL, IMEET, BLUEJEANS, JITSI)
}


def _open_zoom(credentials: Mapping[str, str], endpoints: Mapping[str, str]) -> Provider:
    # A missing credential is sent as empty, so that the adapter's typed error explains it
    # (an admin with only an old JWT key and secret has no account id: Zoom's says so).
    return zoom.ZoomProvider(
        credentials.get("account_id", ""),
        credentials.get("client_id", ""),
        credentials.get("client_secret", ""),
        api_url=endpoints.get("zoom_api", zoom.ZOOM_API_URL),
        oauth_url=endpoints.get("zoom_oauth", zoom.ZOOM_OAUTH_URL),
    )


def _open_imeet(credentials: Mapping[str, str], endpoints: Mapping[str, str]) -> Provider:
    api_url = endpoints.get("imeet_api", imeet.IMEET_API_URL)
    return imeet.IMeetProvider(credentials.get("api_key", ""), api_url=api_url)


def _open_webex(credentials: Mapping[str, str], endpoints: Mapping[str, str]) -> object:
    return webex.WebexProvider(
        credentials.get("client_id", ""),
        credentials.get("client_secret", ""),
        credentials.get("refresh_token", ""),
        api_url=endpoints.get("webex_api", webex.WEBEX_API_URL),
    )


def _open_webex_password(credentials: Mapping[str, str], endpoints: Mapping[str, str]) -> object:
    return webex_xml.WebexPasswordProvider(
        credentials.get("site", ""), xml_url=endpoints.get("webex_xml", "")
    )


def _open_goto(credentials: Mapping[str, str], endpoints: Mapping[str, str]) -> object:
    return goto.GoToProvider(
        credentials.get("client_id", ""),
        credentials.get("client_secret", ""),
        credentials.get("product", ""),
        api_url=endpoints.get("goto_api", goto.GOTO_API_URL),
        oauth_url=endpoints.get("goto_oauth", goto.GOTO_OAUTH_URL),
    )


def _open_bluejeans(credentials: Mapping[str, str], endpoints: Mapping[str, str]) -> object:
    return bluejeans.BlueJeansProvider(
        credentials.get("client_id", ""),
        credentials.get("client_secret", ""),
        api_url=endpoints.get("bluejeans_api", bluejeans.BLUEJEANS_API_URL),
    )


def _open_ringcentral(credentials: Mapping[str, str], endpoints: Mapping[str, str]) -> object:
    return ringcentral.RingCentralProvider(
        credentials.get("client_id", ""),
        credentials.get("client_secret", ""),
        credentials.get("jwt", ""),
        api_url=endpoints.get("ringcentral_api", ringcentral.RINGCENTRAL_API_URL),
    )


_OPENERS: dict[str, Callable[[Mapping[str, str], Mapping[str, str]], object]] = {
    "zoom": _open_zoom,
    "imeet": _open_imeet,
    "webex": _open_webex,
    "webex_password": _open_webex_password,
    "goto": _open_goto,
    "bluejeans": _open_bluejeans,
    "ringcentral": _open_ringcentral,
}


def _open(key: str, credentials: Mapping[str, str], endpoints: Mapping[str, str]) -> object:
    if key not in _OPENERS:
        raise KeyError(f"No conferencing API to open for provider {key!r}")
    return _OPENERS[key](credentials, endpoints)


def open_provider(
    key: str, credentials: Mapping[str, str], endpoints: Mapping[str, str]
) -> Provider:
    """An adapter over the company's credentials for provider `key` (one whose people are
    synced, or found, by the company's credentials).

    `endpoints` overrides base URLs for tests and operations (settings.PROVIDER_ENDPOINTS'
    keys); a missing one means the provider's real host. Raises KeyError for a provider with
    no API (jitsi) or an unknown key.
    """
    return cast(Provider, _open(key, credentials, endpoints))


def open_password_provider(
    key: str, credentials: Mapping[str, str], endpoints: Mapping[str, str]
) -> PasswordProvider:
    """The adapter of a provider whose people sign in themselves (a kind with `signs_in`)."""
    if not KINDS[key].signs_in:
        raise KeyError(f"{key!r} does not take each person's username and password")
    return cast(PasswordProvider, _open(key, credentials, endpoints))


def open_host_authorizing(
    key: str, credentials: Mapping[str, str], endpoints: Mapping[str, str]
) -> HostAuthorizing:
    """The adapter of a provider whose hosts authorize the portal (`host_authorization`)."""
    if not KINDS[key].host_authorization:
        raise KeyError(f"{key!r} has no host authorization")
    return cast(HostAuthorizing, _open(key, credentials, endpoints))
