"""Directory factories: colleagues with a title, a department, a time zone and a phone."""

from __future__ import annotations

from sqlalchemy import update
from sqlmodel import col

from portal.accounts.models import Company, User
from portal.db import Database
from tests.conftest import make_user


async def make_colleague(
    db: Database,
    company: Company,
    email: str,
    name: str,
    *,
    title: str = "",
    department: str = "",
    time_zone: str = "Europe/London",
    phone: str = "",
    active: bool = True,
) -> User:
    user = await make_user(db, company, email, name=name, title=title, department=department)
    async with db.session(company_id=company.id, write=True) as session:
        await session.execute(
            update(User)
            .where(col(User.id) == user.id)
            .values(time_zone=time_zone, phone=phone, active=active)
        )
        await session.commit()
    user.time_zone, user.phone, user.active = time_zone, phone, active
    return user
