"""What every form shares: errors meant for the page, and reading ids that people send."""

from __future__ import annotations

import re
from collections.abc import Iterable

# Ids are 32-bit integer columns on both databases: a larger number is nobody, not an error.
MAX_ID = 2**31 - 1
# ASCII digits only: str.isdigit() and int() also take "²" or "٣", which no id is made of.
_ID = re.compile(r"[0-9]{1,10}")


class FormErrors(Exception):
    """Field name -> message for the page; nothing was written."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__(errors)
        self.errors = errors

    def __str__(self) -> str:
        return " ".join(self.errors.values())


def parse_id(raw: object) -> int | None:
    """`raw` as a row id, or None when it cannot be one (not digits, zero, or too large)."""
    if not isinstance(raw, str) or not _ID.fullmatch(raw):
        return None
    number = int(raw)
    return number if 0 < number <= MAX_ID else None


def parse_ids(values: Iterable[object]) -> list[int]:
    """The ids among `values`, each once, in the order given; what is not an id is left out."""
    return list(dict.fromkeys(number for number in map(parse_id, values) if number is not None))


# A search box's text is cut here: longer adds nothing to finding a person.
SEARCH_MAX = 100
# The query parameters read with search_text: a NUL in them is dropped, where one in any other
# parameter is refused (portal.security), since pasted text may bring one along.
SEARCH_PARAMETERS = frozenset({"q", "department"})


def search_text(raw: str) -> str:
    """What someone typed into a search box, ready to search for."""
    # No stored text holds a NUL, and PostgreSQL refuses one in a query's parameters.
    return raw.replace("\x00", "").strip()[:SEARCH_MAX]
