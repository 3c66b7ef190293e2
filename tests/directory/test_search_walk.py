"""The first page of a search, and the top bar's suggestions, are looked for first in a walk of
the company's people in name order (search.WALK_PER_ROW): what the walk finds is what the
ranked read finds, whether the walk fills the page, comes short of it, or covers everyone."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import insert

from portal.accounts.models import Company, User
from portal.db import UNSCOPED, Database
from portal.directory import search
from tests.conftest import make_company

FIRST = ["Ada", "Bo", "Cy", "Di", "Ed", "Flo", "Gus"]
# Novak is one in three; Zylberstein one person; Lund also a department's word, Kim a title's.
LAST = ["Novak", "Kim", "Lund", "Novakova", "Ito", "Novak", "Sato", "Dunlund", "Novak"]
SIZE = 5
QUERIES = [
    "novak", "NOVAK", "nova", "ovak", "novak ada", "ada novak", "nov ada", "lund", "kim",
    "zylberstein", "liaison", "acme", "xyz", "ito sato", "ed", "flo lund", "novakova",
]  # fmt: skip


def _people(company_id: int, domain: str) -> list[dict[str, Any]]:
    people = []
    for number in range(90):
        first, last = FIRST[number % len(FIRST)], LAST[number % len(LAST)]
        if number == 41:
            last = "Zylberstein"
        people.append(
            {
                "company_id": company_id,
                "email": f"{first}.{last}.{number}@{domain}".lower(),
                "display_name": f"{first} {last}",
                # Words of other people's names in titles and departments: found, ranked after.
                "title": "Novak liaison" if number % 10 == 3 else "Kimono designer",
                "department": "Lund office" if number % 4 == 0 else "Sales",
                "active": number % 11 != 5,
                "role": "member",
            }
        )
    return people


@pytest.fixture
async def acme(db: Database) -> Company:
    """Acme's 90 people; another company's, whose names come first in name order, beside."""
    acme = await make_company(db, "Acme")
    other = await make_company(db, "Other")
    strangers = _people(other.id or 0, "other.example")
    for person in strangers:
        person["display_name"] = "Aa " + person["display_name"]
    async with db.session(company_id=UNSCOPED, write=True) as session:
        await session.execute(insert(User), [*_people(acme.id or 0, "acme.example"), *strangers])
        await session.commit()
    return acme


def _queries() -> Iterator[str]:
    yield from QUERIES
    rng = random.Random(80)
    for _ in range(40):
        name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
        start = rng.randrange(len(name) - 2)
        yield name[start : start + rng.randint(3, 7)]


async def _found(db: Database, company: Company, query: str) -> Any:
    reader = db.reader(company_id=company.id or 0)
    pages = [await search.find_people(reader, query, page=n, size=SIZE) for n in (1, 2)]
    first = await search.first_matches(reader, query, limit=4)
    return (
        [([p.email for p in page.items], page.total, page.number) for page in pages],
        [p.email for p in first],
    )


@pytest.mark.parametrize("walk_per_row", [1, 2, 4, search.WALK_PER_ROW])
async def test_the_walk_changes_no_result(
    db: Database, acme: Company, monkeypatch: pytest.MonkeyPatch, walk_per_row: int
) -> None:
    """Walks of 4 people to all 82 active ones (a company smaller than the walk)."""
    queries = list(dict.fromkeys(_queries()))
    monkeypatch.setattr(search, "WALK_PER_ROW", walk_per_row)
    walked = [await _found(db, acme, query) for query in queries]
    monkeypatch.setattr(search._Shape, "walks", property(lambda _shape: False))
    ranked = [await _found(db, acme, query) for query in queries]
    differing = [(q, a, b) for q, a, b in zip(queries, walked, ranked, strict=True) if a != b]
    assert differing == []
    emails = [email for pages, _first in walked for page in pages for email in page[0]]
    assert emails and all(email.endswith("@acme.example") for email in emails)


def _ranked_reads(statements: list[str]) -> list[str]:
    # The ranked read orders by its CASE; the walk and the count have none.
    return [sql for sql in statements if "CASE WHEN" in sql]


async def test_a_common_name_is_found_by_the_walk_alone(
    db: Database, acme: Company, lean_statements: list[str]
) -> None:
    reader = db.reader(company_id=acme.id or 0)
    lean_statements.clear()
    page = await search.find_people(reader, "novak", size=SIZE)
    assert len(page.items) == SIZE and page.total > SIZE
    assert all("Novak" in person.display_name for person in page.items)
    assert [p.id for p in await search.first_matches(reader, "novak", limit=4)] == [
        p.id for p in page.items[:4]
    ]
    assert _ranked_reads(lean_statements) == []


async def test_a_rarer_word_is_ranked_after_the_walk(
    db: Database, acme: Company, lean_statements: list[str]
) -> None:
    """A walk that finds too few for the suggestions leaves them to the ranked read; the
    results' count tells when a walk that found too few for a page found everyone."""
    reader = db.reader(company_id=acme.id or 0)
    lean_statements.clear()
    found = await search.first_matches(reader, "zylberstein", limit=4)
    assert [person.display_name for person in found] == ["Gus Zylberstein"]
    assert len(_ranked_reads(lean_statements)) == 1
    lean_statements.clear()
    page = await search.find_people(reader, "zylberstein", size=SIZE)
    assert ([person.display_name for person in page.items], page.total) == (["Gus Zylberstein"], 1)
    none = await search.find_people(reader, "xyz")
    assert (none.items, none.total) == ([], 0)
    assert _ranked_reads(lean_statements) == []
