"""The matching rules on their own, and the mapping page's lists and hand choices."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from portal.accounts.models import Company, User
from portal.conferencing.interfaces import ProviderUser
from portal.conferencing.mapping import (
    PAGE_SIZE,
    Decision,
    NotFoundError,
    Person,
    Stored,
    clear_manual,
    counts,
    map_by_hand,
    mapped_people,
    match,
    people_without_account,
    provider_users_without_person,
    unmap_by_hand,
)
from portal.conferencing.models import (
    CHOSEN,
    DEACTIVATED,
    DEPARTMENTS,
    NO_ACCOUNT,
    NO_PERSON,
    NOT_SERVED,
    PENDING_CONFIRMATION,
    TAKEN,
    TWO_PEOPLE,
    UNMAPPED_BY_HAND,
    ConferencingConnection,
    ConnectionMember,
    ProviderAccount,
    reason_text,
)
from portal.db import Database
from portal.forms import FormErrors
from tests.conftest import make_company, make_user


def seen(user_id: str, email: str, status: str = "active", licensed: bool = True) -> ProviderUser:
    return ProviderUser(user_id, email, "", status, licensed, f"https://zoom.us/j/{user_id}")


def stored(user_id: str, person: int | None, *, manual: bool = False, reason: str = "") -> Stored:
    return Stored(user_id, 1, "", person, reason, manual, 0)


def decided(*args: object) -> dict[str, tuple[int | None, str, bool]]:
    return {d.user.id: (d.user_id, d.reason, d.manual) for d in match(*args)}  # type: ignore[arg-type]


def test_two_people_with_one_address_map_no_one() -> None:
    people = [Person(1, "sam@acme.example", True), Person(2, " SAM@acme.example", True)]
    assert decided([seen("z1", "sam@acme.example")], {}, people) == {
        "z1": (None, TWO_PEOPLE, False)
    }


def test_a_person_is_mapped_to_one_provider_user_and_links_come_first() -> None:
    people = [Person(1, "ada@acme.example", True), Person(2, "bob@acme.example", True)]
    users = [seen("new", "ada@acme.example"), seen("old", "ada.renamed@acme.example")]
    assert decided(users, {"old": stored("old", 1)}, people) == {
        "new": (None, TAKEN, False),
        "old": (1, "", False),
    }


def test_hand_choices_are_kept_whatever_the_emails_say() -> None:
    people = [Person(1, "ada@acme.example", True), Person(2, "bob@acme.example", False)]
    users = [seen("z1", "ada@acme.example"), seen("z2", "x@elsewhere.example")]
    hand = {"z1": stored("z1", None, manual=True), "z2": stored("z2", 2, manual=True)}
    assert decided(users, hand, people) == {
        "z1": (None, UNMAPPED_BY_HAND, True),
        "z2": (2, DEACTIVATED, True),
    }


def test_a_link_to_a_person_since_deactivated_is_dropped() -> None:
    people = [Person(1, "ada@acme.example", False)]
    assert decided([seen("z1", "ada@acme.example")], {"z1": stored("z1", 1)}, people) == {
        "z1": (None, DEACTIVATED, False)
    }


def test_people_the_connection_does_not_serve_are_not_mapped_by_email_link_or_hand() -> None:
    people = [
        Person(1, "ada@acme.example", True, served=False),
        Person(2, "bob@acme.example", True, served=False),
        Person(3, "cy@acme.example", True, served=False),
        Person(4, "dee@acme.example", False, served=False),
    ]
    users = [
        seen("z1", "ada@acme.example"),
        seen("z2", "bob.renamed@acme.example"),
        seen("z3", "x@elsewhere.example"),
        seen("z4", "dee@acme.example"),
    ]
    links = {"z2": stored("z2", 2), "z3": stored("z3", 3, manual=True)}
    assert decided(users, links, people) == {
        "z1": (None, NOT_SERVED, False),
        "z2": (None, NO_PERSON, False),
        # A hand choice stays, unusable until the person is served again.
        "z3": (3, NOT_SERVED, True),
        "z4": (None, DEACTIVATED, False),
    }


_EMAILS = st.sampled_from(["ada@acme.example", "ADA@acme.example ", "bob@acme.example", ""])
_PEOPLE = st.lists(
    st.builds(Person, st.integers(1, 6), _EMAILS, st.booleans(), st.booleans()),
    max_size=6,
    unique_by=lambda person: person.id,
)
_USERS = st.lists(
    st.builds(
        ProviderUser,
        st.sampled_from(["z1", "z2", "z3", "z4"]),
        _EMAILS,
        st.just(""),
        st.sampled_from(["active", "inactive", "pending"]),
        st.booleans(),
        st.just(""),
    ),
    max_size=5,
)
_HAND = st.dictionaries(st.sampled_from(["z1", "z2", "z3", "z4"]), st.none() | st.integers(1, 6))


def _as_stored(decisions: list[Decision]) -> dict[str, Stored]:
    return {
        d.user.id: Stored(d.user.id, 1, "", d.user_id, d.reason, d.manual, 0) for d in decisions
    }


@given(users=_USERS, people=_PEOPLE, hand=_HAND)
def test_a_sync_of_what_it_stored_changes_nothing_and_maps_each_person_once(
    users: list[ProviderUser], people: list[Person], hand: dict[str, int | None]
) -> None:
    """What an unchanged re-sync relies on: matching its own result again decides the same."""
    before = {user_id: stored(user_id, person, manual=True) for user_id, person in hand.items()}
    first = match(users, before, people)
    assert [d.user.id for d in first] == list(dict.fromkeys(user.id for user in users))
    mapped = [d.user_id for d in first if d.user_id is not None and not d.manual]
    assert len(mapped) == len(set(mapped))
    usable = {p.id for p in people if p.active and p.served}
    assert all(d.user_id in usable for d in first if d.user_id is not None and not d.reason)
    assert all(d.user_id == hand[d.user.id] for d in first if d.user.id in hand)
    assert match(users, _as_stored(first), people) == first


def test_reasons_read_as_sentences_with_the_providers_name() -> None:
    assert reason_text(NO_PERSON, "Zoom") == "No portal person has this email"
    assert reason_text(PENDING_CONFIRMATION, "Zoom") == "Pending confirmation at Zoom"
    assert reason_text(NO_ACCOUNT, "iMeet") == "No iMeet user has this email"
    assert reason_text(NOT_SERVED, "Zoom") == (
        "The portal person with this email is not served by this connection"
    )
    assert reason_text(NO_PERSON, "Zoom") == "No portal person has this email"


async def _connection(db: Database, company: Company, **serves: object) -> ConferencingConnection:
    async with db.transaction(company_id=company.id) as session:
        connection = ConferencingConnection(
            company_id=company.id or 0,
            name=f"Zoom for {serves.get('serves', 'everyone')}",
            provider="zoom",
            secret_credentials="",
            **serves,
        )
        session.add(connection)
        await session.flush()
        return connection


async def _account(
    db: Database, connection: ConferencingConnection, email: str, person: User | None = None
) -> ProviderAccount:
    async with db.transaction(company_id=connection.company_id) as session:
        account = ProviderAccount(
            company_id=connection.company_id,
            connection_id=connection.id or 0,
            provider_user_id=f"zu-{email}",
            email=email,
            email_key=email.lower(),
            name=email.split("@")[0].title(),
            status="active",
            room_url="https://zoom.us/j/1",
            user_id=person.id if person else None,
            reason="" if person else NO_PERSON,
        )
        session.add(account)
        await session.flush()
        return account


async def test_the_lists_page_count_and_search(db: Database, acme: Company, admin: User) -> None:
    connection = await _connection(db, acme)
    people = [await make_user(db, acme, f"p{n:03d}@acme.example") for n in range(PAGE_SIZE + 5)]
    for person in people[: PAGE_SIZE + 2]:
        await _account(db, connection, person.email, person)
    await _account(db, connection, "Stranger@Elsewhere.example")
    async with db.session(company_id=acme.id) as session:
        summary = await counts(session, connection)
        first = await mapped_people(session, connection)
        last = await mapped_people(session, connection, page=99)
        found = await mapped_people(session, connection, search="P001@")
        unmapped = await people_without_account(session, connection)
        nobody = await people_without_account(session, connection, search="%")
        strangers = await provider_users_without_person(session, connection, search="stranger")
    assert (summary.mapped, summary.people_unmapped, summary.provider_unmapped) == (
        PAGE_SIZE + 2,
        4,
        1,
    )
    assert (first.total, len(first.items), last.number, len(last.items)) == (
        PAGE_SIZE + 2,
        PAGE_SIZE,
        2,
        2,
    )
    assert [row.person.email for row in found.items] == ["p001@acme.example"]
    assert {entry.person.email for entry in unmapped.items} == {
        admin.email,
        *(p.email for p in people[PAGE_SIZE + 2 :]),
    }
    assert {entry.reason for entry in unmapped.items} == {NO_ACCOUNT}
    assert nobody.total == 0  # a % is a character to find, not a wildcard
    assert [account.email for account in strangers.items] == ["Stranger@Elsewhere.example"]


async def test_mapping_by_hand_takes_the_person_from_another_account(
    db: Database, acme: Company, admin: User, member: User
) -> None:
    connection = await _connection(db, acme)
    first = await _account(db, connection, "ada@acme.example", admin)
    second = await _account(db, connection, "ada.two@acme.example")
    async with db.transaction(company_id=acme.id) as session:
        mapped = await map_by_hand(session, connection, second.id or 0, admin.id or 0)
        assert (mapped.user_id, mapped.manual, mapped.reason) == (admin.id, True, "")
    async with db.session(company_id=acme.id) as session:
        taken = await session.get(ProviderAccount, first.id)
    assert taken is not None and (taken.user_id, taken.reason) == (None, TAKEN)
    async with db.transaction(company_id=acme.id) as session:
        unmapped = await unmap_by_hand(session, connection, second.id or 0)
        assert (unmapped.user_id, unmapped.reason, unmapped.manual) == (
            None,
            UNMAPPED_BY_HAND,
            True,
        )
        cleared = await clear_manual(session, connection, second.id or 0)
        assert not cleared.manual


async def test_a_deactivated_person_cannot_be_mapped_by_hand(
    db: Database, acme: Company, admin: User, member: User
) -> None:
    connection = await _connection(db, acme)
    account = await _account(db, connection, "x@elsewhere.example")
    async with db.transaction(company_id=acme.id) as session:
        person = (await session.execute(select(User).where(User.id == member.id))).scalar_one()
        person.active = False
    async with db.session(company_id=acme.id, write=True) as session:
        with pytest.raises(FormErrors):
            await map_by_hand(session, connection, account.id or 0, member.id or 0)


async def test_another_companys_accounts_and_people_are_not_found(
    db: Database, acme: Company, admin: User
) -> None:
    connection = await _connection(db, acme)
    account = await _account(db, connection, "x@elsewhere.example")
    globex = await make_company(db, "Globex")
    outsider = await make_user(db, globex, "olga@globex.example")
    their_connection = await _connection(db, globex)
    their_account = await _account(db, their_connection, "y@elsewhere.example")
    async with db.session(company_id=acme.id, write=True) as session:
        with pytest.raises(NotFoundError):
            await map_by_hand(session, connection, account.id or 0, outsider.id or 0)
        with pytest.raises(NotFoundError):
            await map_by_hand(session, connection, their_account.id or 0, admin.id or 0)
        with pytest.raises(NotFoundError):
            await unmap_by_hand(session, connection, their_account.id or 0)
        with pytest.raises(NotFoundError):
            await unmap_by_hand(session, connection, 10**9)


async def test_the_lists_hold_only_the_people_the_connection_serves(
    db: Database, acme: Company, admin: User, member: User
) -> None:
    """Bob is in Sales; Ada, Sam (Sales) and Tess (Support) have no Zoom user."""
    sam = await make_user(db, acme, "sam@acme.example", department="Sales")
    tess = await make_user(db, acme, "tess@acme.example", department="Support")
    sales = await _connection(db, acme, serves=DEPARTMENTS, departments=["Sales"])
    chosen = await _connection(db, acme, serves=CHOSEN)
    await _account(db, sales, member.email, member)
    async with db.transaction(company_id=acme.id) as session:
        session.add(
            ConnectionMember(
                company_id=acme.id or 0, connection_id=chosen.id or 0, user_id=tess.id or 0
            )
        )
    async with db.session(company_id=acme.id) as session:
        sales_counts = await counts(session, sales)
        sales_people = await people_without_account(session, sales)
        chosen_counts = await counts(session, chosen)
        chosen_people = await people_without_account(session, chosen)
    assert (sales_counts.mapped, sales_counts.people_unmapped) == (1, 1)
    assert [entry.person.id for entry in sales_people.items] == [sam.id]
    assert (chosen_counts.mapped, chosen_counts.people_unmapped) == (0, 1)
    assert [entry.person.id for entry in chosen_people.items] == [tess.id]
    assert admin.id not in {e.person.id for e in [*sales_people.items, *chosen_people.items]}


async def test_a_person_the_connection_does_not_serve_cannot_be_mapped_by_hand(
    db: Database, acme: Company, admin: User, member: User
) -> None:
    sales = await _connection(db, acme, serves=DEPARTMENTS, departments=["Sales"])
    account = await _account(db, sales, "x@elsewhere.example")
    async with db.session(company_id=acme.id, write=True) as session:
        with pytest.raises(FormErrors) as raised:
            await map_by_hand(session, sales, account.id or 0, admin.id or 0)
        assert "not among the people this connection serves" in raised.value.errors["form"]
        mapped = await map_by_hand(session, sales, account.id or 0, member.id or 0)
    assert mapped.user_id == member.id
