"""The directory's pages under load, each against a baseline measured in the same run.

    .venv/bin/python bench/pages.py [--people 10000] [--seconds 10] [--connections 50]
                                    [--pages card,profile,search,search-page]

Builds the demo company with `--people` people in a fresh SQLite database, serves the portal and a
baseline app with the same uvicorn settings (uvloop, httptools, one worker per core), signs in,
and loads each page with wrk: the hover card (an htmx fragment), a profile, and directory search
(the results fragment that typing fetches, and the whole page). The baseline for each is a bare
Starlette endpoint rendering a Jinja template of the same output size from one raw sqlite3 query
by primary key: no ORM, no session, no middleware. Prints requests/s, p50 and p99, and each page's
share of its baseline. Targets: hover card at least 0.30 with p99 under 20 ms; the others 0.15.

Needs wrk (Debian's package; `make bench` installs it when run as root).
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, a bench's own folder comes first on the path, where bench/calendar.py would
# stand in for the standard library's calendar module (which email and http import): the
# project's root takes its place.
sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse
import contextlib
import json
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import jinja2
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

ROOT = Path(__file__).resolve().parent.parent
EMAIL = "ada.lovelace@acme.example"
PASSWORD = "acme-demo-portal"  # noqa: S105  (the demo's published password)
SEARCH = "novak"
TARGETS = {"card": 0.30, "profile": 0.15, "search": 0.15, "search-page": 0.15}
CARD_P99_MS = 20.0

BASELINE_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ person.display_name }}</title></head>
<body><main class="page"><section class="card">
<h1><a href="/people/{{ person.id }}">{{ person.display_name }}</a></h1>
<p class="muted">{{ person.title }} · {{ person.department }}</p>
<dl class="facts"><dt>Email</dt><dd><a href="mailto:{{ person.email }}">{{ person.email }}</a></dd>
<dt>Phone</dt><dd>{{ person.phone }}</dd><dt>Time zone</dt><dd>{{ person.time_zone }}</dd></dl>
</section>
{% for _ in range(filler) %}<p class="muted">{{ person.display_name }} · {{ person.title }} · \
{{ person.department }} · {{ person.email }}</p>
{% endfor %}</main></body></html>
"""


def baseline_app() -> Starlette:
    """The ceiling: one sqlite3 lookup by primary key and one template, sized like each page.

    Served by uvicorn's --factory from BENCH_DATABASE and BENCH_SIZES (page -> bytes)."""
    connection = sqlite3.connect(os.environ["BENCH_DATABASE"], check_same_thread=False)
    connection.row_factory = sqlite3.Row
    template = jinja2.Environment(autoescape=True).from_string(BASELINE_TEMPLATE)
    sizes: dict[str, int] = json.loads(os.environ["BENCH_SIZES"])
    query = (
        "SELECT id, display_name, title, department, email, phone, time_zone "
        "FROM users WHERE id = ?"
    )
    sample = connection.execute(query, (1,)).fetchone()
    empty = len(template.render(person=sample, filler=0).encode())
    line = len(template.render(person=sample, filler=1).encode()) - empty
    fillers = {page: max(0, round((size - empty) / line)) for page, size in sizes.items()}

    async def page(request: Request) -> HTMLResponse:
        person = connection.execute(query, (int(request.path_params["user_id"]),)).fetchone()
        filler = fillers[request.path_params["page"]]
        return HTMLResponse(template.render(person=person, filler=filler))

    return Starlette(routes=[Route("/{page}/{user_id:int}", page)])


@dataclass(frozen=True)
class Load:
    requests_per_second: float
    p50_ms: float
    p99_ms: float


@dataclass(frozen=True)
class Page:
    name: str
    path: str
    headers: dict[str, str]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def uvicorn_command(app: str, port: int, workers: int) -> list[str]:
    """The same server settings for the portal and the baseline."""
    return [
        sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port),
        "--workers", str(workers), "--loop", "uvloop", "--http", "httptools",
        "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip


@contextlib.contextmanager
def serving(command: list[str], env: dict[str, str], port: int, log: Path) -> Iterator[str]:
    url = f"http://127.0.0.1:{port}"
    with log.open("w") as output:
        process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=output, stderr=output)
        try:
            deadline = time.monotonic() + 60
            while True:
                with contextlib.suppress(httpx.TransportError):
                    httpx.get(url, timeout=1)
                    break
                if process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"{command[3]} did not start:\n{log.read_text()}")
                time.sleep(0.2)
            yield url
        finally:
            process.terminate()
            process.wait(timeout=15)


def sign_in(url: str) -> str:
    """The session cookie of the demo admin, after one page view (which adds the CSRF id)."""
    with httpx.Client(base_url=url) as client:
        form = client.get("/signin").text
        match = re.search(r'name="csrf_token" value="([0-9a-f]+)"', form)
        assert match, "no CSRF token on the sign-in page"
        response = client.post(
            "/signin", data={"email": EMAIL, "password": PASSWORD, "csrf_token": match.group(1)}
        )
        assert response.status_code == 303, response.text
        assert client.get("/people").status_code == 200
        return f"portal_session={client.cookies['portal_session']}"


def response_size(url: str, page: Page) -> int:
    response = httpx.get(url + page.path, headers=page.headers)
    if response.status_code != 200:
        raise SystemExit(f"{page.path} answered {response.status_code}, not 200")
    return len(response.content)


def _milliseconds(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def wrk(url: str, headers: dict[str, str], args: argparse.Namespace, seconds: int) -> Load:
    # A long timeout: a slow page is measured at its speed, not dropped from the figures.
    command = ["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{seconds}s", "--latency"]
    command += ["--timeout", "30s"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    output = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    if "Non-2xx or 3xx responses" in output or "Socket errors" in output:
        raise SystemExit(f"wrk saw failed requests on {url}:\n{output}")
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)\s*$", output, re.MULTILINE))
    rate = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.MULTILINE)
    assert rate and latency, output
    return Load(float(rate.group(1)), _milliseconds(latency["50"]), _milliseconds(latency["99"]))


def measure(url: str, headers: dict[str, str], args: argparse.Namespace) -> Load:
    wrk(url, headers, args, args.warmup)
    return wrk(url, headers, args, args.seconds)


def build_demo(people: int, env: dict[str, str]) -> None:
    built = subprocess.run(
        [sys.executable, "-m", "portal.cli", "demo", "--no-serve", "--people", str(people)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if built.returncode:
        raise SystemExit(f"the demo data could not be built:\n{built.stdout}{built.stderr}")


def pick_person(database: Path, people: int) -> int:
    """Someone in the middle of the table, with a title and a department."""
    with contextlib.closing(sqlite3.connect(database)) as connection:
        (user_id,) = connection.execute(
            "SELECT id FROM users WHERE active AND title != '' ORDER BY id LIMIT 1 OFFSET ?",
            (people // 2,),
        ).fetchone()
    return int(user_id)


def report(rows: list[tuple[str, Load, Load]]) -> None:
    print(f"\n{'page':<14}{'server':<10}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}  share")
    for name, baseline, portal in rows:
        share = portal.requests_per_second / baseline.requests_per_second
        target = TARGETS[name]
        verdict = "ok" if share >= target else "SHORT"
        if name == "card" and portal.p99_ms >= CARD_P99_MS:
            verdict += f", p99 over {CARD_P99_MS:.0f} ms"
        for server, load in (("baseline", baseline), ("portal", portal)):
            print(
                f"{name if server == 'baseline' else '':<14}{server:<10}"
                f"{load.requests_per_second:>9.0f}{load.p50_ms:>9.2f}{load.p99_ms:>9.2f}",
                end="",
            )
            print(f"  {share:.2f} (target {target:.2f}: {verdict})" if server == "portal" else "")


def load_options(parser: argparse.ArgumentParser) -> None:
    """The options `measure` and `uvicorn_command` are run with: wrk's and uvicorn's."""
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2, help="wrk's threads")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--people", type=int, default=10_000)
    load_options(parser)
    parser.add_argument(
        "--pages", default=",".join(TARGETS), help="which pages to measure (comma-separated)"
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit(
            "bench/pages.py needs wrk: `apt-get install wrk` (`make bench` does it as root)"
        )

    with tempfile.TemporaryDirectory(prefix="bench-pages-") as tmp:
        data_dir = Path(tmp)
        portal_port, baseline_port = free_port(), free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("PORTAL_")}
        env |= {"PORTAL_DATA_DIR": tmp, "PORTAL_BASE_URL": f"http://127.0.0.1:{portal_port}"}
        build_demo(args.people, env)
        database = data_dir / "portal.db"
        user_id = pick_person(database, args.people)
        portal_command = uvicorn_command("portal.asgi:app", portal_port, args.workers)
        with serving(portal_command, env, portal_port, data_dir / "portal.log") as portal_url:
            cookie = {"Cookie": sign_in(portal_url)}
            htmx = {**cookie, "HX-Request": "true"}
            pages = [
                Page("card", f"/people/{user_id}/card", htmx),
                Page("profile", f"/people/{user_id}", cookie),
                Page("search", f"/people?q={SEARCH}", htmx),
                Page("search-page", f"/people?q={SEARCH}", cookie),
            ]
            pages = [page for page in pages if page.name in args.pages.split(",")]
            sizes = {page.name: response_size(portal_url, page) for page in pages}
            baseline_env = env | {"BENCH_DATABASE": str(database), "BENCH_SIZES": json.dumps(sizes)}
            # As bench.pages from the project's root: bench/ itself on the path would put
            # bench/calendar.py in the standard library's place.
            baseline_command = [
                *uvicorn_command("bench.pages:baseline_app", baseline_port, args.workers),
                "--factory",
            ]
            print(
                f"{args.people} people; person {user_id}; search {SEARCH!r}; wrk -t{args.threads} "
                f"-c{args.connections} -d{args.seconds}s; uvicorn --workers {args.workers} "
                f"--loop uvloop --http httptools; response bytes {sizes}",
                flush=True,
            )
            rows: list[tuple[str, Load, Load]] = []
            log = data_dir / "baseline.log"
            with serving(baseline_command, baseline_env, baseline_port, log) as baseline_url:
                for page in pages:
                    baseline = measure(f"{baseline_url}/{page.name}/{user_id}", {}, args)
                    portal = measure(portal_url + page.path, page.headers, args)
                    rows.append((page.name, baseline, portal))
                    print(f"  measured {page.name}", flush=True)
    report(rows)


if __name__ == "__main__":
    main()
