"""The helpers every form shares: ids people send, and search text."""

from __future__ import annotations

import pytest

from portal.forms import MAX_ID, FormErrors, parse_id, parse_ids, search_text

NOT_IDS = [
    *("", "0", "-1", "+1", " 1", "1 ", "1.0", "1e3"),
    # digits that are not ASCII, which str.isdigit() and int() take
    *("²", "٣", "１"),
    *("2147483648", "9" * 30, None, 7),
]


@pytest.mark.parametrize("raw", NOT_IDS)
def test_what_is_not_an_id_is_none(raw: object) -> None:
    assert parse_id(raw) is None


@pytest.mark.parametrize(("raw", "number"), [("1", 1), ("007", 7), (str(MAX_ID), MAX_ID)])
def test_ids_are_ascii_digits_within_32_bits(raw: str, number: int) -> None:
    assert parse_id(raw) == number


def test_parse_ids_keeps_each_id_once_in_order_and_drops_the_rest() -> None:
    assert parse_ids(["3", "x", "1", "3", "²", "2"]) == [3, 1, 2]


def test_search_text_is_trimmed_cut_and_free_of_nul() -> None:
    assert search_text("  ada\x00 lovelace ") == "ada lovelace"
    assert len(search_text("x" * 500)) == 100


def test_form_errors_read_as_their_messages() -> None:
    assert str(FormErrors({"email": "Enter an email.", "name": "Enter a name."})) == (
        "Enter an email. Enter a name."
    )
