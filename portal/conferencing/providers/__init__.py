"""The conferencing providers a company can connect: what the admin enters for each, and
how to open an adapter over those credentials."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from portal.conferencing.interfaces import Provider
from portal.conferencing.providers import imeet, zoom


@dataclass(frozen=True)
class CredentialField:
    name: str  # form field and key in the credentials dict, e.g. "client_secret"
    label: str  # "Client secret"
    secret: bool  # True: encrypted at rest, never shown back (masked)
    help: str = ""


@dataclass(frozen=True)
class ProviderKind:
    key: str  # "zoom" | "imeet" | "jitsi"
    label: str  # "Zoom" | "iMeet" | "Jitsi Meet"
    fields: tuple[CredentialField, ...]  # () when the provider needs no account
    provisioning: tuple[tuple[str, str], ...]  # (wire value, admin label); () = no creation
    notes: str  # a sentence or two for the admin page
    needs_account: bool


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
)

# In the order the admin's select lists them.
KINDS: dict[str, ProviderKind] = {kind.key: kind for kind in (ZOOM, IMEET, JITSI)}


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


_OPENERS: dict[str, Callable[[Mapping[str, str], Mapping[str, str]], Provider]] = {
    "zoom": _open_zoom,
    "imeet": _open_imeet,
}


def open_provider(
    key: str, credentials: Mapping[str, str], endpoints: Mapping[str, str]
) -> Provider:
    """An adapter over the company's credentials for provider `key`.

    `endpoints` overrides base URLs for tests and operations ("zoom_api", "zoom_oauth",
    "imeet_api"); a missing one means the provider's real host. Raises KeyError for a
    provider with no API (jitsi) or an unknown key.
    """
    if key not in _OPENERS:
        raise KeyError(f"No conferencing API to open for provider {key!r}")
    return _OPENERS[key](credentials, endpoints)
