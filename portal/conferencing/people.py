"""Each person's side of conferencing: the connections that serve them, the one they host on,
the username and password they enter where a provider works that way, and the authorization
a host gives the portal where a provider asks for one (Webex in SSO mode)."""

from __future__ import annotations

import datetime as dt
import secrets as tokens
from collections.abc import Mapping
from dataclasses import dataclass

from dateutil.relativedelta import relativedelta
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from portal.accounts.models import EMAIL_MAX, User
from portal.conferencing import secrets
from portal.conferencing.connections import connections_of, credentials
from portal.conferencing.interfaces import (
    BadCredentials,
    ConferencingError,
    HostTokens,
    PersonalAccount,
)
from portal.conferencing.models import (
    LOGIN_OK,
    LOGIN_REFUSED,
    ROOM_URL_MAX,
    ConferencingChoice,
    ConferencingConnection,
    ConferencingLogin,
)
from portal.conferencing.providers import (
    KINDS,
    open_host_authorizing,
    open_password_provider,
)
from portal.conferencing.serving import served_clause
from portal.db import add_or_find, utcnow
from portal.forms import FormErrors
from portal.settings import Settings

PASSWORD_MAX = 200
# A host's authorization of the portal lasts this long from the session it was made for, and
# each session they host moves its end this far on.
HOST_AUTHORIZATION_LASTS = relativedelta(months=3)
# The signed state of an authorization round trip is good for this long.
STATE_MAX_AGE = 15 * 60
STATE_SALT = "conferencing-host-authorization"
# Where the provider sends a host back (the route conferencing.authorized).
AUTHORIZED_PATH = "/conferencing/authorized"


async def serving(session: AsyncSession, person: User) -> list[ConferencingConnection]:
    """The company's connections that serve the person, oldest first."""
    connections = await connections_of(session)
    if person.id is None or not connections:
        return []
    # One row: for each connection, whether it serves the person (serving.served_clause, the
    # rule the admin's lists and sync apply to everyone).
    query = select(*(served_clause(c) for c in connections)).where(col(User.id) == person.id)
    served = (await session.execute(query)).first() or ()
    return [c for c, yes in zip(connections, served, strict=False) if yes]


async def choice_of(session: AsyncSession, person: User) -> ConferencingChoice | None:
    query = select(ConferencingChoice).where(col(ConferencingChoice.user_id) == person.id)
    return (await session.execute(query)).scalars().first()


@dataclass(frozen=True)
class Hosting:
    """Where a person hosts: `connection` None with `choose` set means several serve them and
    they have picked none; None without `choose` means none serves them (Jitsi Meet)."""

    connection: ConferencingConnection | None
    serving: list[ConferencingConnection]

    @property
    def choose(self) -> bool:
        return self.connection is None and len(self.serving) > 1


async def hosting(session: AsyncSession, person: User) -> Hosting:
    """The connection the person hosts their meetings on."""
    connections = await serving(session, person)
    if len(connections) <= 1:
        return Hosting(connections[0] if connections else None, connections)
    choice = await choice_of(session, person)
    picked = next((c for c in connections if choice and c.id == choice.connection_id), None)
    return Hosting(picked, connections)


async def choose(session: AsyncSession, person: User, connection_id: int) -> None:
    """Make one of the connections serving the person the one they host on."""
    picked = next((c for c in await serving(session, person) if c.id == connection_id), None)
    if picked is None:
        raise FormErrors({"default": "Choose one of the accounts listed here."})
    choice = await choice_of(session, person)
    if choice is None:
        choice = ConferencingChoice(
            company_id=person.company_id, user_id=person.id or 0, connection_id=connection_id
        )
        # The person's two tabs may both save at once: the later one's choice wins.
        twin = await add_or_find(session, choice, lambda: choice_of(session, person))
        if twin is None:
            return
        choice = twin
    choice.connection_id = connection_id
    await session.flush()


async def login_of(
    session: AsyncSession, connection: ConferencingConnection, person: User
) -> ConferencingLogin | None:
    query = select(ConferencingLogin).where(
        col(ConferencingLogin.connection_id) == connection.id,
        col(ConferencingLogin.user_id) == person.id,
    )
    return (await session.execute(query)).scalars().first()


async def _login_row(
    session: AsyncSession, connection: ConferencingConnection, person: User
) -> ConferencingLogin:
    """The person's login at the connection, added when they have none yet."""
    login = await login_of(session, connection, person)
    if login is not None:
        return login
    login = ConferencingLogin(
        company_id=person.company_id, connection_id=connection.id or 0, user_id=person.id or 0
    )
    # The person's two tabs may save at once: the one that comes second updates the first's.
    twin = await add_or_find(session, login, lambda: login_of(session, connection, person))
    return twin or login


async def logins_of(session: AsyncSession, person: User) -> dict[int, ConferencingLogin]:
    """The person's logins by connection id."""
    query = select(ConferencingLogin).where(col(ConferencingLogin.user_id) == person.id)
    return {login.connection_id: login for login in (await session.execute(query)).scalars()}


def _read_sign_in(form: Mapping[str, str], label: str) -> tuple[str, str]:
    username = str(form.get("username") or "").strip()
    password = str(form.get("password") or "")
    errors = {}
    if not username:
        errors["username"] = f"Enter your {label} username."
    elif len(username) > EMAIL_MAX or not username.isprintable():
        errors["username"] = f"Enter your {label} username as you type it to sign in there."
    if not password:
        errors["password"] = f"Enter your {label} password."
    elif len(password) > PASSWORD_MAX or not password.isprintable():
        errors["password"] = f"A {label} password is at most {PASSWORD_MAX} printable characters."
    if errors:
        raise FormErrors(errors)
    return username, password


async def save_password(
    session: AsyncSession,
    settings: Settings,
    connection: ConferencingConnection,
    person: User,
    form: Mapping[str, str],
) -> ConferencingLogin:
    """Check the person's username and password with the provider, then keep them (the
    password encrypted). Nothing is saved when the provider refuses them or cannot be asked."""
    kind = KINDS[connection.provider]
    if not kind.signs_in:
        raise FormErrors({"form": f"{kind.label} accounts are linked automatically."})
    username, password = _read_sign_in(form, kind.label)
    provider = open_password_provider(
        connection.provider, credentials(settings, connection), settings.provider_endpoints
    )
    try:
        account = await provider.sign_in(username, password)
    except BadCredentials as error:
        raise FormErrors({"password": str(error)}) from None
    except ConferencingError as error:
        raise FormErrors({"form": f"{error} Nothing was saved."}) from None
    finally:
        await provider.aclose()
    login = await _login_row(session, connection, person)
    login.username = username
    login.secret = secrets.encrypt(settings, person.company_id, {"password": password})
    _signed_in_as(login, account)
    await session.flush()
    return login


def _signed_in_as(login: ConferencingLogin, account: PersonalAccount) -> None:
    login.provider_user_id = account.user_id[:128]
    login.email = account.email[:EMAIL_MAX]
    login.name = account.name[:200]
    login.room_url = account.room_url if len(account.room_url) <= ROOM_URL_MAX else ""
    login.state = LOGIN_OK
    login.checked_at = utcnow()


def password_of(settings: Settings, login: ConferencingLogin) -> str:
    """The person's stored password (UnreadableSecrets when the keys changed)."""
    return secrets.decrypt(settings, login.company_id, login.secret).get("password", "")


def refuse(login: ConferencingLogin) -> None:
    """The provider stopped accepting the stored password: the person must enter it again."""
    login.state = LOGIN_REFUSED
    login.checked_at = utcnow()


async def forget_login(
    session: AsyncSession, connection: ConferencingConnection, person: User
) -> None:
    await session.execute(
        delete(ConferencingLogin).where(
            col(ConferencingLogin.connection_id) == connection.id,
            col(ConferencingLogin.user_id) == person.id,
        )
    )


# Host authorization (Webex in SSO mode).


def host_authorized(login: ConferencingLogin | None, now: dt.datetime | None = None) -> bool:
    """Whether the host's authorization of the portal still holds."""
    if login is None or login.host_authorized_until is None or not login.secret:
        return False
    return (now or utcnow()) < login.host_authorized_until


def _serializer(settings: Settings) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(str(settings.secret_key), salt=STATE_SALT)


def authorization_state(
    settings: Settings, connection: ConferencingConnection, person: User
) -> tuple[str, str]:
    """A signed state for the provider's round trip and its nonce; the caller keeps the nonce
    in the person's session so that a state is good once, and only in the browser it began in."""
    nonce = tokens.token_urlsafe(16)
    state = _serializer(settings).dumps(
        {"c": person.company_id, "u": person.id, "k": connection.id, "n": nonce}
    )
    return state, nonce


class AuthorizationFailed(Exception):
    """The round trip cannot be completed; the message says why, for the host."""


def read_state(settings: Settings, state: str, person: User, nonce: str | None) -> int:
    """The connection id a state was made for, if it was made for this person and this browser
    and is neither old nor used (AuthorizationFailed)."""
    try:
        data = _serializer(settings).loads(state, max_age=STATE_MAX_AGE)
    except SignatureExpired:
        raise AuthorizationFailed(
            "The authorization took too long: start hosting again to try once more."
        ) from None
    except BadSignature:
        raise AuthorizationFailed("This authorization link is not valid.") from None
    mine = isinstance(data, dict) and data.get("c") == person.company_id
    mine = mine and data.get("u") == person.id
    if not mine or not nonce or not tokens.compare_digest(str(data.get("n")), nonce):
        raise AuthorizationFailed(
            "This authorization was already used or began in another browser: start hosting "
            "again to try once more."
        )
    connection_id = data.get("k")
    if not isinstance(connection_id, int):
        raise AuthorizationFailed("This authorization link is not valid.")
    return connection_id


async def authorize_url(settings: Settings, connection: ConferencingConnection, state: str) -> str:
    """The provider's page where the host grants the portal access."""
    provider = open_host_authorizing(
        connection.provider, credentials(settings, connection), settings.provider_endpoints
    )
    try:
        return provider.authorize_url(redirect_uri(settings), state)
    finally:
        await provider.aclose()


def redirect_uri(settings: Settings) -> str:
    return f"{settings.base_url.rstrip('/')}{AUTHORIZED_PATH}"


def _store_tokens(settings: Settings, login: ConferencingLogin, host_tokens: HostTokens) -> None:
    login.secret = secrets.encrypt(
        settings,
        login.company_id,
        {
            "access_token": host_tokens.access_token,
            "refresh_token": host_tokens.refresh_token,
            "expires_at": host_tokens.expires_at.isoformat(),
        },
    )


def _stored_tokens(settings: Settings, login: ConferencingLogin) -> HostTokens:
    values = secrets.decrypt(settings, login.company_id, login.secret)
    return HostTokens(
        access_token=values["access_token"],
        refresh_token=values["refresh_token"],
        expires_at=dt.datetime.fromisoformat(values["expires_at"]),
    )


async def exchange_code(
    settings: Settings, connection: ConferencingConnection, code: str
) -> HostTokens:
    """The host's tokens for the code the provider sent back (AuthorizationFailed). Asked
    before any transaction begins: a provider's answer may take seconds."""
    if not code or len(code) > 2048 or not code.isprintable():
        raise AuthorizationFailed("The provider sent back no authorization: start again.")
    provider = open_host_authorizing(
        connection.provider, credentials(settings, connection), settings.provider_endpoints
    )
    try:
        return await provider.exchange_code(code, redirect_uri(settings))
    except ConferencingError as error:
        raise AuthorizationFailed(str(error)) from None
    finally:
        await provider.aclose()


async def keep_authorization(
    session: AsyncSession,
    settings: Settings,
    connection: ConferencingConnection,
    person: User,
    host_tokens: HostTokens,
) -> ConferencingLogin:
    """Keep the host's tokens (encrypted); the authorization then holds for 3 months."""
    login = await _login_row(session, connection, person)
    _store_tokens(settings, login, host_tokens)
    login.state = LOGIN_OK
    login.checked_at = utcnow()
    login.host_authorized_until = utcnow() + HOST_AUTHORIZATION_LASTS
    await session.flush()
    return login


async def hosted_room(
    session: AsyncSession,
    settings: Settings,
    connection: ConferencingConnection,
    login: ConferencingLogin,
) -> str:
    """The host's personal room, asked as the host; hosting moves the authorization's end
    3 months on. Raises BadCredentials when the provider no longer accepts the host's tokens
    (the authorization is dropped: the host is asked again)."""
    provider = open_host_authorizing(
        connection.provider, credentials(settings, connection), settings.provider_endpoints
    )
    try:
        room_url, host_tokens = await provider.host_room(_stored_tokens(settings, login))
    except BadCredentials:
        login.host_authorized_until = None
        raise
    finally:
        await provider.aclose()
    _store_tokens(settings, login, host_tokens)
    login.room_url = room_url if len(room_url) <= ROOM_URL_MAX else login.room_url
    login.host_authorized_until = utcnow() + HOST_AUTHORIZATION_LASTS
    await session.flush()
    return room_url
