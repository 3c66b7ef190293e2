"""Replies: signed links from the email (public, guests too) and the details page's buttons."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import re
import time
from collections.abc import Callable
from typing import Any

import pytest
from itsdangerous import TimestampSigner
from sqlalchemy import select
from starlette.datastructures import Secret

from portal.accounts.models import Company, User
from portal.calendar import services
from portal.calendar.forms import EventInput
from portal.calendar.models import (
    ACCEPTED,
    DECLINED,
    NEEDS_ACTION,
    TENTATIVE,
    CalendarEvent,
    EventParticipant,
)
from portal.calendar.replies import MAX_AGE, record_reply, reply_link, reply_token
from portal.db import UNSCOPED, Database, utcnow
from portal.mail.models import OutboxMessage
from portal.notifications.models import Notification
from portal.settings import Settings
from tests.calendar.test_invitations import GUEST, make_event
from tests.conftest import PortalClient, make_company, make_user

# Next week: the event is not over, whenever the tests run.
SOON = (utcnow() + dt.timedelta(days=7)).replace(microsecond=0)


async def participant(db: Database, participant_id: int | None) -> EventParticipant:
    async with db.session(company_id=UNSCOPED) as session:
        found = await session.get(EventParticipant, participant_id)
        assert found is not None
        return found


async def notices(db: Database) -> list[Notification]:
    async with db.session(company_id=UNSCOPED) as session:
        rows = await session.execute(select(Notification).order_by(Notification.id))
        return list(rows.scalars())


async def change(db: Database, event: CalendarEvent, **fields: object) -> None:
    async with db.session(company_id=event.company_id, write=True) as session:
        row = await session.get(CalendarEvent, event.id)
        assert row is not None
        for name, value in fields.items():
            setattr(row, name, value)
        await session.commit()


def path(url: str) -> str:
    return url.removeprefix("http://testserver")


async def test_a_reply_link_shows_the_event_and_changes_nothing_until_posted(
    db: Database, settings: Settings, client: PortalClient, admin: User, member: User
) -> None:
    event, (bob,) = await make_event(db, admin, [member], starts_at=SOON)
    url = path(reply_link(settings, bob, event, ACCEPTED))
    page = await client.get(url)
    assert page.status_code == 200
    assert "Weekly sync" in page.text and "Room 4" in page.text
    assert "Ada Admin" in page.text
    assert '<button class="primary" type="submit">Accept</button>' in page.text
    assert 'name="csrf_token"' in page.text
    # A mail scanner opening the link (twice) answers nothing.
    await client.get(url)
    assert (await participant(db, bob.id)).partstat == NEEDS_ACTION
    assert await notices(db) == []

    answered = await client.post(url)
    assert answered.status_code == 303 and answered.headers["location"].endswith(url)
    stored = await participant(db, bob.id)
    assert stored.partstat == ACCEPTED and stored.responded_at is not None
    (notice,) = await notices(db)
    assert notice.user_id == admin.id and notice.actor_id == member.id
    assert notice.kind == "calendar_reply"
    assert notice.text == "Bob Member accepted “Weekly sync”"
    assert notice.url == f"/calendar/events/{event.id}"
    after = await client.get(url)
    assert "now has your answer (Accepted)" in after.text
    assert "Your answer: <strong>Accepted</strong>" in after.text
    assert '<button class="primary"' not in after.text

    # The same link again: nothing new for the organizer.
    again = await client.post(url)
    assert again.status_code == 303
    assert len(await notices(db)) == 1
    assert "Your answer was already Accepted." in (await client.get(url)).text

    # Another answer is news again.
    declined = path(reply_link(settings, bob, event, DECLINED))
    await client.get(declined)
    assert (await client.post(declined)).status_code == 303
    assert (await participant(db, bob.id)).partstat == DECLINED
    assert [n.text for n in await notices(db)][-1] == "Bob Member declined “Weekly sync”"


async def test_two_clicks_at_once_notify_the_organizer_once(
    db: Database, settings: Settings, client: PortalClient, admin: User
) -> None:
    event, (gina,) = await make_event(db, admin, [GUEST], starts_at=SOON)
    url = path(reply_link(settings, gina, event, ACCEPTED))
    await client.get(url)
    token = await client.csrf()
    answers = await asyncio.gather(
        *(client.http.post(url, data={"csrf_token": token}) for _ in range(4))
    )
    assert [a.status_code for a in answers] == [303] * 4
    assert (await participant(db, gina.id)).partstat == ACCEPTED
    assert len(await notices(db)) == 1


async def test_an_external_guest_answers_without_an_account(
    db: Database, settings: Settings, client: PortalClient, admin: User
) -> None:
    event, (gina,) = await make_event(db, admin, [GUEST], starts_at=SOON)
    url = path(reply_link(settings, gina, event, TENTATIVE))
    page = await client.get(url)
    assert page.status_code == 200 and GUEST in page.text
    # A guest reads the event's own zone.
    assert "(Europe/Berlin)" in page.text
    assert (await client.post(url)).status_code == 303
    assert (await participant(db, gina.id)).partstat == TENTATIVE
    (notice,) = await notices(db)
    assert notice.actor_id is None
    assert notice.text == f"{GUEST} tentatively accepted “Weekly sync”"


async def test_the_page_offers_the_other_answers(
    db: Database, settings: Settings, client: PortalClient, admin: User
) -> None:
    event, (gina,) = await make_event(db, admin, [GUEST], starts_at=SOON)
    page = await client.get(path(reply_link(settings, gina, event, ACCEPTED)))
    assert ">Tentative</a>" in page.text and ">Decline</a>" in page.text
    assert ">Accept</a>" not in page.text


async def test_a_tampered_link_is_refused(
    db: Database, settings: Settings, client: PortalClient, admin: User
) -> None:
    event, (gina,) = await make_event(db, admin, [GUEST], starts_at=SOON)
    token = reply_token(settings, gina, event, ACCEPTED)
    payload, _, signature = token.rpartition(".")
    forged = payload + "." + ("A" if signature[0] != "A" else "B") + signature[1:]
    for bad in (forged, token[:-3], "not-a-token", "x" * 2000):
        page = await client.get(f"/calendar/reply/{bad}")
        assert page.status_code == 400
        assert "This reply link is not valid" in page.text
    refused = await client.post(f"/calendar/reply/{forged}")
    assert refused.status_code == 400
    assert (await participant(db, gina.id)).partstat == NEEDS_ACTION
    assert await notices(db) == []


async def test_a_link_signed_for_another_answer_cannot_be_rewritten(
    db: Database, settings: Settings, client: PortalClient, admin: User
) -> None:
    event, (gina,) = await make_event(db, admin, [GUEST], starts_at=SOON)
    # Someone else's signature on the same payload is no signature.
    other = dataclasses.replace(settings, secret_key=Secret("another-secret-" + "y" * 40))
    page = await client.get(path(reply_link(other, gina, event, ACCEPTED)))
    assert page.status_code == 400


async def test_an_expired_link_is_refused(
    db: Database,
    settings: Settings,
    client: PortalClient,
    admin: User,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    event, (gina,) = await make_event(db, admin, [GUEST], starts_at=SOON)
    old = int(time.time() - MAX_AGE.total_seconds() - 60)
    with monkeypatch.context() as patched:
        patched.setattr(TimestampSigner, "get_timestamp", lambda self: old)
        url = path(reply_link(settings, gina, event, ACCEPTED))
    page = await client.get(url)
    assert page.status_code == 410 and "This reply link has expired" in page.text
    assert (await client.post(url)).status_code == 410
    assert (await participant(db, gina.id)).partstat == NEEDS_ACTION


async def test_a_link_to_an_event_that_is_over_is_refused(
    db: Database, settings: Settings, client: PortalClient, admin: User
) -> None:
    yesterday = utcnow() - dt.timedelta(days=1)
    event, (gina,) = await make_event(db, admin, [GUEST], starts_at=yesterday)
    url = path(reply_link(settings, gina, event, ACCEPTED))
    page = await client.get(url)
    assert page.status_code == 410 and "This event is over" in page.text
    assert (await client.post(url)).status_code == 410
    assert (await participant(db, gina.id)).partstat == NEEDS_ACTION


async def test_a_link_from_an_older_invitation_shows_the_event_as_it_is_now(
    db: Database, settings: Settings, client: PortalClient, admin: User
) -> None:
    event, (gina,) = await make_event(db, admin, [GUEST], starts_at=SOON)
    url = path(reply_link(settings, gina, event, ACCEPTED))
    await change(db, event, sequence=1, location="Room 9")
    page = await client.get(url)
    assert page.status_code == 409
    assert "This invitation has changed since this email; use the newest one" in page.text
    assert "Room 9" in page.text and "Room 4" not in page.text
    assert "<form" not in page.text.split("<main")[1]
    assert (await client.post(url)).status_code == 409
    assert (await participant(db, gina.id)).partstat == NEEDS_ACTION
    assert await notices(db) == []


async def test_a_link_to_a_cancelled_event_or_a_removed_participant_is_refused(
    db: Database, settings: Settings, client: PortalClient, admin: User
) -> None:
    event, (gina, other) = await make_event(
        db, admin, [GUEST, "olga@guest.example"], starts_at=SOON
    )
    removed = path(reply_link(settings, other, event, ACCEPTED))
    async with db.session(company_id=event.company_id, write=True) as session:
        row = await session.get(EventParticipant, other.id)
        await session.delete(row)
        await session.commit()
    page = await client.get(removed)
    assert page.status_code == 404 and "This invitation no longer exists" in page.text
    url = path(reply_link(settings, gina, event, ACCEPTED))
    await change(db, event, cancelled_at=utcnow())
    page = await client.get(url)
    assert page.status_code == 410 and "This event was cancelled." in page.text


async def test_a_reply_link_posted_without_the_form_token_is_refused(
    db: Database, settings: Settings, client: PortalClient, admin: User
) -> None:
    event, (gina,) = await make_event(db, admin, [GUEST], starts_at=SOON)
    url = path(reply_link(settings, gina, event, ACCEPTED))
    refused = await client.http.post(url, data={})
    assert refused.status_code == 403
    assert (await participant(db, gina.id)).partstat == NEEDS_ACTION


async def test_a_participant_answers_on_the_details_page(
    db: Database, client: PortalClient, admin: User, member: User
) -> None:
    event, (bob,) = await make_event(db, admin, [member], starts_at=SOON)
    await client.sign_in(member.email)
    answered = await client.post(
        f"/calendar/events/{event.id}/reply", {"answer": TENTATIVE, "occurrence": "1796630400"}
    )
    assert answered.status_code == 303
    assert answered.headers["location"] == (
        f"http://testserver/calendar/events/{event.id}?occurrence=1796630400"
    )
    assert (await participant(db, bob.id)).partstat == TENTATIVE
    (notice,) = await notices(db)
    assert notice.text == "Bob Member tentatively accepted “Weekly sync”"

    swapped = await client.post(
        f"/calendar/events/{event.id}/reply", {"answer": ACCEPTED}, headers={"HX-Request": "true"}
    )
    assert swapped.status_code == 200
    assert swapped.text.lstrip().startswith('<section id="event-reply"')
    assert 'value="ACCEPTED" aria-pressed="true"' in swapped.text
    assert 'name="occurrence"' not in swapped.text
    assert "You accepted." in swapped.text
    # The same answer again is no news.
    await client.post(
        f"/calendar/events/{event.id}/reply", {"answer": ACCEPTED}, headers={"HX-Request": "true"}
    )
    assert len(await notices(db)) == 2


async def test_an_answer_that_is_none_of_the_three_is_refused(
    db: Database, client: PortalClient, admin: User, member: User
) -> None:
    event, (bob,) = await make_event(db, admin, [member], starts_at=SOON)
    await client.sign_in(member.email)
    for answer in ("MAYBE", "", "accepted", "NEEDS-ACTION"):
        refused = await client.post(
            f"/calendar/events/{event.id}/reply",
            {"answer": answer},
            headers={"HX-Request": "true"},
        )
        assert refused.status_code == 422
        assert "Choose Accept, Tentative or Decline." in refused.text
    plain = await client.post(f"/calendar/events/{event.id}/reply", {"answer": "MAYBE"})
    assert plain.status_code == 422 and "Choose Accept, Tentative or Decline." in plain.text
    assert (await participant(db, bob.id)).partstat == NEEDS_ACTION
    assert await notices(db) == []


async def test_a_cancelled_event_takes_no_answer(
    db: Database, client: PortalClient, admin: User, member: User
) -> None:
    event, (bob,) = await make_event(db, admin, [member], starts_at=SOON)
    await change(db, event, cancelled_at=utcnow())
    await client.sign_in(member.email)
    refused = await client.post(
        f"/calendar/events/{event.id}/reply", {"answer": ACCEPTED}, headers={"HX-Request": "true"}
    )
    assert refused.status_code == 422
    assert "This event was cancelled" in refused.text and "<button" not in refused.text
    assert (await participant(db, bob.id)).partstat == NEEDS_ACTION


async def test_only_participants_answer_on_the_details_page(
    db: Database,
    client: PortalClient,
    new_client: Callable[[], PortalClient],
    admin: User,
    member: User,
) -> None:
    event, _ = await make_event(db, admin, [GUEST], starts_at=SOON)
    await client.sign_in(member.email)
    for event_id in (str(event.id), "999999", "abc"):
        refused = await client.post(f"/calendar/events/{event_id}/reply", {"answer": ACCEPTED})
        assert refused.status_code == 404
    # The organizer is no participant either.
    organizer = new_client()
    await organizer.sign_in(admin.email)
    refused = await organizer.post(f"/calendar/events/{event.id}/reply", {"answer": ACCEPTED})
    assert refused.status_code == 404


async def test_another_companys_participant_cannot_be_answered_for(
    db: Database, client: PortalClient, acme: Company, admin: User, member: User
) -> None:
    globex = await make_company(db, "Globex")
    gus = await make_user(db, globex, "gus@globex.example", name="Gus")
    # The same address invited in Globex as Bob's: a person of Acme is still no one there.
    theirs, (guest_bob,) = await make_event(db, gus, ["bob@acme.example"], starts_at=SOON)
    await client.sign_in(member.email)
    refused = await client.post(f"/calendar/events/{theirs.id}/reply", {"answer": ACCEPTED})
    assert refused.status_code == 404
    assert (await participant(db, guest_bob.id)).partstat == NEEDS_ACTION
    assert await notices(db) == []


async def test_record_reply_refuses_an_unknown_answer(
    db: Database, admin: User, member: User
) -> None:
    event, (bob,) = await make_event(db, admin, [member], starts_at=SOON)
    async with db.session(company_id=event.company_id, write=True) as session:
        row = await session.get(EventParticipant, bob.id)
        assert row is not None
        with pytest.raises(ValueError, match="not an answer"):
            await record_reply(session, row, event, NEEDS_ACTION, actor=None)


async def test_the_reply_page_escapes_what_the_organizer_typed(
    db: Database, settings: Settings, client: PortalClient, admin: User
) -> None:
    event, (gina,) = await make_event(
        db, admin, [GUEST], starts_at=SOON, title="<script>alert(1)</script>"
    )
    await change(db, event, description="<b>bold</b>\nsecond line")
    page = await client.get(path(reply_link(settings, gina, event, ACCEPTED)))
    assert "<script>alert(1)" not in page.text and "&lt;script&gt;alert(1)" in page.text
    assert "&lt;b&gt;bold&lt;/b&gt;<br>\nsecond line" in page.text


def _form(**changes: Any) -> EventInput:
    """Next week's meeting in Berlin, through the event form's own service."""
    day = SOON.date().isoformat()
    values: dict[str, Any] = {
        "title": "Planning",
        "start_date": day,
        "start_time": "09:00",
        "end_date": day,
        "end_time": "10:00",
        "time_zone": "Europe/Berlin",
        "emails": f"{GUEST} olga@guest.example",
    }
    return EventInput(**(values | changes))


async def _save(
    db: Database, settings: Settings, organizer: User, data: EventInput, event_id: int = 0
) -> int:
    """Create the event, or update `event_id`, through the event form's services."""
    async with db.session(company_id=organizer.company_id, write=True) as session:
        company = await session.get(Company, organizer.company_id)
        assert company is not None
        if event_id:
            saved = await services.update_event(
                session, settings, company, organizer, event_id, data
            )
        else:
            saved = await services.create_event(session, settings, company, organizer, data)
        await session.commit()
        return saved.event.id or 0


async def _accept_links(db: Database, address: str) -> list[str]:
    """The Accept links of the invitations mailed to `address`, oldest first."""
    async with db.session(company_id=UNSCOPED) as session:
        rows = await session.execute(
            select(OutboxMessage)
            .where(OutboxMessage.to_address == address)
            .order_by(OutboxMessage.id)
        )
        bodies = [m.body_text for m in rows.scalars() if m.template == "event_invitation"]
    return [path(re.findall(r"Accept: (\S+)", text)[0]) for text in bodies]


async def test_a_guest_answers_an_invitation_the_event_form_sent(
    db: Database, settings: Settings, client: PortalClient, admin: User
) -> None:
    event_id = await _save(db, settings, admin, _form())
    (accept,) = await _accept_links(db, GUEST)
    assert (await client.get(accept)).status_code == 200
    assert (await client.post(accept)).status_code == 303
    (notice,) = await notices(db)
    assert notice.text == f"{GUEST} accepted “Planning”"
    # A change of time sends a newer invitation; the older link now says so.
    await _save(db, settings, admin, _form(start_time="10:00", end_time="11:00"), event_id=event_id)
    older, newer = await _accept_links(db, GUEST)
    assert older == accept
    assert (await client.get(older)).status_code == 409
    assert (await client.get(newer)).status_code == 200


async def test_removing_someone_leaves_the_others_links_working(
    db: Database, settings: Settings, client: PortalClient, admin: User
) -> None:
    event_id = await _save(db, settings, admin, _form())
    await _save(db, settings, admin, _form(emails=GUEST), event_id=event_id)
    accept = (await _accept_links(db, GUEST))[-1]
    assert (await client.get(accept)).status_code == 200


async def test_cancelling_one_occurrence_leaves_the_links_working(
    db: Database, settings: Settings, client: PortalClient, admin: User
) -> None:
    weekly = _form(repeat="daily", ends="after", count="5")
    event_id = await _save(db, settings, admin, weekly)
    async with db.session(company_id=admin.company_id, write=True) as session:
        company = await session.get(Company, admin.company_id)
        series = await session.get(CalendarEvent, event_id)
        assert company is not None and series is not None
        second = series.starts_at + dt.timedelta(days=1)
        await services.cancel_event(session, settings, company, admin, event_id, occurrence=second)
        await session.commit()
    (accept,) = await _accept_links(db, GUEST)
    assert (await client.get(accept)).status_code == 200
