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


def _served(monkeypatch: pytest.MonkeyPatch, *args: str) -> list[dict[str, object]]:
    from portal import cli

    calls: list[dict[str, object]] = []
    monkeypatch.setattr(cli.uvicorn, "run", lambda app, **options: calls.append(options))
    monkeypatch.setattr(cli, "configure_logging", lambda *_: None)  # keep pytest's handlers
    assert main(["serve", *args]) == 0
    return calls


def test_serve_runs_one_process_on_sqlite_unless_told(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Live notices on SQLite are handed over in memory: a second process's streams would miss
    # half of them (measured: 10 of 20 streams got a notice with two processes).
    monkeypatch.delenv("WEB_CONCURRENCY", raising=False)
    monkeypatch.delenv("PORTAL_BASE_URL", raising=False)
    assert _served(monkeypatch)[0]["workers"] == 1
    assert "web processes on SQLite" not in caplog.text
    monkeypatch.setenv("WEB_CONCURRENCY", "3")
    assert _served(monkeypatch)[0]["workers"] == 3
    assert "3 web processes on SQLite" in caplog.text
    assert _served(monkeypatch, "--workers", "1")[0]["workers"] == 1


def test_serve_runs_the_portals_event_loop(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from portal.event_loop import UVICORN_LOOP

    monkeypatch.delenv("PORTAL_BASE_URL", raising=False)
    assert _served(monkeypatch)[0]["loop"] == UVICORN_LOOP


def test_serve_runs_two_processes_on_postgresql_unless_told(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PORTAL_BASE_URL", raising=False)
    monkeypatch.setenv("PORTAL_DATABASE_URL", "postgresql://portal@db.internal/portal")
    monkeypatch.setenv("PORTAL_SECRET_KEY", "k" * 40)
    monkeypatch.delenv("WEB_CONCURRENCY", raising=False)
    assert _served(monkeypatch)[0]["workers"] == 2
    monkeypatch.setenv("WEB_CONCURRENCY", "5")
    assert _served(monkeypatch)[0]["workers"] == 5
    assert _served(monkeypatch, "--workers", "3")[0]["workers"] == 3


def test_the_procfile_leaves_the_number_of_web_processes_to_portal_serve() -> None:
    procfile = (Path(__file__).resolve().parent.parent / "Procfile").read_text()
    web = next(line for line in procfile.splitlines() if line.startswith("web:"))
    assert "portal serve" in web and "--workers" not in web
