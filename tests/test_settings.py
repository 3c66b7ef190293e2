"""Settings from the environment: safe defaults for the demo, strict for production."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from portal.settings import Settings, SettingsError


def test_embedded_default_generates_and_keeps_a_secret(tmp_path: Path) -> None:
    first = Settings.from_env({"PORTAL_DATA_DIR": str(tmp_path)})
    second = Settings.from_env({"PORTAL_DATA_DIR": str(tmp_path)})
    assert str(first.secret_key) == str(second.secret_key) and len(str(first.secret_key)) >= 32
    assert first.database_url == f"sqlite:///{tmp_path / 'portal.db'}"
    assert first.migrate_on_start and not first.smtp.configured
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600


def test_postgresql_requires_a_secret_key(tmp_path: Path) -> None:
    env = {"PORTAL_DATA_DIR": str(tmp_path), "PORTAL_DATABASE_URL": "postgresql://db/portal"}
    with pytest.raises(SettingsError, match="PORTAL_SECRET_KEY is required"):
        Settings.from_env(env)
    with pytest.raises(SettingsError, match="at least 32"):
        Settings.from_env({**env, "PORTAL_SECRET_KEY": "short"})
    settings = Settings.from_env(
        {**env, "PORTAL_SECRET_KEY": "k" * 40, "PORTAL_BASE_URL": "https://p.example/"}
    )
    assert (
        settings.https
        and settings.base_url == "https://p.example"
        and not settings.migrate_on_start
    )


def test_smtp_settings(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {
            "PORTAL_DATA_DIR": str(tmp_path),
            "PORTAL_SMTP_HOST": "mail.example",
            "PORTAL_SMTP_TLS": "tls",
        }
    )
    assert settings.smtp.configured and settings.smtp.port == 465
    with pytest.raises(SettingsError, match="PORTAL_SMTP_TLS"):
        Settings.from_env({"PORTAL_DATA_DIR": str(tmp_path), "PORTAL_SMTP_TLS": "maybe"})


def test_the_room_service_must_be_https_except_on_this_machine(tmp_path: Path) -> None:
    base = {"PORTAL_DATA_DIR": str(tmp_path)}
    assert Settings.from_env(base).jitsi_url == "https://meet.jit.si"
    custom = Settings.from_env({**base, "PORTAL_JITSI_URL": "https://jitsi.acme.example/"})
    assert custom.jitsi_url == "https://jitsi.acme.example"
    local = Settings.from_env({**base, "PORTAL_JITSI_URL": "http://127.0.0.1:9000/rooms"})
    assert local.jitsi_url == "http://127.0.0.1:9000/rooms"
    for bad in ("http://jitsi.acme.example", "javascript:alert(1)", "meet.jit.si"):
        with pytest.raises(SettingsError, match="PORTAL_JITSI_URL"):
            Settings.from_env({**base, "PORTAL_JITSI_URL": bad})


def test_the_embedded_data_folder_is_private(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    Settings.from_env({"PORTAL_DATA_DIR": str(data_dir)})
    assert data_dir.stat().st_mode & 0o777 == 0o700


def test_the_guest_invitation_limit_is_a_positive_number(tmp_path: Path) -> None:
    env = {"PORTAL_DATA_DIR": str(tmp_path)}
    assert Settings.from_env(env).guest_invites_per_hour == 100
    limited = Settings.from_env({**env, "PORTAL_GUEST_INVITES_PER_HOUR": " 20 "})
    assert limited.guest_invites_per_hour == 20
    for bad in ("0", "-3", "lots"):
        with pytest.raises(SettingsError, match="PORTAL_GUEST_INVITES_PER_HOUR"):
            Settings.from_env({**env, "PORTAL_GUEST_INVITES_PER_HOUR": bad})


def test_trusted_proxies_are_addresses_or_networks_and_none_by_default(tmp_path: Path) -> None:
    env = {"PORTAL_DATA_DIR": str(tmp_path)}
    assert Settings.from_env(env).trusted_proxies == ()
    settings = Settings.from_env({**env, "PORTAL_TRUSTED_PROXIES": " 127.0.0.1, 10.0.0.0/8,::1 "})
    assert settings.trusted_proxies == ("127.0.0.1/32", "10.0.0.0/8", "::1/128")
    for value in ("*", "proxy.internal", "10.0.0.0/33"):
        with pytest.raises(SettingsError, match="PORTAL_TRUSTED_PROXIES"):
            Settings.from_env({**env, "PORTAL_TRUSTED_PROXIES": value})


@pytest.mark.parametrize(
    ("proxies", "proxy_headers", "allowed"),
    [((), False, ""), (("127.0.0.1/32", "10.0.0.0/8"), True, "127.0.0.1/32,10.0.0.0/8")],
)
def test_portal_serve_believes_forwarded_headers_only_from_trusted_proxies(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    proxies: tuple[str, ...],
    proxy_headers: bool,
    allowed: str,
) -> None:
    from portal import cli

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(cli.uvicorn, "run", lambda app, **options: calls.append(options))
    settings = Settings.from_env({"PORTAL_DATA_DIR": str(tmp_path)})
    cli._serve(dataclasses.replace(settings, trusted_proxies=proxies), "127.0.0.1", 8000, 1)
    assert calls[0]["proxy_headers"] is proxy_headers
    assert calls[0]["forwarded_allow_ips"] == allowed


def test_logging_is_text_at_info_unless_told(tmp_path: Path) -> None:
    default = Settings.from_env({"PORTAL_DATA_DIR": str(tmp_path)})
    assert (default.log_level, default.log_format) == ("INFO", "text")
    told = Settings.from_env(
        {"PORTAL_DATA_DIR": str(tmp_path), "PORTAL_LOG_LEVEL": "debug", "PORTAL_LOG_FORMAT": "JSON"}
    )
    assert (told.log_level, told.log_format) == ("DEBUG", "json")
    for name, value in (("PORTAL_LOG_LEVEL", "loud"), ("PORTAL_LOG_FORMAT", "xml")):
        with pytest.raises(SettingsError, match=name):
            Settings.from_env({"PORTAL_DATA_DIR": str(tmp_path), name: value})


def test_one_web_process_on_sqlite_and_two_on_postgresql_unless_told(tmp_path: Path) -> None:
    # On SQLite live notices are handed over in memory: a second process's streams miss them.
    assert Settings.from_env({"PORTAL_DATA_DIR": str(tmp_path)}).web_workers == 1
    postgres = {
        "PORTAL_DATABASE_URL": "postgresql://portal@db.internal/portal",
        "PORTAL_SECRET_KEY": "k" * 40,
    }
    assert Settings.from_env(postgres).web_workers == 2
    assert Settings.from_env({**postgres, "WEB_CONCURRENCY": "4"}).web_workers == 4
    told = {"PORTAL_DATA_DIR": str(tmp_path), "WEB_CONCURRENCY": "3"}
    assert Settings.from_env(told).web_workers == 3
    with pytest.raises(SettingsError, match="WEB_CONCURRENCY"):
        Settings.from_env({**postgres, "WEB_CONCURRENCY": "0"})
