"""For the jobs tests: fresh PostgreSQL databases, portal processes, a client for a real server."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx
import pytest

CSRF_INPUT = re.compile(r'name="csrf_token" value="([0-9a-f]+)"')


def postgres_admin_url() -> str:
    """The server the PostgreSQL pass runs on; the test is skipped on the SQLite pass."""
    url = os.environ.get("PORTAL_TEST_DATABASE_URL")
    if not url:
        pytest.skip(
            "procrastinate keeps its queue in PostgreSQL: this test runs in the PostgreSQL pass "
            "(PORTAL_TEST_DATABASE_URL)"
        )
    return url


@dataclass
class PortalProcess:
    """`python -m portal.cli ...` running in the background, its output in a log file."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    log_file: IO[bytes]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, then the exit code once it has shut down (killed after `timeout`)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log_file.close()
        return self.process.returncode


def portal_env(**values: str) -> dict[str, str]:
    """This environment without any PORTAL_ setting of the developer's, plus `values`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTAL_")}
    env.update(values)
    return env


def run_portal(env: dict[str, str], *args: str, stdin: str = "") -> str:
    done = subprocess.run(
        [sys.executable, "-m", "portal.cli", *args],
        env=env,
        input=stdin.encode(),
        capture_output=True,
        timeout=120,
        check=False,
    )
    output = (done.stdout + done.stderr).decode(errors="replace")
    assert done.returncode == 0, f"portal {' '.join(args)} failed:\n{output}"
    return output


def start_portal(env: dict[str, str], log_dir: Path, name: str, *args: str) -> PortalProcess:
    log_path = log_dir / f"{name}.log"
    log_file = log_path.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "portal.cli", *args], env=env, stdout=log_file, stderr=log_file
    )
    return PortalProcess(name, process, log_path, log_file)


def wait_for_log(process: PortalProcess, text: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in process.log():
        if process.process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{process.name} never said {text!r}:\n{process.log()}")
        time.sleep(0.1)


class ServerClient:
    """A browser's cookies and CSRF token against a portal served on a real port."""

    def __init__(self, url: str) -> None:
        self.http = httpx.AsyncClient(base_url=url, timeout=30)

    async def _token(self, path: str) -> str:
        page = await self.http.get(path)
        match = CSRF_INPUT.search(page.text)
        assert match, f"no form on {path}: {page.status_code}"
        return match.group(1)

    async def sign_in(self, email: str, password: str) -> None:
        form = {"email": email, "password": password, "csrf_token": await self._token("/signin")}
        response = await self.http.post("/signin", data=form)
        assert response.status_code == 303, response.text

    async def post_form(self, path: str, data: dict[str, Any]) -> httpx.Response:
        form = {"csrf_token": await self._token(path), **data}
        return await self.http.post(path, data=form)

    async def aclose(self) -> None:
        await self.http.aclose()
