"""Finding colleagues, and their local time, without HTTP."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select
from sqlmodel import col

from portal.accounts.demo import ensure_demo_company
from portal.accounts.models import ADMIN, Company, User
from portal.db import UNSCOPED, Database
from portal.directory import search, services
from portal.settings import Settings
from tests.conftest import make_company
from tests.directory.conftest import make_colleague


@pytest.fixture
async def staff(db: Database, acme: Company, admin: User) -> dict[str, User]:
    """Ada Admin (no department) and four colleagues, one of them deactivated."""
    people = {
        "hannah": await make_colleague(
            db, acme, "hannah@acme.example", "Hannah Schmidt",
            title="Account Executive", department="Sales", time_zone="Europe/Berlin",
        ),
        "linus": await make_colleague(
            db, acme, "linus@acme.example", "Linus Berg",
            title="Backend Engineer", department="Engineering",
        ),
        "mei": await make_colleague(
            db, acme, "m.tanaka@acme.example", "Mei Tanaka",
            title="Frontend Engineer", department="Engineering", time_zone="Asia/Tokyo",
        ),
        "gone": await make_colleague(
            db, acme, "gone@acme.example", "Gone Engineer",
            title="Engineer", department="Marketing", active=False,
        ),
    }  # fmt: skip
    return {"ada": admin, **people}


async def _names(db: Database, company: Company, text: str, **options: str | int) -> list[str]:
    async with db.session(company_id=company.id) as session:
        page = await search.search_people(session, text, **options)  # type: ignore[arg-type]
    return [person.display_name for person in page.items]


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("tanaka", ["Mei Tanaka"]),  # name, any case
        ("M.TANAKA@", ["Mei Tanaka"]),  # email
        ("backend", ["Linus Berg"]),  # title
        ("sales", ["Hannah Schmidt"]),  # department
        ("engineer", ["Linus Berg", "Mei Tanaka"]),  # titles, not the deactivated one
        ("engineering mei", ["Mei Tanaka"]),  # every word must match some field
        ("", ["Ada Admin", "Hannah Schmidt", "Linus Berg", "Mei Tanaka"]),
        ("%", []),  # LIKE's wildcards are taken literally
        ("_", []),
    ],
)
async def test_search_finds_people_by_each_field(
    db: Database, acme: Company, staff: dict[str, User], text: str, found: list[str]
) -> None:
    assert await _names(db, acme, text) == found


async def test_department_filter_narrows_a_search(
    db: Database, acme: Company, staff: dict[str, User]
) -> None:
    assert await _names(db, acme, "", department="Engineering") == ["Linus Berg", "Mei Tanaka"]
    assert await _names(db, acme, "backend", department="Sales") == []
    # A deactivated person's department is not offered.
    async with db.session(company_id=acme.id) as session:
        assert await services.departments(session) == ["Engineering", "Sales"]


async def test_departments_are_the_companys_active_peoples_each_once_in_order(
    db: Database, acme: Company, staff: dict[str, User]
) -> None:
    """Read by stepping from one department to the next in the company's index: neither
    another company's departments between two of this one's, nor one of only deactivated
    people, nor a department named like a wildcard, may be stepped onto."""
    globex = await make_company(db, "Globex")
    for number, department in enumerate(["Design", "Finance", "Zoology", "Engineering"]):
        await make_colleague(db, globex, f"g{number}@globex.example", "G", department=department)
    await make_colleague(db, acme, "lin@acme.example", "Lin", department="Engineering")
    await make_colleague(db, acme, "pct@acme.example", "Pct", department="%")
    await make_colleague(db, acme, "old@acme.example", "Old", department="Legal", active=False)
    async with db.session(company_id=acme.id) as session:
        assert await services.departments(session) == ["%", "Engineering", "Sales"]
    async with db.session(company_id=globex.id) as session:
        found = await services.departments(session)
    assert found == ["Design", "Engineering", "Finance", "Zoology"]


async def test_search_is_paginated_in_name_order(
    db: Database, acme: Company, staff: dict[str, User]
) -> None:
    async with db.session(company_id=acme.id) as session:
        second = await search.search_people(session, "", page=2, size=3)
        beyond = await search.search_people(session, "", page=9, size=3)
    assert [p.display_name for p in second.items] == ["Mei Tanaka"]
    assert (second.total, second.pages, second.number) == (4, 2, 2)
    assert beyond.number == 2, "a page past the end shows the last one"


async def test_first_matches_are_few_and_need_some_text(
    db: Database, acme: Company, staff: dict[str, User]
) -> None:
    reader = db.reader(company_id=acme.id)
    assert await search.first_matches(reader, "  ") == []
    assert len(await search.first_matches(reader, "engineer")) == 2
    found = await search.first_matches(reader, "engineer", limit=1)
    assert [p.display_name for p in found] == ["Linus Berg"]


async def test_a_colleague_is_an_active_person_of_the_viewers_company(
    db: Database, acme: Company, staff: dict[str, User]
) -> None:
    globex = await make_company(db, "Globex")
    outsider = await make_colleague(db, globex, "eve@globex.example", "Eve Outsider")
    async with db.session(company_id=acme.id) as session:
        assert await services.colleague(session, staff["mei"].id or 0) is not None
        assert await services.colleague(session, staff["gone"].id or 0) is None
        assert await services.colleague(session, outsider.id or 0) is None
        assert await services.colleague(session, 10**6) is None


def _at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("now", "zone", "viewer_zone", "clock", "relation"),
    [
        # New York is 5 h behind London, except between the US and EU clock changes
        # (8 to 29 March 2026), when it is 4 h behind.
        ("2026-03-02 14:00", "America/New_York", "Europe/London", "09:00", "5 h behind you"),
        ("2026-03-10 14:00", "America/New_York", "Europe/London", "10:00", "4 h behind you"),
        ("2026-04-01 13:00", "America/New_York", "Europe/London", "09:00", "5 h behind you"),
        # India keeps no summer time: 5 h 30 ahead of London in winter, 4 h 30 in summer.
        ("2026-01-15 09:00", "Asia/Kolkata", "Europe/London", "14:30", "5 h 30 min ahead of you"),
        ("2026-07-15 09:00", "Asia/Kolkata", "Europe/London", "14:30", "4 h 30 min ahead of you"),
        ("2026-07-15 13:42", "Europe/Berlin", "Europe/London", "15:42", "1 h ahead of you"),
        ("2026-07-15 13:42", "Europe/Paris", "Europe/Berlin", "15:42", "same time as you"),
    ],
)
def test_local_time_compares_with_the_viewer_across_daylight_saving(
    now: str, zone: str, viewer_zone: str, clock: str, relation: str
) -> None:
    local = services.local_time(zone, viewer_zone, _at(now))
    assert (local.clock, local.relation) == (clock, relation)


def test_local_time_names_the_zone_and_the_day_when_it_differs() -> None:
    local = services.local_time("Asia/Tokyo", "America/Los_Angeles", _at("2026-07-15 23:30"))
    assert (local.clock, local.day, local.zone) == ("08:30", "tomorrow", "Asia/Tokyo")
    back = services.local_time("America/Los_Angeles", "Asia/Tokyo", _at("2026-07-15 23:30"))
    assert (back.clock, back.day, back.zone) == ("16:30", "yesterday", "America/Los Angeles")
    assert services.local_time("Asia/Tokyo", "Europe/London", _at("2026-07-15 12:00")).day == ""


def test_an_unknown_zone_reads_as_utc() -> None:
    local = services.local_time("Atlantis/Lost", "Europe/London", _at("2026-01-15 09:00"))
    assert (local.clock, local.zone, local.relation) == ("09:00", "UTC", "same time as you")


@pytest.mark.parametrize(
    ("now", "status"),
    [
        ("2026-07-14 08:00", "Working hours"),  # Tuesday 10:00 in Berlin
        ("2026-07-14 06:59", "Outside working hours (08:59 local)"),
        ("2026-07-14 16:00", "Outside working hours (18:00 local)"),
        ("2026-07-14 20:10", "Outside working hours (22:10 local)"),
        ("2026-07-18 09:00", "Outside working hours (Saturday 11:00 local)"),
    ],
)
def test_status_says_whether_it_is_working_hours_where_they_are(now: str, status: str) -> None:
    assert services.local_time("Europe/Berlin", "UTC", _at(now)).status == status


async def test_the_demo_scales_to_many_distinct_searchable_people(
    db: Database, settings: Settings
) -> None:
    demo = await ensure_demo_company(db, settings, people=2000)
    async with db.session(company_id=UNSCOPED) as session:
        counts = (
            await session.execute(
                select(
                    func.count(),
                    func.count(func.distinct(User.email)),
                    func.count(func.distinct(User.display_name)),
                    func.count(func.distinct(User.department)),
                    func.count().filter(col(User.role) == ADMIN),
                )
            )
        ).one()
    assert tuple(counts) == (2000, 2000, 2000, 5, 1)
    async with db.session(company_id=demo.company.id) as session:
        novaks = await search.search_people(session, "novak")
    # Each first name with each last name before any repeats: 40 made-up Novaks, and Lukas.
    assert novaks.total == 41


async def test_people_a_word_of_whose_name_a_search_word_begins_come_first(
    db: Database, acme: Company, admin: User
) -> None:
    for email, name, title in [
        ("joanne@acme.example", "Joanne Leeds", "Analyst"),  # "ann" inside a word: after
        ("lee@acme.example", "Lee Ann Marsh", ""),  # a later word begins with it
        ("anna@acme.example", "Anna Bell", ""),  # the first word does
        ("max@acme.example", "Max Planck", "Annual Reports"),  # in the title: after
        ("ann@acme.example", "ann lee", ""),  # in any case
    ]:
        await make_colleague(db, acme, email, name, title=title)
    found = await _names(db, acme, "ANN")
    assert found == ["Anna Bell", "Lee Ann Marsh", "ann lee", "Joanne Leeds", "Max Planck"]
    # Any word of the search counts; then name order among equals.
    assert await _names(db, acme, "lee ann") == ["Joanne Leeds", "Lee Ann Marsh", "ann lee"]
    assert await _names(db, acme, "marsh lee") == ["Lee Ann Marsh"]
    reader = db.reader(company_id=acme.id or 0)
    listed = await search.find_people(reader, "ann")
    assert [p.display_name for p in listed.items] == found
    assert [p.display_name for p in await search.first_matches(reader, "ann", limit=2)] == found[:2]


async def test_a_later_page_reads_its_rows_and_its_count_in_one_statement(
    db: Database, acme: Company, staff: dict[str, User], lean_statements: list[str]
) -> None:
    for number in range(30):
        await make_colleague(db, acme, f"e{number}@acme.example", f"Eng {number}", title="Eng")
    reader = db.reader(company_id=acme.id or 0)
    lean_statements.clear()
    page = await search.find_people(reader, "eng", page=2, size=10)
    assert (len(page.items), page.total, page.pages) == (10, 32, 4)
    # (SQLite's trace also shows the FTS5 table's own statements.)
    searches = [sql for sql in lean_statements if sql.startswith("SELECT users.")]
    assert len(searches) == 1, lean_statements


async def test_words_too_short_for_an_index_rank_and_count_the_first_people_found(
    db: Database, acme: Company, admin: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Such a search stops at SCAN_LIMIT people, in name order, and says there may be more."""
    for email, name in [
        ("b1@acme.example", "Bea Cole"),
        ("b2@acme.example", "Cole Abbot"),
        ("b3@acme.example", "Dan Ecole"),
        ("b4@acme.example", "Zed Cole"),
    ]:
        await make_colleague(db, acme, email, name)
    reader = db.reader(company_id=acme.id or 0)
    found = await search.find_people(reader, "co", size=2)
    assert (found.total, found.more) == (4, False)
    assert [p.display_name for p in found.items] == ["Bea Cole", "Cole Abbot"]
    monkeypatch.setattr(search, "SCAN_LIMIT", 3)
    # Bea, Cole and Dan are the first three in name order; of them, Dan ranks last.
    found = await search.find_people(reader, "co", page=2, size=2)
    assert (found.total, found.more, found.number) == (3, True, 2)
    assert [p.display_name for p in found.items] == ["Dan Ecole"]
    assert [p.display_name for p in await search.first_matches(reader, "co")] == [
        "Bea Cole",
        "Cole Abbot",
        "Dan Ecole",
    ]
    beyond = await search.find_people(reader, "co", page=9, size=2)
    assert (beyond.number, [p.display_name for p in beyond.items]) == (2, ["Dan Ecole"])
