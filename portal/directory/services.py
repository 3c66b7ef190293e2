"""Finding colleagues: search by name, email, title or department."""

from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from portal.accounts.models import User
from portal.pagination import Page, paginate


async def departments(session: AsyncSession) -> list[str]:
    rows = await session.execute(
        select(User.department).where(User.active.is_(True), User.department != "").distinct().order_by(User.department)
    )
    return list(rows.scalars())


async def search_people(
    session: AsyncSession, text: str, *, department: str = "", page: int = 1, size: int = 25
) -> Page[User]:
    """Active colleagues whose name, email, title or department contains `text`."""
    query = select(User).where(User.active.is_(True)).order_by(User.display_name, User.id)
    if text:
        pattern = f"%{text.lower()}%"
        query = query.where(
            or_(
                User.display_name.ilike(pattern),
                User.email.like(pattern),
                User.title.ilike(pattern),
                User.department.ilike(pattern),
            )
        )
    if department:
        query = query.where(User.department == department)
    return await paginate(session, query, page, size)
