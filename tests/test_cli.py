"""The `portal` command line: db upgrade, create-company, create-user, demo."""

from __future__ import annotations

import io
import sqlite3
from pathlib import Path

import pytest

from portal.accounts.demo import PEOPLE
from portal.cli import main


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PORTAL_DATA_DIR", str(tmp_path))
    for name in ("PORTAL_DATABASE_URL", "PORTAL_SECRET_KEY", "PORTAL_SMTP_HOST"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def _rows(data_dir: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(data_dir / "portal.db") as connection:
        return connection.execute(sql).fetchall()


def test_create_company_and_users(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["db", "upgrade"]) == 0
    assert main(["create-company", "Initech", "--time-zone", "America/Chicago"]) == 0
    assert main(["create-company", "Initech"]) == 2
    assert "already exists" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough password\n"))
    assert (
        main(
            [
                "create-user",
                "--company",
                "initech",
                "--email",
                "Peter@Initech.example",
                "--name",
                "Peter Gibbons",
                "--admin",
                "--password-stdin",
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "create-user",
                "--company",
                "initech",
                "--email",
                "peter@initech.example",
                "--name",
                "Again",
                "--no-password",
            ]
        )
        == 2
    )
    assert "already uses this email" in capsys.readouterr().err
    assert (
        main(
            [
                "create-user",
                "--company",
                "nope",
                "--email",
                "a@b.example",
                "--name",
                "A",
                "--no-password",
            ]
        )
        == 2
    )
    assert _rows(data_dir, "select email, role, time_zone from users") == [
        ("peter@initech.example", "admin", "America/Chicago")
    ]


def test_demo_creates_acme_once_and_keeps_it(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", "--no-serve"]) == 0
    first = capsys.readouterr().out
    assert "Demo company Acme (created)" in first and "ada.lovelace@acme.example" in first
    assert main(["demo", "--no-serve"]) == 0
    assert "kept from the last run" in capsys.readouterr().out
    assert _rows(data_dir, "select count(*), count(distinct department) from users") == [
        (len(PEOPLE), 5)
    ]
    assert _rows(data_dir, "select count(*) from users where role = 'admin'") == [(1,)]
