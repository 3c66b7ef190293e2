"""Who the event form invites: the colleagues picked and the addresses typed, read into the
distinct people to store as participants, and the ids the form may name."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from portal.accounts.models import User
from portal.directory.people import (
    addresses,
    colleagues_by_email,
    deactivated_refusal,
    people,
    person_ids,
)
from portal.forms import FormErrors

MAX_PARTICIPANTS = 200


@dataclass
class Guest:
    """One person to invite: a colleague (`user`) or someone known only by their address."""

    email: str
    user: User | None = None


async def guests(
    session: AsyncSession,
    organizer: User,
    participant_ids: list[str],
    emails: str,
    errors: dict[str, str],
    invited: frozenset[str],
) -> tuple[list[Guest], list[str]]:
    """The distinct people to invite, colleagues and guests; notes say who was left out.
    `invited`: the addresses already invited, who stay invited even if since deactivated."""
    notes: list[str] = []
    ids = person_ids(participant_ids)
    picked = await people(session, ids)
    try:
        typed = addresses(emails)
    except FormErrors as error:
        errors.update(error.errors)
        typed = []
    if organizer.id in ids or organizer.email in typed:
        notes.append("You organize this event, so you were not added as a participant.")
    picked = [person for person in picked if person.id != organizer.id]
    known = {person.email for person in picked} | {organizer.email}
    colleagues = await colleagues_by_email(session, [a for a in typed if a not in known])
    refused = deactivated_refusal(
        person
        for person in [*picked, *colleagues.values()]
        if not person.active and person.email not in invited
    )
    if refused:
        errors["invitee"] = refused
    found = [Guest(person.email, person) for person in picked]
    for address in typed:
        if address not in known:
            known.add(address)
            found.append(Guest(address, colleagues.get(address)))
    if len(found) > MAX_PARTICIPANTS:
        errors["invitee"] = (
            f"You can invite at most {MAX_PARTICIPANTS} people; you picked {len(found)}."
        )
    return found, notes
