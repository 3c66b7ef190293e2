"""Finding colleagues: search by name, email, title or department."""

from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from portal.accounts.models import User
from portal.pagination import Page, paginate


async def departments(session: AsyncSession) -> list[str]:
    rows = await session.execute(
        select(col(User.department))
        .where(col(User.active).is_(True), col(User.department) != "")
        .distinct()
        .order_by(col(User.department))
    )
    return list(rows.scalars())


async def search_people(
    session: AsyncSession, text: str, *, department: str = "", page: int = 1, size: int = 25
) -> Page[User]:
    """Active colleagues whose name, email, title or department contains `text`."""
    query = (
        select(User)
        .where(col(User.active).is_(True))
        .order_by(col(User.display_name), col(User.id))
    )
    if text:
        pattern = f"%{text.lower()}%"
        query = query.where(
            or_(
                col(User.display_name).ilike(pattern),
                col(User.email).like(pattern),
                col(User.title).ilike(pattern),
                col(User.department).ilike(pattern),
            )
        )
    if department:
        query = query.where(col(User.department) == department)
    return await paginate(session, query, page, size)
