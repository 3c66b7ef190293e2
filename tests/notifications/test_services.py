"""Notices as plain functions: raised in the caller's transaction, counted, listed, marked read."""

from __future__ import annotations

import pytest

from portal.accounts.models import Company, User
from portal.db import Database
from portal.notifications import services
from portal.notifications.models import TEXT_MAX
from tests.conftest import make_company, make_user
from tests.notifications.conftest import make_notice


async def test_a_notice_is_written_in_the_callers_transaction(
    db: Database, acme: Company, admin: User, member: User
) -> None:
    async with db.session(company_id=acme.id, write=True) as session:
        notice = await services.notify(
            session,
            recipient=member,
            actor=admin,
            kind="meet_now",
            text="Ada Admin invites you to meet now",
            url="/join/abc",
        )
        assert notice.id is not None
        await session.rollback()
    async with db.session(company_id=acme.id) as session:
        assert await services.unread_count(session, member) == 0

    kept = await make_notice(db, member, "Ada Admin invites you", actor=admin, url="/join/abc")
    async with db.session(company_id=acme.id) as session:
        stored = await services.get(session, member, kept.id or 0)
    assert stored is not None
    assert (stored.company_id, stored.user_id, stored.actor_id) == (acme.id, member.id, admin.id)
    assert (stored.kind, stored.text, stored.url, stored.read_at) == (
        "test",
        "Ada Admin invites you",
        "/join/abc",
        None,
    )
    assert stored.actor is not None and stored.actor.display_name == "Ada Admin"


@pytest.mark.parametrize(
    "url",
    ["https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:alert(1)", "/a b"],
)
async def test_a_notice_links_only_inside_the_portal(
    db: Database, acme: Company, member: User, url: str
) -> None:
    with pytest.raises(ValueError, match="inside the portal"):
        await make_notice(db, member, url=url)


async def test_a_notice_needs_text_and_a_colleague_as_actor(
    db: Database, acme: Company, member: User
) -> None:
    with pytest.raises(ValueError, match="needs a text"):
        await make_notice(db, member, "   ")
    outsider = await make_user(db, await make_company(db, "Globex"), "eve@globex.example")
    with pytest.raises(ValueError, match="one company"):
        await make_notice(db, member, actor=outsider)


async def test_a_long_text_is_shortened_rather_than_refused(db: Database, member: User) -> None:
    notice = await make_notice(db, member, "word " * TEXT_MAX)
    assert len(notice.text) == TEXT_MAX and notice.text.endswith("…")


async def test_counts_and_lists_are_the_recipients_own_newest_first(
    db: Database, acme: Company, admin: User, member: User
) -> None:
    for number in range(25):
        await make_notice(db, member, f"notice {number}")
    await make_notice(db, admin, "for the admin")
    async with db.session(company_id=acme.id) as session:
        assert await services.unread_count(session, member) == 25
        first = await services.recent(session, member)
        second = await services.recent(session, member, page=2)
        latest = await services.latest(session, member)
    assert first.total == 25 and first.pages == 2
    assert [n.text for n in first.items[:2]] == ["notice 24", "notice 23"]
    assert [n.text for n in second.items] == [f"notice {n}" for n in range(4, -1, -1)]
    assert len(latest) == services.MENU_SIZE and latest[0].text == "notice 24"


async def test_mark_read_takes_only_the_persons_own_notice(
    db: Database, acme: Company, admin: User, member: User
) -> None:
    mine = await make_notice(db, member)
    theirs = await make_notice(db, admin)
    async with db.transaction(company_id=acme.id) as session:
        assert await services.mark_read(session, member, theirs.id or 0) is None
        read = await services.mark_read(session, member, mine.id or 0)
        assert read is not None and read.read_at is not None
        again = await services.mark_read(session, member, mine.id or 0)
        assert again is not None and again.read_at == read.read_at
    async with db.session(company_id=acme.id) as session:
        assert await services.unread_count(session, member) == 0
        assert await services.unread_count(session, admin) == 1


async def test_another_companys_notice_is_not_found(
    db: Database, acme: Company, member: User
) -> None:
    globex = await make_company(db, "Globex")
    victim = await make_user(db, globex, "victim@globex.example")
    foreign = await make_notice(db, victim)
    async with db.session(company_id=acme.id, write=True) as session:
        assert await services.get(session, member, foreign.id or 0) is None
        assert await services.mark_read(session, member, foreign.id or 0) is None
    async with db.session(company_id=globex.id) as session:
        assert await services.unread_count(session, victim) == 1


async def test_mark_all_read_marks_only_the_persons_own(
    db: Database, acme: Company, admin: User, member: User
) -> None:
    for _ in range(3):
        await make_notice(db, member)
    await make_notice(db, admin)
    async with db.transaction(company_id=acme.id) as session:
        assert await services.mark_all_read(session, member) == 3
        assert await services.mark_all_read(session, member) == 0
    async with db.session(company_id=acme.id) as session:
        assert await services.unread_count(session, member) == 0
        assert await services.unread_count(session, admin) == 1
