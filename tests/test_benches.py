"""Each bench starts as the README runs it: a script, whose own folder Python puts first on
the path (where bench/calendar.py once stood in for the standard library's calendar)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCHES = sorted((Path(__file__).resolve().parent.parent / "bench").glob("*.py"))


@pytest.mark.parametrize("script", BENCHES, ids=[script.name for script in BENCHES])
def test_a_bench_starts_as_a_script(script: Path) -> None:
    started = subprocess.run(
        [sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=60
    )
    assert started.returncode == 0, started.stderr
    assert "usage:" in started.stdout
