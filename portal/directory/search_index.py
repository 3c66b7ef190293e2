"""The indexes that pick the candidates of a people search, and the text they index.

A search word is found in a person's searchable text: their name, title, department and email
in one string (`searchable_text`), case folded. Each database indexes that text by trigrams, so
a word of three characters or more reads its candidates from the index instead of every row:

- SQLite: migration 0005 keeps an FTS5 table `people_search` (`tokenize='trigram'`,
  contentless, its rowid the person's `users.id`) in step with triggers on `users`; it holds
  the active people of every company. It knows no company, so a search only ever uses it inside
  a query of `users`, where the session's company criterion applies; and since its trigrams
  fold case more widely than SQLite's LIKE, it only narrows: the LIKE conditions still decide.
- PostgreSQL: the same text is a stored generated column, `users.search_text` (migration 0013;
  PostgreSQL computes it on every insert and update), with a GIN index of pg_trgm's
  `gin_trgm_ops` on it, and the search's LIKE conditions are on that column. The column and
  its index belong to the table, so no trigger keeps them and no rebuild of the table forgets
  them. Where pg_trgm could not be created the index is missing, and the same query scans the
  column: slower, same results. The column is in no model (SQLite has no such column): the
  search names it, and migrations/env.py leaves it out of autogenerate's comparison.

Where the two databases differ: PostgreSQL's lower() folds the case of any letter, SQLite's LIKE
only of ASCII letters, so on SQLite "émile" does not find "Émile" (it does find "Émile" typed
"ÉMILE"'s way round, and "emile" finds "Emile"). Text in ASCII, or typed in its own case, is
found alike on both.
"""

from __future__ import annotations

from sqlalchemy import (
    ColumnElement,
    String,
    bindparam,
    column,
    func,
    literal_column,
    or_,
    select,
    table,
)
from sqlalchemy.sql.expression import TableClause

NAME = "people_search"
# A trigram index can find nothing shorter than three characters: such words are left to LIKE.
SHORTEST_WORD = 3
# PostgreSQL's stored searchable text and its trigram index (migration 0013).
SEARCH_TEXT = "search_text"
TRIGRAM_INDEX = "ix_users_search_text_trigram"

_index = table(NAME, column("rowid"), column(NAME))


def is_part_of_index(name: str) -> bool:
    """The FTS5 table or one of its shadow tables (`people_search_data` and the like)."""
    return name == NAME or name.startswith(f"{NAME}_")


def searchable_text(users: TableClause) -> ColumnElement[str]:
    """PostgreSQL's searchable text: name, title, department and email in one string,
    lower-cased, a line break between fields (search words are split on whitespace and never
    hold one, so none matches across two fields): the stored column of migration 0013."""
    return literal_column(f"{users.name}.{SEARCH_TEXT}", String())


def word_found(users: TableClause, parameter: str, *, sqlite: bool) -> ColumnElement[bool]:
    """The LIKE pattern (escape character /) in `parameter` matches the searchable text."""
    if sqlite:
        return word_in_fields(users, parameter, sqlite=True)
    pattern = bindparam(parameter, type_=String())
    return searchable_text(users).like(func.lower(pattern), escape="/")


def word_in_fields(users: TableClause, parameter: str, *, sqlite: bool) -> ColumnElement[bool]:
    """word_found, read from the four fields themselves rather than PostgreSQL's stored text:
    what an index holding the fields (ix_user_company_directory) answers alone. A word holds
    no line break, so it is in the joined text exactly when it is in one of the fields."""
    pattern = bindparam(parameter, type_=String())
    # Field by field, to the first that matches: joining the four fields would cost a scan
    # half as much again.
    fields = (users.c.display_name, users.c.title, users.c.department, users.c.email)
    if sqlite:
        # LIKE folds ASCII case itself.
        return or_(*(field.like(pattern, escape="/") for field in fields))
    folded = func.lower(pattern)
    return or_(*(func.lower(field).like(folded, escape="/") for field in fields))


def phrase(word: str) -> str:
    """`word` as an FTS5 string: every character literal, whatever query syntax it spells."""
    return '"' + word.replace('"', '""') + '"'


def phrases(words: list[str]) -> str | None:
    """An FTS5 query for the words of three characters or more, all of them; None if none is."""
    found = [phrase(word) for word in words if len(word) >= SHORTEST_WORD]
    # Phrases side by side must all match (FTS5's implicit AND), each within one column.
    return " ".join(found) or None


# The ids of the people whose text holds the phrases of the parameter `phrases`.
MATCHING_IDS = select(_index.c.rowid).where(_index.c[NAME].match(bindparam("phrases")))
