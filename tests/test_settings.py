"""Settings from the environment: safe defaults for the demo, strict for production."""

from __future__ import annotations

from pathlib import Path

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
