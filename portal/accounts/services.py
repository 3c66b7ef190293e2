"""Signing in, adding and importing people, profiles and passwords: plain functions."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field

from pwdlib import PasswordHash
from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from portal.accounts.forms import InvalidEmail, PersonInput, ProfileInput, normalize_email
from portal.accounts.models import ADMIN, Company, LoginThrottle, User
from portal.accounts.passwords import hash_password, password_problem, verify_password
from portal.accounts.tokens import (
    InvalidLink,
    link_matches,
    make_set_password_token,
    read_set_password_token,
)
from portal.db import Database, utcnow
from portal.forms import FormErrors
from portal.mail.messages import render_email
from portal.mail.models import OutboxMessage
from portal.mail.outbox import enqueue
from portal.settings import Settings

THROTTLE_AFTER = 5
THROTTLE_FIRST_WAIT = dt.timedelta(seconds=30)
THROTTLE_LONGEST_WAIT = dt.timedelta(minutes=15)
RESET_EMAIL_INTERVAL = dt.timedelta(minutes=5)


@dataclass
class SignInResult:
    user: User | None = None
    error: str | None = None
    # The same address and password in several companies: the person picks one.
    companies: list[Company] = field(default_factory=list)


def _wait_text(seconds: float) -> str:
    seconds = math.ceil(seconds)
    if seconds < 90:
        return f"{seconds} seconds"
    return f"{math.ceil(seconds / 60)} minutes"


async def _seconds_locked(session: AsyncSession, email: str) -> float:
    throttle = await session.get(LoginThrottle, email)
    if throttle is None or throttle.locked_until is None:
        return 0
    return max(0.0, (throttle.locked_until - utcnow()).total_seconds())


async def _record_failure(session: AsyncSession, email: str) -> float:
    """Count a failed try; from the fifth in a row on, each try waits twice as long as the last."""
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    upsert = insert(LoginThrottle).values(email=email, failures=1)
    statement = upsert.on_conflict_do_update(
        index_elements=["email"], set_={"failures": col(LoginThrottle.failures) + 1}
    ).returning(col(LoginThrottle.failures))
    failures = (await session.execute(statement)).scalar_one()
    if failures < THROTTLE_AFTER:
        return 0
    wait = min(THROTTLE_FIRST_WAIT * 2 ** (failures - THROTTLE_AFTER), THROTTLE_LONGEST_WAIT)
    await session.execute(
        update(LoginThrottle)
        .where(col(LoginThrottle.email) == email)
        .values(locked_until=utcnow() + wait)
    )
    return wait.total_seconds()


@dataclass
class SignInAttempt:
    """An address and the accounts it may be, read before the password is checked."""

    email: str = ""
    candidates: list[User] = field(default_factory=list)
    error: str | None = None


async def begin_sign_in(session: AsyncSession, raw_email: str, password: str) -> SignInAttempt:
    """The accounts an email may sign in to, unless the address is refused or throttled."""
    try:
        email = normalize_email(raw_email)
    except InvalidEmail as error:
        return SignInAttempt(error=str(error))
    if not password:
        return SignInAttempt(error="Enter your password.")
    wait = await _seconds_locked(session, email)
    if wait:
        return SignInAttempt(
            error=f"Too many failed sign-in attempts for {email}. Try again in {_wait_text(wait)}."
        )
    candidates = (await session.execute(select(User).where(col(User.email) == email))).scalars()
    return SignInAttempt(email, list(candidates))


async def check_password(
    hasher: PasswordHash, attempt: SignInAttempt, password: str
) -> list[tuple[User, str | None]]:
    """The candidates the password is right for, each with a new hash when it needs one.

    Outside any transaction: a check costs a hundred milliseconds. With no candidate a dummy
    hash is checked, so the time taken tells nobody whether the address has an account.
    """
    matches: list[tuple[User, str | None]] = []
    to_check: list[User | None] = list(attempt.candidates) or [None]
    for user in to_check:
        ok, new_hash = await verify_password(hasher, password, user.password_hash if user else None)
        if ok and user is not None:
            matches.append((user, new_hash))
    return matches


async def finish_sign_in(
    session: AsyncSession,
    attempt: SignInAttempt,
    matches: list[tuple[User, str | None]],
    company_id: int | None = None,
) -> SignInResult:
    """Count a failure towards the per-address throttle, or clear it for the person signing in."""
    if not matches:
        wait = await _record_failure(session, attempt.email)
        message = "Wrong email or password."
        if wait:
            message += f" Too many failed attempts: wait {_wait_text(wait)} before trying again."
        return SignInResult(error=message)
    active = [(u, h) for u, h in matches if u.active]
    if not active:
        return SignInResult(
            error="This account has been deactivated. Ask your company admin to reactivate it."
        )
    if company_id is not None:
        active = [(u, h) for u, h in active if u.company_id == company_id] or active
    if len(active) > 1:
        ids = [u.company_id for u, _ in active]
        companies = (
            await session.execute(select(Company).where(col(Company.id).in_(ids)))
        ).scalars()
        return SignInResult(companies=sorted(companies, key=lambda c: c.name))
    user, new_hash = active[0]
    await session.execute(
        update(LoginThrottle)
        .where(col(LoginThrottle.email) == attempt.email)
        .values(failures=0, locked_until=None)
    )
    if new_hash:
        await session.execute(
            update(User).where(col(User.id) == user.id).values(password_hash=new_hash)
        )
        user.password_hash = new_hash
    return SignInResult(user=user)


def queue_password_email(
    session: AsyncSession,
    settings: Settings,
    company: Company,
    user: User,
    *,
    template: str,
    actor: User | None = None,
) -> OutboxMessage:
    token = make_set_password_token(str(settings.secret_key), user)
    content = render_email(
        settings.templates_dir,
        template,
        {
            "name": user.display_name,
            "email": user.email,
            "company_name": company.name,
            "inviter_name": actor.display_name if actor else company.name,
            "link": f"{settings.base_url}/set-password/{token}",
            "hours": settings.set_password_link_hours,
        },
    )
    return enqueue(
        session,
        settings,
        company_id=company.id or 0,
        to_address=user.email,
        to_name=user.display_name,
        content=content,
        template=template,
        reply_to=actor.email if actor else "",
    )


async def email_taken(session: AsyncSession, email: str, *, except_id: int | None = None) -> bool:
    query = select(func.count()).select_from(User).where(col(User.email) == email)
    if except_id is not None:
        query = query.where(col(User.id) != except_id)
    return bool((await session.execute(query)).scalar_one())


DUPLICATE_EMAIL = "Someone in your company already uses this email address."


async def add_person(
    session: AsyncSession, settings: Settings, company: Company, actor: User, person: PersonInput
) -> User:
    """Create the person and queue their set-password email, in one transaction."""
    if await email_taken(session, person.email):
        raise FormErrors({"email": DUPLICATE_EMAIL})
    user = User(company_id=company.id or 0, **vars(person))
    try:
        # A savepoint: a concurrent add of the same address may win the race.
        async with session.begin_nested():
            session.add(user)
            await session.flush()
    except IntegrityError as error:
        raise FormErrors({"email": DUPLICATE_EMAIL}) from error
    queue_password_email(session, settings, company, user, template="set_password", actor=actor)
    return user


async def update_person(
    session: AsyncSession, actor: User, user: User, person: PersonInput
) -> User:
    """An admin's edit of someone's details; refuses to leave the company without an admin."""
    if await email_taken(session, person.email, except_id=user.id):
        raise FormErrors({"email": DUPLICATE_EMAIL})
    if user.is_admin and person.role != ADMIN:
        await _ensure_another_admin(session, user)
    email_changed = person.email != user.email
    try:
        # A savepoint: a concurrent change may take the same address first.
        async with session.begin_nested():
            for name, value in vars(person).items():
                setattr(user, name, value)
            if email_changed:
                user.session_version += 1
            await session.flush()
    except IntegrityError as error:
        await session.refresh(user)  # the savepoint's rollback expired what was set
        raise FormErrors({"email": DUPLICATE_EMAIL}) from error
    return user


async def resend_invitation(
    session: AsyncSession, settings: Settings, company: Company, actor: User, user: User
) -> None:
    queue_password_email(session, settings, company, user, template="set_password", actor=actor)


async def _ensure_another_admin(session: AsyncSession, user: User) -> None:
    others = await session.execute(
        select(func.count())
        .select_from(User)
        .where(col(User.role) == ADMIN, col(User.active).is_(True), col(User.id) != user.id)
    )
    if not others.scalar_one():
        raise FormErrors(
            {"role": "The company needs at least one active admin; make someone else admin first."}
        )


async def set_active(session: AsyncSession, actor: User, user: User, active: bool) -> None:
    """Deactivate (signing them out everywhere) or reactivate a person."""
    if not active:
        if user.id == actor.id:
            raise FormErrors({"active": "You can't deactivate yourself."})
        if user.is_admin:
            await _ensure_another_admin(session, user)
        user.session_version += 1
    user.active = active


async def update_profile(session: AsyncSession, user: User, profile: ProfileInput) -> User:
    for name, value in vars(profile).items():
        setattr(user, name, value)
    return user


async def change_password(
    session: AsyncSession, hasher: PasswordHash, user: User, current: str, new: str, confirm: str
) -> None:
    """Set a new password and sign the person out of every other session."""
    ok, _ = await verify_password(hasher, current, user.password_hash)
    if not ok:
        raise FormErrors({"current_password": "Your current password is not right."})
    _check_new_password(user, new, confirm)
    user.password_hash = await hash_password(hasher, new)
    user.session_version += 1


async def end_sessions(session: AsyncSession, user_id: int) -> None:
    """Sign a person out everywhere: every cookie carrying the old version stops working."""
    await session.execute(
        update(User)
        .where(col(User.id) == user_id)
        .values(session_version=col(User.session_version) + 1)
    )


def _check_new_password(user: User, new: str, confirm: str) -> None:
    problem = password_problem(new, email=user.email, name=user.display_name)
    if problem:
        raise FormErrors({"new_password": problem})
    if new != confirm:
        raise FormErrors({"confirm_password": "The two passwords are not the same."})


async def user_for_link(db: Database, settings: Settings, token: str) -> User:
    """The person a set-password link is for; InvalidLink when it can't be used."""
    claim = read_set_password_token(
        str(settings.secret_key), token, max_age_hours=settings.set_password_link_hours
    )
    async with db.session(company_id=claim.company_id) as session:
        user = await session.get(User, claim.user_id)
    if user is None or not link_matches(claim, user):
        raise InvalidLink(
            "This link has already been used or is no longer valid. "
            "Sign in, or use “Forgot your password?” to get a new link."
        )
    return user


async def password_from_link(
    db: Database, settings: Settings, token: str, new: str, confirm: str
) -> tuple[User, str]:
    """The person a link is for and the hash of their new password, checked; nothing written.

    Hashed before any write transaction begins: a hash takes a hundred milliseconds.
    """
    user = await user_for_link(db, settings, token)
    _check_new_password(user, new, confirm)
    return user, await hash_password(settings.password_hasher, new)


async def set_password_from_link(session: AsyncSession, user: User, password_hash: str) -> User:
    """Store the new password of the person `password_from_link` read, if the link is unused."""
    fresh = await session.get(User, user.id)
    # Checked again inside the write transaction: two tabs must not both use one link.
    if fresh is None or fresh.password_hash != user.password_hash:
        raise InvalidLink("This link has already been used. Sign in with your new password.")
    fresh.password_hash = password_hash
    fresh.session_version += 1
    return fresh


async def request_password_reset(session: AsyncSession, settings: Settings, raw_email: str) -> None:
    """Email a reset link to every active account with this address; silent otherwise.

    `session` is unscoped: the address may have an account in several companies.
    """
    try:
        email = normalize_email(raw_email)
    except InvalidEmail:
        return
    recent = await session.execute(
        select(func.count())
        .select_from(OutboxMessage)
        .where(
            col(OutboxMessage.to_address) == email,
            col(OutboxMessage.template) == "reset_password",
            col(OutboxMessage.created_at) > utcnow() - RESET_EMAIL_INTERVAL,
        )
    )
    if recent.scalar_one():
        return
    rows = await session.execute(
        select(User, Company)
        .join(Company, col(Company.id) == col(User.company_id))
        .where(col(User.email) == email, col(User.active).is_(True))
    )
    for user, company in rows.all():
        queue_password_email(session, settings, company, user, template="reset_password")


async def create_company(
    session: AsyncSession, name: str, slug: str, time_zone: str = "UTC"
) -> Company:
    company = Company(name=name, slug=slug, default_time_zone=time_zone)
    session.add(company)
    await session.flush()
    return company


async def create_user(
    session: AsyncSession,
    hasher: PasswordHash,
    company: Company,
    person: PersonInput,
    password: str | None,
) -> User:
    """A person created from the command line: with a password, or none until a link sets it."""
    if await email_taken(session, person.email):
        raise FormErrors({"email": DUPLICATE_EMAIL})
    user = User(company_id=company.id or 0, **vars(person))
    if password is not None:
        _check_new_password(user, password, password)
        user.password_hash = await hash_password(hasher, password)
    session.add(user)
    await session.flush()
    return user
