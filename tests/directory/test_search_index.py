"""SQLite's trigram index picks the candidates: the same people found, in step, per company."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event, select, text

from portal.accounts import services as accounts
from portal.accounts.demo import ensure_demo_company
from portal.accounts.forms import ProfileInput
from portal.accounts.models import Company, User
from portal.db import Database
from portal.directory import search, search_index
from portal.settings import Settings
from tests.conftest import PortalClient, make_company
from tests.directory.conftest import make_colleague

# (email, name, title, department): accents, digits, LIKE's wildcards, quotes, FTS5 syntax.
PEOPLE = [
    ("zoe@acme.example", "Zoë Ångström", "Staff Engineer", "Engineering"),
    ("jose@acme.example", "José Núñez", "Ingénieur Réseau", "Opérations"),
    ("emile@acme.example", "ÉMILE ZOLA", "Writer", "Docs"),
    ("r2d2@acme.example", "R2 D2", "Astromech 007", "Droids"),
    ("pct@acme.example", "Percy 100%", "100% Remote Lead", "Sales_EMEA"),
    ("snake_case@acme.example", "Sam Snake_Case", "Python Dev", "Engineering"),
    ("obrien@acme.example", "Conan O'Brien", 'The "Boss"', "Sales"),
    ("near@acme.example", "Nea NEAR(Ring)", "OR AND NOT", "R&D*"),
    ("al@acme.example", "Al Ng", "QA", "IT"),
    ("gone@acme.example", "Gone Ångström", "Staff Engineer", "Engineering"),
]
# Words that mean something to FTS5's query syntax, or to LIKE, and words too short for trigrams.
TRICKY = [
    '"', '""', '"boss"', 'boss"', "*", "eng*", "NEAR(", "NEAR(ring", "near(ring)", "OR", "or",
    "AND", "NOT", "a OR b", "title:eng", "^zoë", "-sales", "(", ")", "+", ":", "%", "_", "%%",
    "100%", "sales_", "snake_case", "_case", "o'brien", "'", "r&d*", "007", "2 d2", "r2", "d2",
    "al", "ng", "a", "é", "zoë", "ZOË", "zoe", "ångström", "ÅNGSTRÖM", "angstrom", "josé núñez",
    "émile", "Émile", "ÉMILE", "opérations", "staff eng", "eng staff", "eng eng", "x" * 100,
    "a b c d e f", "\x00", "ab\x00cd", "qu\"ill",
]  # fmt: skip


@pytest.fixture
async def people(db: Database, acme: Company, admin: User) -> list[User]:
    found = [admin]
    for email, name, title, department in PEOPLE:
        found.append(
            await make_colleague(
                db, acme, email, name, title=title, department=department,
                active=not email.startswith("gone"),
            )
        )  # fmt: skip
    return found


def _queries(people: list[User], count: int = 60) -> Iterator[str]:
    """Slices of what people hold, in odd cases, alone and in pairs; then the tricky words."""
    rng = random.Random(5)
    texts = [t for p in people for t in (p.display_name, p.email, p.title, p.department) if t]
    for _ in range(count):
        source = rng.choice(texts)
        start = rng.randrange(len(source))
        piece = source[start : start + rng.randint(1, 7)]
        piece = rng.choice([piece, piece.upper(), piece.lower(), piece.swapcase()])
        yield piece if rng.random() < 0.6 else f"{piece} {rng.choice(texts)[:4]}"
    yield from TRICKY


async def _found(db: Database, company: Company, query: str) -> Any:
    async with db.session(company_id=company.id) as session:
        pages = [await search.search_people(session, query, page=n, size=3) for n in (1, 2)]
    first = await search.first_matches(db.reader(company_id=company.id), query, limit=4)
    return (
        [([p.id for p in page.items], page.total, page.number) for page in pages],
        [p.id for p in first],
    )


@pytest.fixture
def statements(db: Database) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", record)
    yield seen
    event.remove(db.engine.sync_engine, "before_cursor_execute", record)


async def test_the_index_changes_no_result(
    db: Database,
    acme: Company,
    people: list[User],
    statements: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    queries = list(dict.fromkeys(_queries(people)))
    with_index = [await _found(db, acme, query) for query in queries]
    used = sum("MATCH" in statement for statement in statements)
    monkeypatch.setattr(search_index, "phrases", lambda words: None)
    without = [await _found(db, acme, query) for query in queries]
    differing = [(q, a, b) for q, a, b in zip(queries, with_index, without, strict=True) if a != b]
    assert differing == []
    if db.is_sqlite:
        assert used > len(queries), "the index picked the candidates of most searches"
    assert any(ids for (pages, _first) in with_index for ids, _total, _n in pages[:1])


@pytest.mark.parametrize(
    ("query", "found"),
    [
        ('the "boss"', ["Conan O'Brien"]),
        ('"boss', ["Conan O'Brien"]),
        ("near(ring)", ["Nea NEAR(Ring)"]),
        ("OR AND", ["Nea NEAR(Ring)"]),
        ("r&d*", ["Nea NEAR(Ring)"]),
        ("100%", ["Percy 100%"]),
        ("e_case", ["Sam Snake_Case"]),
        ("s_e", ["Percy 100%"]),
        ("ngström", ["Zoë Ångström"]),  # the deactivated Ångström is nobody's result
        ("007 droids", ["R2 D2"]),
        ("r2 d2", ["R2 D2"]),
    ],
)
async def test_query_syntax_is_taken_literally(
    db: Database, acme: Company, people: list[User], query: str, found: list[str]
) -> None:
    async with db.session(company_id=acme.id) as session:
        page = await search.search_people(session, query)
    assert [p.display_name for p in page.items] == found


async def _names(db: Database, company: Company, query: str) -> list[str]:
    async with db.session(company_id=company.id) as session:
        return [p.display_name for p in (await search.search_people(session, query)).items]


async def _indexed(db: Database, query: str | None = None) -> set[int]:
    """The ids the index holds, or those whose text holds `query` (SQLite only)."""
    sql = "SELECT rowid FROM people_search"
    if query is not None:
        sql += " WHERE people_search MATCH :q"
    async with db.engine.connect() as connection:
        rows = await connection.execute(text(sql), {"q": search_index.phrase(query or "")})
        return {row[0] for row in rows}


async def test_the_index_follows_adds_edits_deactivations_and_deletions(
    db: Database, acme: Company, admin: User
) -> None:
    sqlite = db.is_sqlite
    quill = await make_colleague(db, acme, "quill@acme.example", "Zed Quill", title="Scribe")
    assert await _names(db, acme, "quill") == ["Zed Quill"]
    assert not sqlite or await _indexed(db) == {admin.id, quill.id}

    async with db.transaction(company_id=acme.id) as session:
        person = await session.get(User, quill.id)
        assert person is not None
        edit = ProfileInput(
            display_name="Zed Inkwell", title="Cartographer", phone="", time_zone="UTC"
        )
        await accounts.update_profile(session, person, edit)
    assert await _names(db, acme, "scribe") == []
    assert await _names(db, acme, "cartographer inkwell") == ["Zed Inkwell"]
    assert not sqlite or (await _indexed(db, "scribe"), await _indexed(db, "ink")) == (
        set(),
        {quill.id},
    )

    async def set_active(active: bool) -> None:
        async with db.transaction(company_id=acme.id) as session:
            actor, person = await session.get(User, admin.id), await session.get(User, quill.id)
            assert actor is not None and person is not None
            await accounts.set_active(session, actor, person, active)

    await set_active(False)
    assert await _names(db, acme, "inkwell") == []
    assert not sqlite or await _indexed(db) == {admin.id}
    await set_active(True)
    assert await _names(db, acme, "inkwell") == ["Zed Inkwell"]
    async with db.transaction(company_id=acme.id) as session:
        await session.delete(await session.get(User, quill.id))
    assert await _names(db, acme, "inkwell") == []
    assert not sqlite or await _indexed(db) == {admin.id}


async def test_another_companys_people_never_appear(
    db: Database, acme: Company, people: list[User]
) -> None:
    globex = await make_company(db, "Globex")
    twin = await make_colleague(
        db, globex, "zoe@globex.example", "Zoë Ångström", title="Staff Engineer"
    )
    for query in ("Ångström", "staff engineer", "zoë", "example", "zo"):
        async with db.session(company_id=acme.id) as session:
            found = await search.search_people(session, query)
        first = await search.first_matches(db.reader(company_id=acme.id), query)
        assert twin.id not in {p.id for p in [*found.items, *first]}, query
        assert found.total == len(found.items), "counted among the company's people only"
    assert await _names(db, globex, "Ångström") == ["Zoë Ångström"]
    assert await _names(db, globex, "conan") == []


async def test_a_nul_in_the_address_is_no_error(
    admin_client: PortalClient, people: list[User]
) -> None:
    for query in ("q=%00", "q=zo%00e%20%22NEAR(", "q=eng&department=Engi%00neering"):
        response = await admin_client.get(f"/people?{query}", headers={"HX-Request": "true"})
        assert response.status_code == 200, query
        suggestions = await admin_client.get(
            f"/people/suggestions?{query}", headers={"HX-Request": "true"}
        )
        assert suggestions.status_code == 200, query


async def test_an_indexed_search_reads_only_its_candidates_by_id(
    db: Database, acme: Company, people: list[User]
) -> None:
    """Left to itself, SQLite's planner scans the company's index and checks every row."""
    if not db.is_sqlite:
        pytest.skip("the trigram index is SQLite's")
    executed: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_args: Any) -> None:
        executed.append((statement, parameters))

    event.listen(db.engine.sync_engine, "before_cursor_execute", record)
    try:
        await _found(db, acme, "staff eng")
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", record)
    searches = [(sql, params) for sql, params in executed if "MATCH" in sql]
    assert searches
    async with db.engine.connect() as connection:
        for sql, params in searches:
            plan = await connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", params)
            details = [row[3] for row in plan]
            assert any("USING INTEGER PRIMARY KEY" in detail for detail in details), details
            assert not any("ix_user_company" in detail for detail in details), details


@pytest.mark.parametrize("words", [["novak"], ["novak", "lena"], ["nov", "ovak"], ["ada.lovelace"]])
async def test_postgresql_can_read_the_candidates_from_its_trigram_index(
    db: Database, settings: Settings, words: list[str]
) -> None:
    """A search's LIKEs are on migration 0012's indexed expression, so the planner can use
    the index. Asked for the LIKEs alone, scans ruled out: at 3,000 people a scan costs about
    as little, and the company's indexes would do for the rest of a search's conditions (at
    100,000 the planner picks the index itself: bench/pages.py)."""
    if db.is_sqlite:
        pytest.skip("the trigram index is PostgreSQL's; SQLite's is checked above")
    await ensure_demo_company(db, settings, people=3000)
    users = User.__table__  # type: ignore[attr-defined]
    found = [search_index.word_found(users, f"w{n}", sqlite=False) for n in range(len(words))]
    probe = select(users.c.id).where(*found)
    params = {f"w{n}": f"%{word}%" for n, word in enumerate(words)}
    async with db.engine.connect() as connection:
        await connection.execute(text("ANALYZE users"))  # as autovacuum does soon after
        await connection.execute(text("SET LOCAL enable_seqscan = off"))
        sql = str(probe.compile(dialect=connection.dialect))
        plan = await connection.exec_driver_sql(f"EXPLAIN {sql}", params)
        details = "\n".join(row[0] for row in plan)
    assert f"Bitmap Index Scan on {search_index.TRIGRAM_INDEX}" in details, details


async def test_words_too_short_for_trigrams_are_found_by_a_scan(
    db: Database, acme: Company, people: list[User]
) -> None:
    """No trigram in "al", "ng" or "r2": each database reads the company's people instead."""
    reader = db.reader(company_id=acme.id or 0)
    found = await search.find_people(reader, "al ng")
    assert [p.display_name for p in found.items] == ["Al Ng"]
    assert [p.display_name for p in (await search.find_people(reader, "r2")).items] == ["R2 D2"]
