"""SQLite's trigram index of people's searchable text, which picks the candidates of a search.

Migration 0005 creates it (an FTS5 table `people_search` with `tokenize='trigram'`, contentless,
its rowid the person's `users.id`) and the triggers on `users` that keep it in step: it holds
the name, email, title and department of every active person, of every company. It knows no
company, so a search only ever uses it inside a query of `users`, where the session's company
criterion applies; and since trigram matching folds case more widely than SQLite's LIKE, it only
narrows: the LIKE conditions still decide what is found.
"""

from __future__ import annotations

from sqlalchemy import bindparam, column, select, table

NAME = "people_search"
# A trigram index can find nothing shorter than three characters: such words are left to LIKE.
SHORTEST_WORD = 3

_index = table(NAME, column("rowid"), column(NAME))


def is_part_of_index(name: str) -> bool:
    """The FTS5 table or one of its shadow tables (`people_search_data` and the like)."""
    return name == NAME or name.startswith(f"{NAME}_")


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
