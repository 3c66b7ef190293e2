"""Every setting in one place, read from the environment with safe defaults."""

from __future__ import annotations

import ipaddress
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from cryptography.fernet import Fernet
from pwdlib import PasswordHash
from starlette.datastructures import Secret

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA_DIR = PROJECT_ROOT / "data"


class SettingsError(RuntimeError):
    """A setting is missing or unusable; the message says which and why."""


@dataclass(frozen=True)
class SmtpSettings:
    host: str | None = None
    port: int = 587
    username: str | None = None
    password: Secret | None = None
    # "starttls", "tls" (implicit, usually port 465) or "none"
    tls: str = "starttls"
    mail_from: str = "Portal <portal@localhost>"

    @property
    def configured(self) -> bool:
        return bool(self.host)


@dataclass(frozen=True)
class Settings:
    database_url: str
    secret_key: Secret
    base_url: str = "http://127.0.0.1:8000"
    data_dir: Path = DEFAULT_DATA_DIR
    smtp: SmtpSettings = field(default_factory=SmtpSettings)
    # `alembic upgrade head` at start: on for the embedded default; a release step in production.
    migrate_on_start: bool = False
    password_hasher: PasswordHash = field(default_factory=PasswordHash.recommended)
    set_password_link_hours: int = 72
    # How many guests (addresses of no one in the company) one person may invite in an hour.
    guest_invites_per_hour: int = 100
    # Every person's personal room lives here until the company connects a conferencing account.
    jitsi_url: str = "https://meet.jit.si"
    # Who runs the background jobs: "in-process" (a loop in each web process) or "worker"
    # (procrastinate, `portal worker`); empty means in-process on SQLite, worker on PostgreSQL.
    jobs: str = ""
    # Proxies (addresses or networks) whose X-Forwarded-For and X-Forwarded-Proto are believed:
    # the sign-in throttle and uvicorn (`portal serve`) read the client's address from them.
    trusted_proxies: tuple[str, ...] = ()
    # What the processes log ("DEBUG", "INFO", "WARNING", "ERROR") and how: "text" or "json".
    log_level: str = "INFO"
    log_format: str = "text"
    # How many processes `portal serve` runs (WEB_CONCURRENCY): 1 on SQLite, whose live notices
    # are handed over in memory and so reach only the streams of the process that raised them.
    web_workers: int = 1
    templates_dir: Path = PROJECT_ROOT / "templates"
    # Tests only: a file of seconds added to the clock (see portal.db.set_clock_file).
    test_clock_file: Path | None = None
    static_dir: Path = PROJECT_ROOT / "static"
    # Fernet keys for the conferencing credentials: the first encrypts, all decrypt (rotation).
    # None given: one is derived from the secret key (see portal.conferencing.secrets).
    conferencing_keys: tuple[Secret, ...] = ()
    # Test and ops overrides of the providers' base URLs: "zoom_api", "zoom_oauth", "imeet_api".
    provider_endpoints: Mapping[str, str] = field(default_factory=dict)

    @property
    def is_embedded(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def https(self) -> bool:
        return self.base_url.startswith("https://")

    @property
    def jobs_runner(self) -> str:
        return self.jobs or ("in-process" if self.is_embedded else "worker")

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        """Read settings from PORTAL_* variables; the embedded default needs none of them."""
        env = os.environ if environ is None else environ
        data_dir = Path(env.get("PORTAL_DATA_DIR", str(DEFAULT_DATA_DIR)))
        database_url = env.get("PORTAL_DATABASE_URL") or f"sqlite:///{data_dir / 'portal.db'}"
        embedded = database_url.startswith("sqlite")
        secret = env.get("PORTAL_SECRET_KEY")
        if not secret:
            if not embedded:
                raise SettingsError(
                    "PORTAL_SECRET_KEY is required with a PostgreSQL database "
                    "(make one: python -c 'import secrets; print(secrets.token_urlsafe(48))')"
                )
            secret = _embedded_secret(data_dir)
        if len(secret) < 32:
            raise SettingsError("PORTAL_SECRET_KEY must be at least 32 characters long")
        smtp_password = env.get("PORTAL_SMTP_PASSWORD")
        tls = env.get("PORTAL_SMTP_TLS", "starttls").lower()
        if tls not in {"starttls", "tls", "none"}:
            raise SettingsError("PORTAL_SMTP_TLS must be one of starttls, tls, none")
        return cls(
            database_url=database_url,
            jitsi_url=_room_service_url(env.get("PORTAL_JITSI_URL", "https://meet.jit.si")),
            secret_key=Secret(secret),
            base_url=env.get("PORTAL_BASE_URL", "http://127.0.0.1:8000").rstrip("/"),
            data_dir=data_dir,
            smtp=SmtpSettings(
                host=env.get("PORTAL_SMTP_HOST") or None,
                port=int(env.get("PORTAL_SMTP_PORT", "465" if tls == "tls" else "587")),
                username=env.get("PORTAL_SMTP_USERNAME") or None,
                password=Secret(smtp_password) if smtp_password else None,
                tls=tls,
                mail_from=env.get("PORTAL_MAIL_FROM", "Portal <portal@localhost>"),
            ),
            migrate_on_start=_flag(env.get("PORTAL_MIGRATE_ON_START"), default=embedded),
            jobs=_jobs_runner(env.get("PORTAL_JOBS", ""), embedded=embedded),
            trusted_proxies=_trusted_proxies(env.get("PORTAL_TRUSTED_PROXIES", "")),
            guest_invites_per_hour=_positive(env, "PORTAL_GUEST_INVITES_PER_HOUR", 100),
            log_level=_choice(env, "PORTAL_LOG_LEVEL", LOG_LEVELS, "INFO").upper(),
            web_workers=_positive(env, "WEB_CONCURRENCY", 1 if embedded else 2),
            log_format=_choice(env, "PORTAL_LOG_FORMAT", ("text", "json"), "text").lower(),
            conferencing_keys=_fernet_keys(env.get("PORTAL_CONFERENCING_KEYS", "")),
            provider_endpoints=_provider_endpoints(env),
            test_clock_file=Path(env["PORTAL_TEST_CLOCK_FILE"])
            if env.get("PORTAL_TEST_CLOCK_FILE")
            else None,
        )


def _room_service_url(url: str) -> str:
    """People are sent to this address: https only, except a service on this very machine."""
    parts = urlsplit(url.strip())
    local = parts.hostname in {"127.0.0.1", "localhost", "::1"}
    if not parts.hostname or (parts.scheme != "https" and not (parts.scheme == "http" and local)):
        raise SettingsError(
            "PORTAL_JITSI_URL must be an https:// address, e.g. https://meet.jit.si"
        )
    return url.strip().rstrip("/")


def _fernet_keys(value: str) -> tuple[Secret, ...]:
    """Comma-separated Fernet keys, the one that encrypts first."""
    keys = []
    for key in filter(None, (part.strip() for part in value.split(","))):
        try:
            Fernet(key)
        except ValueError:
            raise SettingsError(
                "PORTAL_CONFERENCING_KEYS: each key must be a Fernet key (make one: python -c "
                "'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')"
            ) from None
        keys.append(Secret(key))
    return tuple(keys)


PROVIDER_ENDPOINTS = {
    "zoom_api": "PORTAL_ZOOM_API_URL",
    "zoom_oauth": "PORTAL_ZOOM_OAUTH_URL",
    "imeet_api": "PORTAL_IMEET_API_URL",
    "webex_api": "PORTAL_WEBEX_API_URL",
    "webex_xml": "PORTAL_WEBEX_XML_URL",
    "goto_api": "PORTAL_GOTO_API_URL",
    "goto_oauth": "PORTAL_GOTO_OAUTH_URL",
    "bluejeans_api": "PORTAL_BLUEJEANS_API_URL",
    "ringcentral_api": "PORTAL_RINGCENTRAL_API_URL",
}


def _provider_endpoints(env: Mapping[str, str]) -> dict[str, str]:
    """The providers' base URLs that are overridden; a missing key means the real host."""
    endpoints = {}
    for key, name in PROVIDER_ENDPOINTS.items():
        url = env.get(name, "").strip()
        if not url:
            continue
        parts = urlsplit(url)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise SettingsError(f"{name} must be an http:// or https:// address")
        endpoints[key] = url.rstrip("/")
    return endpoints


def _jobs_runner(value: str, *, embedded: bool) -> str:
    runner = value.strip().lower()
    if runner not in {"", "in-process", "worker"}:
        raise SettingsError("PORTAL_JOBS must be in-process or worker")
    if runner == "worker" and embedded:
        raise SettingsError("PORTAL_JOBS=worker needs PostgreSQL (procrastinate's queue)")
    return runner


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...], default: str) -> str:
    value = env.get(name, "").strip() or default
    if value.upper() not in {choice.upper() for choice in choices}:
        raise SettingsError(f"{name} must be one of {', '.join(choices)}")
    return value


def _positive(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not raw.isascii() or not raw.isdigit() or int(raw) < 1:
        raise SettingsError(f"{name} must be a whole number of at least 1")
    return int(raw)


def _trusted_proxies(value: str) -> tuple[str, ...]:
    """Comma-separated addresses or networks, e.g. `127.0.0.1, 10.0.0.0/8`; never everyone."""
    proxies = []
    for item in filter(None, (part.strip() for part in value.split(","))):
        try:
            proxies.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError:
            raise SettingsError(
                f"PORTAL_TRUSTED_PROXIES: {item!r} is not an address or a network; list the "
                "proxies' addresses (anyone could write X-Forwarded-For if '*' were trusted)"
            ) from None
    return tuple(proxies)


def _flag(value: str | None, *, default: bool) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _embedded_secret(data_dir: Path) -> str:
    """Generate the secret key once and keep it beside the embedded database."""
    path = data_dir / "secret_key"
    if path.exists():
        return path.read_text().strip()
    # The key and the database beside it are for this user's eyes only.
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    # O_EXCL: two processes starting at once must not each write their own key.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(secret)
    return secret
