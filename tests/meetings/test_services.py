"""Meet Now's rules: who can be invited, once, and what each invitee receives."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt

import pytest
from sqlalchemy import func, select

from portal.accounts.models import Company, User
from portal.accounts.services import FormErrors
from portal.conferencing.services import resolve_room
from portal.db import UNSCOPED, Database
from portal.directory.people import UnknownPerson
from portal.mail.models import OutboxMessage
from portal.meetings import services
from portal.meetings.models import Meeting, MeetingInvitee, MeetingJoin
from portal.meetings.services import MeetNowRequest
from portal.notifications.models import Notification
from portal.settings import Settings
from tests.conftest import make_company, make_user


async def start(
    db: Database,
    settings: Settings,
    host: User,
    *,
    ids: list[object] = (),  # type: ignore[assignment]
    emails: str = "",
    message: str = "",
    key: str = "request-key-1",
) -> services.StartedMeeting:
    async with db.session(company_id=host.company_id, write=True) as session:
        company = await session.get(Company, host.company_id)
        assert company is not None
        started = await services.start_meeting(
            session,
            settings,
            company,
            host,
            MeetNowRequest([str(i) for i in ids], emails, message, key),
        )
        # The service adds and flushes; the request (here, the test) commits.
        await session.commit()
        return started


async def join(db: Database, token: str, visitor: User | None) -> services.JoinTarget:
    """A click on a join link, committed as the public join page does."""
    async with db.transaction(company_id=UNSCOPED) as session:
        return await services.use_join_link(session, token, visitor)


async def move_window(db: Database, invitee_id: int | None, by: dt.timedelta) -> None:
    """Shift an invitee's join link window by `by` (back in time when negative)."""
    async with db.session(company_id=UNSCOPED, write=True) as session:
        invitee = await session.get(MeetingInvitee, invitee_id)
        assert invitee is not None
        invitee.opens_at += by
        invitee.closes_at += by
        await session.commit()


async def count(db: Database, model: type, company_id: int | None) -> int:
    async with db.session(company_id=company_id) as session:
        return (await session.execute(select(func.count()).select_from(model))).scalar_one()


async def test_colleagues_and_guests_each_get_one_email_and_colleagues_a_notice(
    db: Database, settings: Settings, acme: Company, admin: User, member: User
) -> None:
    carol = await make_user(db, acme, "carol@acme.example", name="Carol")
    started = await start(
        db,
        settings,
        admin,
        ids=[member.id, carol.id, member.id],
        emails="guest@example.org, GUEST@example.org; bob@acme.example",
        message="Quick sync on the launch?",
    )
    assert [i.email for i in started.invitees] == [
        "bob@acme.example",
        "carol@acme.example",
        "guest@example.org",
    ]
    async with db.session(company_id=acme.id) as session:
        assert started.meeting.room_url == (await resolve_room(session, settings, admin)).url
    async with db.session(company_id=acme.id) as session:
        mails = (await session.execute(select(OutboxMessage))).scalars().all()
        notices = (await session.execute(select(Notification))).scalars().all()
    assert sorted(m.to_address for m in mails) == [
        "bob@acme.example",
        "carol@acme.example",
        "guest@example.org",
    ]
    assert all("Quick sync on the launch?" in m.body_text for m in mails)
    assert all(m.reply_to == admin.email for m in mails)
    tokens = {i.email: i.join_token for i in started.invitees}
    bob_mail = next(m for m in mails if m.to_address == "bob@acme.example")
    assert f"{settings.base_url}/join/{tokens['bob@acme.example']}" in bob_mail.body_text
    assert sorted(n.user_id for n in notices) == sorted([member.id, carol.id])


async def test_the_same_send_twice_is_one_meeting(
    db: Database, settings: Settings, admin: User, member: User
) -> None:
    first = await start(db, settings, admin, ids=[member.id], key="double-click-key")
    again = await start(db, settings, admin, ids=[member.id], key="double-click-key")
    assert again.meeting.id == first.meeting.id and not again.created
    assert await count(db, Meeting, admin.company_id) == 1
    assert await count(db, OutboxMessage, admin.company_id) == 1


async def test_a_double_click_racing_itself_is_still_one_meeting(
    db: Database, settings: Settings, admin: User, member: User
) -> None:
    both = await asyncio.gather(
        *(start(db, settings, admin, ids=[member.id], key="racing-key-1") for _ in range(2))
    )
    assert both[0].meeting.id == both[1].meeting.id
    assert sorted(started.created for started in both) == [False, True]
    assert await count(db, OutboxMessage, admin.company_id) == 1


async def test_inviting_yourself_is_ignored_with_a_note(
    db: Database, settings: Settings, admin: User, member: User
) -> None:
    started = await start(db, settings, admin, ids=[admin.id, member.id], emails=admin.email)
    assert [i.user_id for i in started.invitees] == [member.id]
    assert started.notes == ["You are the host, so you were not invited to your own room."]


@pytest.mark.parametrize(
    ("ids", "emails", "field", "words"),
    [
        ([], "", "invitees", "Pick at least one"),
        ([], "not-an-address", "emails", "not a valid email address"),
        ([], "ok@example.org, broken@", "emails", "broken@"),
    ],
)
async def test_bad_input_is_refused_and_nothing_is_written(
    db: Database,
    settings: Settings,
    admin: User,
    ids: list[int],
    emails: str,
    field: str,
    words: str,
) -> None:
    with pytest.raises(FormErrors) as refused:
        await start(db, settings, admin, ids=ids, emails=emails)
    assert words in refused.value.errors[field]
    assert await count(db, Meeting, admin.company_id) == 0
    assert await count(db, OutboxMessage, admin.company_id) == 0


async def test_more_than_fifty_invitees_is_refused(
    db: Database, settings: Settings, admin: User
) -> None:
    emails = ", ".join(f"guest{n}@example.org" for n in range(51))
    with pytest.raises(FormErrors) as refused:
        await start(db, settings, admin, emails=emails)
    assert refused.value.errors["invitees"] == (
        "You can invite at most 50 people at once; you picked 51."
    )
    fifty = ", ".join(f"guest{n}@example.org" for n in range(50))
    assert len((await start(db, settings, admin, emails=fifty)).invitees) == 50


async def test_a_deactivated_colleague_is_refused_by_name(
    db: Database, settings: Settings, acme: Company, admin: User, member: User
) -> None:
    async with db.session(company_id=acme.id, write=True) as session:
        person = await session.get(User, member.id)
        assert person is not None
        person.active = False
        await session.commit()
    with pytest.raises(FormErrors) as refused:
        await start(db, settings, admin, ids=[member.id])
    assert "Bob Member can no longer be invited" in refused.value.errors["invitees"]


async def test_someone_of_another_company_is_unknown_and_nothing_is_sent(
    db: Database, settings: Settings, admin: User
) -> None:
    globex = await make_company(db, "Globex")
    stranger = await make_user(db, globex, "hank@globex.example")
    # "٣" is a digit to str.isdigit() and int(), but no id is made of it.
    for raw in (stranger.id, "x", 2**40, "٣"):
        with pytest.raises(UnknownPerson):
            await start(db, settings, admin, ids=[raw])
    assert await count(db, OutboxMessage, UNSCOPED) == 0


async def test_the_meeting_is_in_the_hosts_room_and_its_links_open_for_twelve_hours(
    db: Database, settings: Settings, admin: User, member: User
) -> None:
    started = await start(db, settings, admin, ids=[member.id], emails="guest@example.org")
    async with db.session(company_id=admin.company_id) as session:
        room = await resolve_room(session, settings, admin)
        meeting = await session.get(Meeting, started.meeting.id)
        invitees = (await session.execute(select(MeetingInvitee))).scalars().all()
    assert meeting is not None and meeting.room_url == room.url
    assert len(invitees) == 2
    for invitee in invitees:
        assert invitee.opens_at == meeting.started_at
        assert invitee.closes_at == meeting.started_at + dt.timedelta(hours=12)


async def test_a_join_link_records_who_joined_and_ends_after_a_while(
    db: Database, settings: Settings, admin: User, member: User
) -> None:
    started = await start(db, settings, admin, ids=[member.id])
    token = started.invitees[0].join_token
    target = await join(db, token, member)
    assert not target.ended and target.meeting.room_url == started.meeting.room_url
    async with db.session(company_id=admin.company_id) as session:
        joined = (await session.execute(select(MeetingJoin))).scalar_one()
        invitee = (await session.execute(select(MeetingInvitee))).scalar_one()
    assert joined.user_id == member.id and invitee.first_joined_at is not None

    await move_window(db, invitee.id, -(services.JOIN_LINK_LIFETIME + dt.timedelta(minutes=1)))
    assert (await join(db, token, None)).ended
    with pytest.raises(LookupError):
        await join(db, "no-such-token", None)
    assert await count(db, MeetingJoin, admin.company_id) == 1


async def test_before_its_window_a_join_link_records_nothing(
    db: Database, settings: Settings, admin: User, member: User
) -> None:
    started = await start(db, settings, admin, ids=[member.id])
    invitee = started.invitees[0]
    await move_window(db, invitee.id, dt.timedelta(minutes=15))
    target = await join(db, invitee.join_token, member)
    assert target.state == "not_yet_open" and not target.ended
    assert await count(db, MeetingJoin, admin.company_id) == 0
    async with db.session(company_id=admin.company_id) as session:
        stored = await session.get(MeetingInvitee, invitee.id)
    assert stored is not None and stored.first_joined_at is None


async def test_a_join_link_opens_at_opens_at_and_is_over_at_closes_at(
    db: Database, settings: Settings, admin: User, member: User
) -> None:
    started = await start(db, settings, admin, ids=[member.id])
    invitee = started.invitees[0]
    # Opened a moment ago (the link was made just now with the meeting): the room.
    assert (await join(db, invitee.join_token, None)).state == "open"
    # Closed a moment ago: over, and that click is not recorded.
    await move_window(db, invitee.id, -services.JOIN_LINK_LIFETIME - dt.timedelta(seconds=1))
    assert (await join(db, invitee.join_token, member)).state == "ended"
    async with db.session(company_id=admin.company_id) as session:
        joins = (await session.execute(select(MeetingJoin))).scalars().all()
    assert [j.user_id for j in joins] == [None]


async def test_history_lists_the_hosts_meetings_with_who_joined(
    db: Database, settings: Settings, admin: User, member: User
) -> None:
    first = await start(db, settings, admin, ids=[member.id], key="first-meeting")
    await start(db, settings, admin, emails="guest@example.org", key="second-meeting")
    await start(db, settings, member, ids=[admin.id], key="someone-elses")
    await join(db, first.invitees[0].join_token, member)
    async with db.session(company_id=admin.company_id) as session:
        page = await services.history(session, admin, 1)
    assert page.total == 2
    assert [entry.joined for entry in page.items] == [0, 1]
    assert page.items[1].invitees[0][1] is not None
    assert page.items[1].invitees[0][1].id == member.id


async def test_guest_invitations_are_limited_per_host_per_hour(
    db: Database, settings: Settings, acme: Company, admin: User, member: User
) -> None:
    limited = dataclasses.replace(settings, guest_invites_per_hour=5)
    await start(db, limited, admin, emails="g1@example.org, g2@example.org", key="limit-key-1")
    # Colleagues, even typed as addresses, are not guests and do not count.
    await start(
        db,
        limited,
        admin,
        ids=[member.id],
        emails="g3@example.org, g4@example.org",
        key="limit-key-2",
    )
    with pytest.raises(FormErrors) as refused:
        await start(db, limited, admin, emails="g5@example.org, g6@example.org", key="limit-key-3")
    assert refused.value.errors["emails"] == (
        "You can invite at most 5 guests by email an hour, and 1 more now. "
        "Invite fewer, or try again later."
    )
    assert await count(db, OutboxMessage, acme.id) == 5
    # Another host has a limit of their own.
    await start(db, limited, member, emails="g5@example.org, g6@example.org", key="limit-key-4")
    await start(db, limited, admin, emails="g5@example.org", key="limit-key-5")
    # An hour later the first guests no longer count.
    async with db.session(company_id=acme.id, write=True) as session:
        for meeting in (await session.execute(select(Meeting))).scalars():
            meeting.started_at -= dt.timedelta(minutes=61)
        await session.commit()
    started = await start(db, limited, admin, emails="g7@example.org", key="limit-key-6")
    assert len(started.invitees) == 1


async def test_a_deactivated_colleagues_address_is_refused_by_name_too(
    db: Database, settings: Settings, acme: Company, admin: User, member: User
) -> None:
    async with db.session(company_id=acme.id, write=True) as session:
        person = await session.get(User, member.id)
        assert person is not None
        person.active = False
        await session.commit()
    with pytest.raises(FormErrors) as refused:
        await start(db, settings, admin, emails="guest@example.org, BOB@acme.example")
    assert "Bob Member can no longer be invited" in refused.value.errors["invitees"]
    assert await count(db, OutboxMessage, acme.id) == 0
    assert await count(db, Meeting, acme.id) == 0


async def test_a_join_is_recorded_once_a_minute_and_not_for_link_previews(
    db: Database, settings: Settings, admin: User, member: User
) -> None:
    started = await start(db, settings, admin, ids=[member.id])
    token = started.invitees[0].join_token
    for _ in range(3):
        assert (await join(db, token, member)).state == "open"
    assert await count(db, MeetingJoin, admin.company_id) == 1
    async with db.session(company_id=admin.company_id, write=True) as session:
        joined = (await session.execute(select(MeetingJoin))).scalar_one()
        joined.joined_at -= dt.timedelta(seconds=61)
        await session.commit()
    await join(db, token, member)
    assert await count(db, MeetingJoin, admin.company_id) == 2
    async with db.transaction(company_id=UNSCOPED) as session:
        target = await services.use_join_link(session, token, None, record=False)
    assert target.state == "open"
    assert await count(db, MeetingJoin, admin.company_id) == 2


@pytest.mark.parametrize(
    ("agent", "preview"),
    [
        ("Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)", True),
        ("Slack-ImgProxy (+https://api.slack.com/robots)", True),
        ("Mozilla/5.0 (Windows NT 6.1; WOW64) SkypeUriPreview Preview/0.5", True),
        ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", True),
        ("facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)", True),
        ("Mozilla/5.0 (compatible; BingPreview/1.0b)", True),
        ("WhatsApp/2.23.20.0", True),
        ("TelegramBot (like TwitterBot)", True),
        ("", True),
        ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36", False),
        ("Mozilla/5.0 (Linux; Android 10; CUBOT X30) AppleWebKit/537.36 Chrome/120.0", False),
        ("Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) Version/17.5 Safari/605.1.15", False),
    ],
)
def test_link_previewers_are_told_apart_from_browsers(agent: str, preview: bool) -> None:
    assert services.is_link_preview(agent) is preview
