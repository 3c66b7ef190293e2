"""Notices for people: raised in the caller's transaction, counted, listed and marked read."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import CursorResult, Select, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from portal.accounts.models import User
from portal.db import utcnow
from portal.notifications.live import Event, publish
from portal.notifications.models import KIND_MAX, TEXT_MAX, URL_MAX, Notification
from portal.pagination import Page, paginate

PAGE_SIZE = 20
MENU_SIZE = 8


def portal_path(url: str) -> str:
    """`url` if it is a path inside the portal (such as /join/<token>); ValueError otherwise."""
    if (
        not url.startswith("/")
        or url.startswith(("//", "/\\"))
        or len(url) > URL_MAX
        or any(ch.isspace() or ord(ch) < 32 or ch == "\\" for ch in url)
    ):
        raise ValueError(f"a notice links inside the portal, not to {url[:80]!r}")
    return url


async def notify(
    session: AsyncSession, *, recipient: User, actor: User | None, kind: str, text: str, url: str
) -> Notification:
    """Add a notice for `recipient` to the caller's transaction; it shows live once that commits.

    `text` is the whole sentence, plain text (it is escaped wherever it is shown); `url` is a
    path inside the portal. Nothing is committed here.
    """
    if actor is not None and actor.company_id != recipient.company_id:
        raise ValueError("a notice's actor and recipient belong to one company")
    if not kind or len(kind) > KIND_MAX:
        raise ValueError(f"a notice's kind is 1 to {KIND_MAX} characters")
    text = text.strip()
    if not text:
        raise ValueError("a notice needs a text")
    if len(text) > TEXT_MAX:
        text = text[: TEXT_MAX - 1].rstrip() + "…"
    notice = Notification(
        company_id=recipient.company_id,
        user_id=recipient.id or 0,
        actor_id=actor.id if actor is not None else None,
        kind=kind,
        text=text,
        url=portal_path(url),
    )
    session.add(notice)
    await session.flush()
    await publish(session, Event(notice.id, notice.user_id, notice.company_id))
    return notice


async def unread_count(session: AsyncSession, user: User) -> int:
    query = select(func.count(col(Notification.id))).where(
        col(Notification.user_id) == user.id, col(Notification.read_at).is_(None)
    )
    return int((await session.execute(query)).scalar_one())


def _newest_first(user: User) -> Select[Any]:
    return (
        select(Notification)
        .where(col(Notification.user_id) == user.id)
        .order_by(col(Notification.created_at).desc(), col(Notification.id).desc())
    )


async def recent(
    session: AsyncSession, user: User, page: int = 1, size: int = PAGE_SIZE
) -> Page[Notification]:
    """`user`'s notices, newest first, one page of them."""
    return await paginate(session, _newest_first(user), page, size)


async def latest(session: AsyncSession, user: User, limit: int = MENU_SIZE) -> list[Notification]:
    """The few newest notices, for the bell's menu."""
    rows = await session.execute(_newest_first(user).limit(limit))
    return list(rows.scalars())


async def get(session: AsyncSession, user: User, notification_id: int) -> Notification | None:
    """One of `user`'s own notices, or None (another person's, another company's, or none)."""
    notice = await session.get(Notification, notification_id)
    return notice if notice is not None and notice.user_id == user.id else None


async def mark_read(session: AsyncSession, user: User, notification_id: int) -> Notification | None:
    """Mark one of `user`'s notices read; None if it is not theirs."""
    notice = await get(session, user, notification_id)
    if notice is None:
        return None
    if notice.read_at is None:
        notice.read_at = utcnow()
        await publish(session, Event(None, user.id or 0, user.company_id))
    return notice


async def mark_all_read(session: AsyncSession, user: User) -> int:
    """Mark every unread notice of `user` read; how many there were."""
    result = await session.execute(
        update(Notification)
        .where(col(Notification.user_id) == user.id, col(Notification.read_at).is_(None))
        .values(read_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    changed = cast(CursorResult[Any], result).rowcount
    if changed:
        await publish(session, Event(None, user.id or 0, user.company_id))
    return changed
