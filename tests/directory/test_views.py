"""The People page, the top bar's suggestions, profiles and hover cards over HTTP."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import psycopg_pool
import pytest
from sqlalchemy import update
from sqlmodel import col

from portal.accounts.models import Company, User
from portal.db import Database
from portal.directory import search
from tests.conftest import PortalClient, make_company
from tests.directory.conftest import make_colleague

HTMX = {"HX-Request": "true"}
# Tuesday 14 July 2026, 13:42 in London (summer time): 14:42 in Berlin, 21:42 in Tokyo.
NOW = dt.datetime(2026, 7, 14, 12, 42, tzinfo=dt.UTC)


@pytest.fixture
def fixed_clock(monkeypatch: pytest.MonkeyPatch) -> dt.datetime:
    monkeypatch.setattr("portal.directory.views.utcnow", lambda: NOW)
    return NOW


@pytest.fixture
async def hannah(db: Database, acme: Company) -> User:
    return await make_colleague(
        db, acme, "hannah@acme.example", "Hannah Schmidt",
        title="Account Executive", department="Sales", time_zone="Europe/Berlin",
        phone="+49 30 1234 5678",
    )  # fmt: skip


@pytest.fixture
async def viewer_client(admin_client: PortalClient) -> PortalClient:
    """Ada Admin, signed in; her time zone is the company's, Europe/London."""
    return admin_client


async def test_people_page_is_a_whole_page_and_htmx_gets_only_the_results(
    viewer_client: PortalClient, hannah: User
) -> None:
    page = await viewer_client.get("/people?q=sales")
    assert page.status_code == 200
    assert "<html" in page.text and 'id="people-q"' in page.text
    assert "Hannah Schmidt" in page.text and "Ada Admin" not in page.text.split("<main")[1]
    fragment = await viewer_client.get("/people?q=sales", headers=HTMX)
    assert "<html" not in fragment.text and 'id="people-q"' not in fragment.text
    assert 'data-status="1 person found."' in fragment.text
    assert f'href="http://testserver/people/{hannah.id}"' in fragment.text
    assert f'data-hovercard="http://testserver/people/{hannah.id}/card"' in fragment.text
    assert '<span class="muted">Account Executive · Sales</span>' in fragment.text
    for response in (page, fragment):
        assert {"HX-Request", "Cookie"} <= _vary(response.headers["vary"])


async def test_people_page_filters_by_department_and_says_when_no_one_matches(
    viewer_client: PortalClient, db: Database, acme: Company, hannah: User
) -> None:
    await make_colleague(db, acme, "linus@acme.example", "Linus Berg", department="Engineering")
    sales = await viewer_client.get("/people?department=Sales", headers=HTMX)
    assert "Hannah Schmidt" in sales.text and "Linus Berg" not in sales.text
    none = await viewer_client.get("/people?q=nobody&department=Sales", headers=HTMX)
    assert "No one matches “nobody” in Sales." in none.text
    assert "<li" not in none.text


async def test_people_page_pages_through_results_keeping_the_filter(
    viewer_client: PortalClient, db: Database, acme: Company
) -> None:
    for number in range(27):
        await make_colleague(db, acme, f"e{number:02}@acme.example", f"Engineer {number:02}")
    first = await viewer_client.get("/people?q=engineer", headers=HTMX)
    assert "1–25 of 27" in first.text
    assert 'href="http://testserver/people?page=2&amp;q=engineer&amp;department="' in first.text
    second = await viewer_client.get("/people?q=engineer&page=2", headers=HTMX)
    assert "26–27 of 27" in second.text and "Engineer 26" in second.text


async def test_alone_in_the_directory_an_admin_is_told_to_add_people(
    viewer_client: PortalClient,
) -> None:
    page = await viewer_client.get("/people")
    assert "No colleagues here yet." in page.text and "Add people" in page.text


async def test_top_bar_suggests_the_first_matches_and_all_results(
    viewer_client: PortalClient, db: Database, acme: Company, hannah: User
) -> None:
    for number in range(8):
        await make_colleague(db, acme, f"s{number}@acme.example", f"Sam Sales {number}")
    response = await viewer_client.get("/people/suggestions?q=sa", headers=HTMX)
    options = re.findall(r'role="option" id="topbar-option-(\w+)"', response.text)
    # Eight people, then "all": the Sams, whose names begin with "sa", before Hannah of Sales.
    assert len(options) == 9 and options[-1] == "all"
    assert str(hannah.id) not in options
    assert "See all results for “sa”" in response.text
    assert '<span class="muted">Account Executive · Sales</span>' not in response.text
    assert 'href="http://testserver/people?q=sa"' in response.text
    empty = await viewer_client.get("/people/suggestions?q=zzz", headers=HTMX)
    assert re.findall(r'id="topbar-option-(\w+)"', empty.text) == ["all"]
    assert "No one matches “zzz”" in empty.text
    assert (await viewer_client.get("/people/suggestions?q=", headers=HTMX)).text.strip() == ""


async def test_suggestions_without_htmx_lead_to_the_people_page(
    viewer_client: PortalClient,
) -> None:
    response = await viewer_client.get("/people/suggestions?q=ann")
    assert response.status_code == 303
    assert response.headers["location"] == "http://testserver/people?q=ann"


async def test_profile_shows_contact_details_local_time_and_meet_now(
    viewer_client: PortalClient, hannah: User, fixed_clock: dt.datetime
) -> None:
    page = await viewer_client.get(f"/people/{hannah.id}")
    assert page.status_code == 200
    assert "<title>Hannah Schmidt · Acme</title>" in page.text
    assert 'href="mailto:hannah@acme.example"' in page.text
    assert 'href="tel:+493012345678">+49 30 1234 5678</a>' in page.text
    assert "Account Executive · Sales" in page.text
    assert ">14:42</time>, Europe/Berlin (1 h ahead of you)" in page.text
    assert f'name="invitee" value="{hannah.id}"' in page.text
    assert 'data-hovercard="http://testserver/people/' in page.text


async def test_own_profile_has_no_meet_now(viewer_client: PortalClient, admin: User) -> None:
    page = await viewer_client.get(f"/people/{admin.id}")
    assert page.status_code == 200 and "same time as you" in page.text
    assert 'name="invitee"' not in page.text


async def test_card_is_a_cacheable_fragment_with_local_time_status_and_meet_now(
    viewer_client: PortalClient, hannah: User, fixed_clock: dt.datetime
) -> None:
    await viewer_client.get("/people")  # the page the card is hovered on: it sets the CSRF id
    response = await viewer_client.get(f"/people/{hannah.id}/card", headers=HTMX)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "private, max-age=60"
    assert _vary(response.headers["vary"]) == {"HX-Request", "Cookie"}
    assert "set-cookie" not in response.headers, "a cached card must not carry a new session"
    text = response.text
    assert "<html" not in text and 'id="hovercard-name"' in text
    assert "Hannah Schmidt" in text and "Account Executive · Sales" in text
    assert ">14:42</time>, Europe/Berlin (1 h ahead of you)" in text
    assert "Working hours" in text
    assert f'name="invitee" value="{hannah.id}"' in text


async def test_card_outside_working_hours_says_their_local_time(
    viewer_client: PortalClient, db: Database, acme: Company, fixed_clock: dt.datetime
) -> None:
    mei = await make_colleague(db, acme, "mei@acme.example", "Mei Tanaka", time_zone="Asia/Tokyo")
    text = (await viewer_client.get(f"/people/{mei.id}/card", headers=HTMX)).text
    assert "Outside working hours (21:42 local)" in text
    assert "(8 h ahead of you)" in text


async def test_card_opened_without_htmx_leads_to_the_profile(
    viewer_client: PortalClient, hannah: User, lean_statements: list[str]
) -> None:
    lean_statements.clear()
    response = await viewer_client.get(f"/people/{hannah.id}/card")
    assert len(lean_statements) == 1, "the viewer's check alone: no meetings to show"
    assert response.status_code == 303
    assert response.headers["location"] == f"http://testserver/people/{hannah.id}"
    assert "HX-Request" in _vary(response.headers["vary"])
    assert "cache-control" not in response.headers


@pytest.mark.parametrize("suffix", ["", "/card"])
async def test_profile_and_card_are_not_found_for_anyone_but_an_active_colleague(
    viewer_client: PortalClient, db: Database, acme: Company, suffix: str
) -> None:
    globex = await make_company(db, "Globex")
    outsider = await make_colleague(db, globex, "eve@globex.example", "Eve Outsider")
    gone = await make_colleague(db, acme, "gone@acme.example", "Gone Person", active=False)
    for user_id in (outsider.id, gone.id, 999999, 0, -1, "abc", 2**31, "1e3"):
        for headers in ({}, HTMX):
            response = await viewer_client.get(f"/people/{user_id}{suffix}", headers=headers)
            assert response.status_code == 404, (user_id, headers)
            assert "Eve Outsider" not in response.text and "Gone" not in response.text
            assert "cache-control" not in response.headers


async def test_signed_out_card_request_is_sent_to_sign_in(
    client: PortalClient, hannah: User
) -> None:
    response = await client.get(f"/people/{hannah.id}/card", headers=HTMX)
    assert response.status_code == 204
    assert response.headers["hx-redirect"] == "http://testserver/signin"


async def test_suggestions_and_search_never_show_another_company(
    viewer_client: PortalClient, db: Database, hannah: User
) -> None:
    globex = await make_company(db, "Globex")
    await make_colleague(db, globex, "hannah@globex.example", "Hannah Other", department="Sales")
    for path in ("/people/suggestions?q=hannah", "/people?q=hannah", "/people?department=Sales"):
        text = (await viewer_client.get(path, headers=HTMX)).text
        assert "Hannah Schmidt" in text and "Hannah Other" not in text, path


def _vary(header: str) -> set[str]:
    return {part.strip() for part in header.split(",")}


@pytest.mark.parametrize("change", [{"active": False}, {"session_version": 2}])
async def test_card_and_profile_check_the_viewer_against_the_database_each_time(
    viewer_client: PortalClient, db: Database, admin: User, hannah: User, change: dict[str, object]
) -> None:
    assert (await viewer_client.get(f"/people/{hannah.id}/card", headers=HTMX)).status_code == 200
    async with db.session(company_id=admin.company_id, write=True) as session:
        await session.execute(update(User).where(col(User.id) == admin.id).values(**change))
        await session.commit()
    card = await viewer_client.get(f"/people/{hannah.id}/card", headers=HTMX)
    assert card.status_code == 204 and card.headers["hx-redirect"] == "http://testserver/signin"
    profile = await viewer_client.get(f"/people/{hannah.id}")
    assert profile.status_code == 303 and "/signin" in profile.headers["location"]


async def test_a_full_page_of_results_is_counted_and_a_short_one_needs_no_count(
    viewer_client: PortalClient, db: Database, acme: Company
) -> None:
    for number in range(49):  # with Ada Admin, exactly two pages of 25
        await make_colleague(db, acme, f"p{number:02}@acme.example", f"Person {number:02}")
    first = await viewer_client.get("/people", headers=HTMX)
    assert "1–25 of 50" in first.text and 'rel="next"' in first.text
    second = await viewer_client.get("/people?page=2", headers=HTMX)
    assert "26–50 of 50" in second.text and 'rel="next"' not in second.text
    beyond = await viewer_client.get("/people?page=7", headers=HTMX)
    assert "26–50 of 50" in beyond.text
    short = await viewer_client.get("/people?q=p4", headers=HTMX)  # p40@ to p48@
    assert "1–9 of 9" in short.text


@pytest.mark.parametrize("path", ["/people?q=hannah", "/people/suggestions?q=hannah"])
async def test_search_checks_the_viewer_against_the_database_each_time(
    viewer_client: PortalClient, db: Database, admin: User, hannah: User, path: str
) -> None:
    assert "Hannah Schmidt" in (await viewer_client.get(path, headers=HTMX)).text
    async with db.session(company_id=admin.company_id, write=True) as session:
        await session.execute(update(User).where(col(User.id) == admin.id).values(active=False))
        await session.commit()
    response = await viewer_client.get(path, headers=HTMX)
    assert (
        response.status_code == 204
        and response.headers["hx-redirect"] == "http://testserver/signin"
    )


async def test_a_search_that_stopped_counting_says_so(
    viewer_client: PortalClient, hannah: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(search, "SCAN_LIMIT", 2)
    fragment = await viewer_client.get("/people?q=a", headers=HTMX)  # Ada, Hannah
    assert 'data-status="2+ people found."' in fragment.text
    assert "1–2 of 2+" in fragment.text


@pytest.mark.parametrize(
    ("path", "round_trips"),
    [
        ("/people/{id}/card", 1),
        ("/people/{id}", 1),
        ("/people?q=lovelace", 1),
        ("/people?q=a", 1),
        ("/people/suggestions?q=a", 1),
        # A walk in name order (search.WALK_PER_ROW) found fewer than the 8 suggestions: the
        # ranked read follows it. (The results' count, read beside their walk, tells them
        # when the walk found everyone.)
        ("/people/suggestions?q=lovelace", 2),
    ],
)
async def test_on_postgresql_a_card_profile_search_or_suggestion_is_one_round_trip(
    admin_client: PortalClient,
    db: Database,
    member: User,
    monkeypatch: pytest.MonkeyPatch,
    path: str,
    round_trips: int,
) -> None:
    """The viewer's check and the person's meetings, or the people found, are sent together
    in one pipeline on one connection: each read apart was a connection lent and a wait."""
    if db.is_sqlite:
        pytest.skip("SQLite reads in the process: the PostgreSQL pass runs this")
    lent: list[int] = []
    getconn = psycopg_pool.AsyncConnectionPool.getconn

    async def counted(pool: psycopg_pool.AsyncConnectionPool, *args: Any, **kwargs: Any) -> Any:
        connection = await getconn(pool, *args, **kwargs)
        lent.append(connection.info.backend_pid)
        return connection

    monkeypatch.setattr(psycopg_pool.AsyncConnectionPool, "getconn", counted)
    response = await admin_client.get(path.format(id=member.id), headers={"HX-Request": "true"})
    assert response.status_code == 200, response.text
    assert len(lent) == round_trips
