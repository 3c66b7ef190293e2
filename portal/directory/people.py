"""People of the company as a form names them: picked by id, or typed as email addresses.

Meet Now and the event form both invite colleagues and guests; both read them here. The
session is scoped to the company, so an id of anyone else names nobody.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from portal.accounts.forms import InvalidEmail, normalize_email
from portal.accounts.models import User
from portal.forms import FormErrors, parse_id, parse_ids

_ADDRESS_SEPARATORS = re.compile(r"[\s,;]+")


class UnknownPerson(LookupError):
    """An id that is not a person of the company (a 404)."""


def person_ids(raw_ids: list[str]) -> list[int]:
    """The picked people's ids, each once; a value that cannot be an id names nobody here."""
    values = [raw.strip() for raw in raw_ids if raw.strip()]
    for raw in values:
        if parse_id(raw) is None:
            raise UnknownPerson(raw)
    return parse_ids(values)


def addresses(text: str) -> list[str]:
    """The typed addresses, normalised, each once; a malformed one is a FormErrors on "emails"."""
    found: list[str] = []
    for raw in _ADDRESS_SEPARATORS.split(text.strip()):
        if not raw:
            continue
        try:
            address = normalize_email(raw)
        except InvalidEmail as error:
            raise FormErrors({"emails": str(error)}) from error
        if address not in found:
            found.append(address)
    return found


async def people(session: AsyncSession, ids: list[int]) -> list[User]:
    """The colleagues with these ids, in the order given; UnknownPerson for any other id."""
    if not ids:
        return []
    rows = await session.execute(select(User).where(col(User.id).in_(ids)))
    found = {user.id: user for user in rows.scalars()}
    missing = [person_id for person_id in ids if person_id not in found]
    if missing:
        raise UnknownPerson(str(missing[0]))
    return [found[person_id] for person_id in ids]


async def colleagues_by_email(session: AsyncSession, addresses: list[str]) -> dict[str, User]:
    """The people of the company these typed addresses belong to, active or not.

    A colleague's address invites that colleague, and a deactivated one's is refused as
    picking them by name is: it is no guest's.
    """
    if not addresses:
        return {}
    rows = await session.execute(select(User).where(col(User.email).in_(addresses)))
    return {user.email: user for user in rows.scalars()}


def deactivated_refusal(refused: Iterable[User]) -> str:
    """Why these people cannot be invited; "" when there are none."""
    names = [person.display_name for person in refused]
    return f"{', '.join(names)} can no longer be invited (deactivated)." if names else ""


async def picked_people(session: AsyncSession, raw_ids: list[str]) -> list[User]:
    """The people a refused form had picked, in order, so they stay picked; values that name
    no one are left out (the form says what was wrong with them)."""
    ids = parse_ids(raw_ids)
    if not ids:
        return []
    rows = await session.execute(select(User).where(col(User.id).in_(ids)))
    found = {user.id: user for user in rows.scalars()}
    return [found[i] for i in ids if i in found]
