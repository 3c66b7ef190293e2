"""Adding and importing people, profiles, passwords and set-password links: plain functions."""

from __future__ import annotations

import datetime as dt

from pwdlib import PasswordHash
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from portal.accounts.forms import InvalidEmail, PersonInput, ProfileInput, normalize_email
from portal.accounts.models import (
    ADMIN,
    Company,
    User,
)
from portal.accounts.passwords import hash_password, password_problem, verify_password
from portal.accounts.tokens import (
    SET_PASSWORD_PATH,
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

RESET_EMAIL_INTERVAL = dt.timedelta(minutes=5)


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
            "link": f"{settings.base_url}{SET_PASSWORD_PATH}{token}",
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
