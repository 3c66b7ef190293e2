"""The same people, searched for alike, are found alike, and in the same order, on SQLite and on
PostgreSQL: PostgreSQL's trigram index and SQLite's pick the candidates, the same LIKEs decide.

Runs in the PostgreSQL pass, against a SQLite database of its own. Where the two databases do
differ: PostgreSQL folds the case of any letter, SQLite's LIKE only of ASCII letters
(search_index's docstring), so non-ASCII text is searched for here in its own case; and a
PostgreSQL database whose collation is not C or C.UTF-8 (the tests' is C.UTF-8) orders names
by its locale, where SQLite orders them by code point.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from portal import migrate
from portal.accounts.models import Company
from portal.db import Database
from portal.directory import search
from tests.conftest import make_company
from tests.directory.conftest import make_colleague

# (email, name, title, department, active): first and later names that begin alike, LIKE's
# wildcards, short words, words that are in a title or a department rather than the name.
PEOPLE = [
    ("ann.lee@acme.example", "Ann Lee", "Account Executive", "Sales", True),
    ("anna.bell@acme.example", "Anna Bell", "Engineer", "Engineering", True),
    ("lee.marsh@acme.example", "Lee Ann Marsh", "Sales Engineer", "Sales", True),
    ("joanne@acme.example", "Joanne Leeds", "Analyst", "Finance", True),
    ("annex@acme.example", "Max Annex", "Annual Reports", "Finance", True),
    ("pct@acme.example", "Percy 100%", "100% Remote Lead", "Sales_EMEA", True),
    ("snake_case@acme.example", "Sam Snake_Case", "Python Dev", "Engineering", True),
    ("obrien@acme.example", "Conan O'Brien", "Host", "Sales", True),
    ("al.ng@acme.example", "Al Ng", "QA", "IT", True),
    ("novak.a@acme.example", "Aiko Novak", "Engineer", "Engineering", True),
    ("novak.b@acme.example", "Ben Novakova", "Designer", "Product", True),
    ("novak.c@acme.example", "Carla Ivanova", "Novak's Assistant", "Product", True),
    ("zoe@acme.example", "Zoë Ångström", "Staff Engineer", "Engineering", True),
    ("emile@acme.example", "Émile Zola", "Writer", "Docs", True),
    ("gone.novak@acme.example", "Gone Novak", "Engineer", "Engineering", False),
]
# Prefixes, middles of words, two words, departments, parts of addresses, wildcards, case.
QUERIES = [
    "ann", "ANN", "Ann Lee", "lee", "lee ann", "an", "a", "nn", "novak", "NOVAK", "nova",
    "novak eng", "ova", "sales", "sales eng", "engineering", "eng", "finance annual", "acme",
    "@acme", "novak.b", ".example", "100%", "%", "_", "e_c", "sales_", "o'brien", "'", "al",
    "al ng", "qa", "zoë", "Ångström", "Émile", "ngstr", "mile", "writer docs", "gone", "zzz",
    "a b c d e f",
]  # fmt: skip
SIZE = 5


@pytest.fixture
async def sqlite_db(tmp_path: Path) -> AsyncIterator[Database]:
    url = f"sqlite:///{tmp_path / 'parity.db'}"
    migrate.upgrade(url)
    database = Database(url)
    yield database
    await database.dispose()


async def _seed(db: Database) -> Company:
    company = await make_company(db, "Acme")
    for email, name, title, department, active in PEOPLE:
        await make_colleague(
            db, company, email, name, title=title, department=department, active=active
        )
    return company


@pytest.fixture
async def seeded(db: Database, sqlite_db: Database) -> tuple[Company, Company]:
    """The same company of PEOPLE on PostgreSQL and on SQLite (in the PostgreSQL pass only)."""
    if db.is_sqlite:
        pytest.skip("compares with PostgreSQL: the PostgreSQL pass runs this")
    return await _seed(db), await _seed(sqlite_db)


def _more_queries(count: int = 40) -> Iterator[str]:
    """Slices of what people hold, one or two, in their own case or in ASCII's other."""
    rng = random.Random(15)
    texts = [text for person in PEOPLE for text in person[:4] if isinstance(text, str)]
    for _ in range(count):
        source = rng.choice(texts)
        start = rng.randrange(len(source))
        piece = source[start : start + rng.randint(1, 6)]
        if piece.isascii():
            piece = rng.choice([piece, piece.upper(), piece.lower()])
        yield piece if rng.random() < 0.6 else f"{piece} {rng.choice(texts)[:3]}"


async def _found(db: Database, company: Company, query: str) -> tuple[object, ...]:
    reader = db.reader(company_id=company.id or 0)
    pages = [await search.find_people(reader, query, page=n, size=SIZE) for n in (1, 2)]
    first = await search.first_matches(reader, query)
    async with db.session(company_id=company.id) as session:
        setup = await search.search_people(session, query, status=search.EVERYONE, size=SIZE)
    return (
        [([p.email for p in page.items], page.total, page.number) for page in pages],
        [p.email for p in first],
        ([p.email for p in setup.items], setup.total),
    )


async def test_both_databases_find_the_same_people_in_the_same_order(
    db: Database, sqlite_db: Database, seeded: tuple[Company, Company]
) -> None:
    on_postgresql, on_sqlite = seeded
    queries = list(dict.fromkeys([*QUERIES, *_more_queries()]))
    differing = []
    for query in queries:
        found = await _found(db, on_postgresql, query)
        if found != await _found(sqlite_db, on_sqlite, query):
            differing.append((query, found, await _found(sqlite_db, on_sqlite, query)))
    assert differing == []
    found = [await _found(db, on_postgresql, query) for query in ("ann", "novak", "sales eng")]
    assert all(pages[0][0] for pages, _first, _setup in found), "the queries find people"


async def test_postgresql_alone_folds_the_case_of_letters_beyond_ascii(
    db: Database, sqlite_db: Database, seeded: tuple[Company, Company]
) -> None:
    on_postgresql, on_sqlite = seeded
    for query in ("émile", "ZOË"):
        found = await search.find_people(db.reader(company_id=on_postgresql.id or 0), query)
        assert found.total == 1, query
        found = await search.find_people(sqlite_db.reader(company_id=on_sqlite.id or 0), query)
        assert found.total == 0, query
