"""The `portal` command: serve, worker, db upgrade, create-company, create-user, demo."""

from __future__ import annotations

import argparse
import asyncio
import functools
import getpass
import logging
import os
import re
import sys

import uvicorn
from sqlalchemy import select
from sqlmodel import col

from portal import features, jobs, migrate
from portal.accounts import services
from portal.accounts.demo import DEMO_PASSWORD, PEOPLE, ensure_demo_company
from portal.accounts.forms import clean_person
from portal.accounts.models import ADMIN, MEMBER, Company
from portal.db import UNSCOPED, Database, set_clock_file
from portal.event_loop import UVICORN_LOOP
from portal.forms import FormErrors
from portal.jobs.schema import apply_procrastinate_schema
from portal.logs import TEXT_FORMAT, configure_logging
from portal.mail.smtp import sender_for
from portal.settings import Settings, SettingsError
from portal.timezones import is_time_zone


def _upgrade(settings: Settings) -> None:
    migrate.upgrade(settings.database_url)
    if not settings.is_embedded:
        applied = apply_procrastinate_schema(settings.database_url)
        if applied:
            print(f"procrastinate: applied {', '.join(applied)}")


def _worker(settings: Settings, concurrency: int) -> None:
    if settings.is_embedded:
        raise ValueError(
            "portal worker needs PostgreSQL; on SQLite the jobs run inside the web process"
        )
    if concurrency < 1:
        raise ValueError("--concurrency must be at least 1")
    configure_logging(settings.log_level, settings.log_format)
    set_clock_file(settings.test_clock_file)
    if settings.jobs_runner != "worker":
        logging.getLogger(__name__).warning(
            "PORTAL_JOBS=in-process: web processes run the jobs too; this worker adds to them"
        )
    asyncio.run(
        jobs.run_worker(
            settings,
            features.jobs(),
            concurrency=concurrency,
            new_mail_sender=functools.partial(sender_for, settings),
        )
    )


def _serve(settings: Settings, host: str, port: int, workers: int | None = None) -> None:
    # X-Forwarded-* only from PORTAL_TRUSTED_PROXIES, as the sign-in throttle reads them: without
    # a proxy, anyone could write them and pass for another address.
    trusted = ",".join(settings.trusted_proxies)
    workers = settings.web_workers if workers is None else workers
    if workers < 1:
        raise ValueError("--workers must be at least 1")
    if workers > 1 and settings.is_embedded:
        logging.getLogger(__name__).warning(
            "%d web processes on SQLite: live notices reach only the streams of the process "
            "that raised them; serve one process (the default) or use PostgreSQL",
            workers,
        )
    uvicorn.run(
        "portal.asgi:app",
        host=host,
        port=port,
        workers=workers,
        loop=UVICORN_LOOP,
        proxy_headers=bool(trusted),
        forwarded_allow_ips=trusted,
        log_level=settings.log_level.lower(),
        # portal.asgi sets up logging in each server process (portal.logs), uvicorn's too.
        log_config=None,
    )


async def _create_company(settings: Settings, name: str, slug: str | None, time_zone: str) -> str:
    slug = slug or re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    if not slug:
        raise ValueError("give the company a --slug made of letters and digits")
    if not is_time_zone(time_zone):
        raise ValueError(f"{time_zone!r} is not a time zone; use an IANA name such as Europe/Paris")
    db = Database(settings.database_url)
    try:
        async with db.session(company_id=UNSCOPED, write=True) as session:
            if (await session.execute(select(Company).where(col(Company.slug) == slug))).first():
                raise ValueError(f"a company with slug {slug!r} already exists")
            company = await services.create_company(session, name.strip(), slug, time_zone)
            await session.commit()
            return f"created company {company.name} (slug {company.slug}, id {company.id})"
    finally:
        await db.dispose()


async def _create_user(settings: Settings, args: argparse.Namespace, password: str | None) -> str:
    db = Database(settings.database_url)
    try:
        async with db.session(company_id=UNSCOPED) as session:
            company = (
                await session.execute(select(Company).where(Company.slug == args.company))
            ).scalar_one_or_none()
        if company is None:
            raise ValueError(f"no company with slug {args.company!r}")
        values = {
            "display_name": args.name,
            "email": args.email,
            "title": args.title,
            "department": args.department,
            "phone": args.phone,
            "time_zone": args.time_zone or company.default_time_zone,
            "role": ADMIN if args.admin else MEMBER,
        }
        person, errors = clean_person(values, default_tz=company.default_time_zone)
        if errors:
            raise ValueError("; ".join(errors.values()))
        async with db.session(company_id=company.id, write=True) as session:
            user = await services.create_user(
                session, settings.password_hasher, company, person, password
            )
            await session.commit()
        role = "admin" if user.is_admin else "member"
        return f"created {role} {user.display_name} <{user.email}> in {company.name}"
    finally:
        await db.dispose()


async def _seed_demo(settings: Settings, people: int) -> None:
    db = Database(settings.database_url)
    try:
        demo = await ensure_demo_company(db, settings, people=people)
    finally:
        await db.dispose()
    state = "created" if demo.created else "kept from the last run"
    mail = (
        f"Email goes out through {settings.smtp.host}."
        if settings.smtp.configured
        else "No mail server is configured: read the emails at Company Setup > Outbox."
    )
    print(
        f"\n  Demo company {demo.company.name} ({state}).\n"
        f"  Sign in at {settings.base_url}/signin as {demo.admin_email} "
        f"with password {DEMO_PASSWORD}\n"
        f"  (every demo person has the same password).\n  {mail}\n",
        flush=True,
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="portal", description="The collaboration portal.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the portal over HTTP")
    demo = commands.add_parser(
        "demo", help="migrate, create the demo company if missing, and serve"
    )
    for command in (serve, demo):
        command.add_argument("--host", default="127.0.0.1")
        command.add_argument("--port", type=int, default=8000)
        command.add_argument(
            "--workers",
            type=int,
            default=None,
            help="web processes (default WEB_CONCURRENCY, else 1 on SQLite and 2 on PostgreSQL)",
        )
    demo.add_argument(
        "--no-serve", action="store_true", help="only migrate and create the demo data"
    )
    demo.add_argument(
        "--people",
        type=int,
        default=len(PEOPLE),
        help="how many people a new Acme gets (at least the 30 named ones; bench/ uses 10000)",
    )
    worker = commands.add_parser(
        "worker",
        help="run the background jobs from procrastinate (PostgreSQL); stops on SIGTERM or SIGINT",
    )
    worker.add_argument(
        "--concurrency", type=int, default=4, help="how many jobs this process runs at once"
    )
    db = commands.add_parser("db", help="database schema")
    db.add_argument("action", choices=["upgrade"])
    company = commands.add_parser("create-company", help="add a company")
    company.add_argument("name")
    company.add_argument("--slug")
    company.add_argument("--time-zone", default="UTC")
    user = commands.add_parser("create-user", help="add a person to a company")
    user.add_argument("--company", required=True, help="the company's slug")
    user.add_argument("--email", required=True)
    user.add_argument("--name", required=True)
    user.add_argument("--title", default="")
    user.add_argument("--department", default="")
    user.add_argument("--phone", default="")
    user.add_argument("--time-zone", default="")
    user.add_argument("--admin", action="store_true", help="make the person a company admin")
    user.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    user.add_argument("--no-password", action="store_true", help="leave the password unset")
    return parser


def _environment(args: argparse.Namespace) -> dict[str, str]:
    """The settings' environment; without PORTAL_BASE_URL, serving follows --host and --port."""
    env = dict(os.environ)
    if args.command not in {"serve", "demo"} or env.get("PORTAL_BASE_URL"):
        return env
    host = args.host
    if host in {"0.0.0.0", "::", ""}:  # noqa: S104 (recognising it, not binding to it)
        logging.getLogger(__name__).warning(
            "serving on every address without PORTAL_BASE_URL: only http://127.0.0.1:%d "
            "is answered; set PORTAL_BASE_URL to the address people use",
            args.port,
        )
        host = "127.0.0.1"
    name = f"[{host}]" if ":" in host else host
    env["PORTAL_BASE_URL"] = f"http://{name}:{args.port}"
    return env


def _serve_on_base_url(settings: Settings, args: argparse.Namespace) -> None:
    # The server's processes read their own settings from the environment.
    os.environ["PORTAL_BASE_URL"] = settings.base_url
    configure_logging(settings.log_level, settings.log_format)
    _serve(settings, args.host, args.port, args.workers)


def _read_password(args: argparse.Namespace) -> str | None:
    if args.no_password:
        return None
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("Password: ")
    if first != getpass.getpass("Password again: "):
        raise ValueError("the two passwords differ")
    return first


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format=TEXT_FORMAT)
    args = _parser().parse_args(argv)
    try:
        settings = Settings.from_env(_environment(args))
        if args.command == "db":
            _upgrade(settings)
            print("database is up to date")
        elif args.command == "worker":
            _worker(settings, args.concurrency)
        elif args.command == "create-company":
            if settings.migrate_on_start:
                _upgrade(settings)
            print(asyncio.run(_create_company(settings, args.name, args.slug, args.time_zone)))
        elif args.command == "create-user":
            password = _read_password(args)
            print(asyncio.run(_create_user(settings, args, password)))
        elif args.command == "demo":
            _upgrade(settings)
            asyncio.run(_seed_demo(settings, args.people))
            if not args.no_serve:
                _serve_on_base_url(settings, args)
        else:
            _serve_on_base_url(settings, args)
    except (SettingsError, ValueError, FormErrors, jobs.JobsUnavailable) as error:
        message = "; ".join(error.errors.values()) if isinstance(error, FormErrors) else str(error)
        print(f"portal: {message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
