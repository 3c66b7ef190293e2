"""Secret links hidden where admins read the outbox, in mail bodies and in calendar parts."""

from __future__ import annotations

import pytest

import portal.calendar.links
import portal.calendar.replies
from portal.mail.redaction import hide_secret_links, secret_link_prefixes

JOIN = "https://portal.test/calendar/join/"
# As secrets.token_urlsafe(32) makes them; fixed, so a piece of it can be looked for.
TOKEN = "Zq3kT9xW_vB7-mN2pR5sL8yC1dF4gH6jK0aEuQwXo1I"
HIDDEN = "[link to join the meeting: hidden]"


def _calendar(*lines: str) -> str:
    return "".join(f"{line}\r\n" for line in ["BEGIN:VCALENDAR", *lines, "END:VCALENDAR"])


def _fold_at(line: str, cut: int, fold: str = "\r\n ") -> str:
    return line[:cut] + fold + line[cut:]


def test_the_calendar_links_are_declared_secret() -> None:
    assert portal.calendar.links.JOIN_PATH in secret_link_prefixes()
    assert portal.calendar.replies.REPLY_PATH in secret_link_prefixes()


def test_a_link_in_a_body_is_hidden() -> None:
    shown = hide_secret_links(f"Join here:\n{JOIN}{TOKEN}\nSee you.")
    assert shown == f"Join here:\n{HIDDEN}\nSee you."


@pytest.mark.parametrize("fold", ["\r\n ", "\r\n\t", "\n "])
def test_a_link_split_by_a_fold_anywhere_in_a_calendar_is_hidden(fold: str) -> None:
    line = f"URL:{JOIN}{TOKEN}"
    for cut in range(1, len(line)):
        shown = hide_secret_links(
            _calendar("BEGIN:VEVENT", _fold_at(line, cut, fold), "END:VEVENT")
        )
        assert f"URL:{HIDDEN}\r\n" in shown, cut
        assert not any(TOKEN[i : i + 4] in shown for i in range(len(TOKEN) - 3)), cut


def test_a_folded_calendar_comes_back_unfolded_and_otherwise_as_it_was() -> None:
    text = _calendar("BEGIN:VEVENT", "SUMMARY:Plan", "DESCRIPTION:a long", "  line", "END:VEVENT")
    assert hide_secret_links(text) == _calendar(
        "BEGIN:VEVENT", "SUMMARY:Plan", "DESCRIPTION:a long line", "END:VEVENT"
    )


def test_a_reply_link_in_a_calendars_description_is_hidden() -> None:
    token = "eyJwIjoxLCJhIjoiQUNDRVBURUQifQ.Zz9-x_Y"
    line = f"DESCRIPTION:Accept: https://portal.test/calendar/reply/{token}\\nDecline: later"
    shown = hide_secret_links(_calendar(_fold_at(line, 60)))
    assert "DESCRIPTION:Accept: [link to answer the invitation: hidden]\\nDecline: later" in shown
    assert token[-8:] not in shown


def test_a_mail_body_is_not_unfolded() -> None:
    # Only iCalendar folds lines; in a body a leading space is the text's own.
    body = "Hello\r\n indented line\r\n"
    assert hide_secret_links(body) == body
