"""The clock a served portal reads can be moved by a file, for browser tests only."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from portal import db
from portal.settings import Settings


@pytest.fixture
def clock_file(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "clock"
    db.set_clock_file(path)
    yield path
    db.set_clock_file(None)


def test_the_clock_moves_by_the_seconds_in_the_file(clock_file: Path) -> None:
    clock_file.write_text("600")
    moved = db.utcnow() - dt.datetime.now(dt.UTC)
    assert dt.timedelta(seconds=599) < moved < dt.timedelta(seconds=601)


def test_a_missing_or_unreadable_file_is_real_time(clock_file: Path) -> None:
    assert abs(db.utcnow() - dt.datetime.now(dt.UTC)) < dt.timedelta(seconds=1)
    clock_file.write_text("soon")
    assert abs(db.utcnow() - dt.datetime.now(dt.UTC)) < dt.timedelta(seconds=1)


def test_the_setting_names_the_file(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {"PORTAL_DATA_DIR": str(tmp_path), "PORTAL_TEST_CLOCK_FILE": str(tmp_path / "c")}
    )
    assert settings.test_clock_file == tmp_path / "c"
    assert Settings.from_env({"PORTAL_DATA_DIR": str(tmp_path)}).test_clock_file is None
