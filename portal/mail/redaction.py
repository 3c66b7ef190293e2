"""Secret links in emails, hidden wherever someone other than the recipient reads them.

A set-password link signs its holder in, and a join link lets its holder in as the
invitee: an admin reading the outbox must see that such a link was sent, never the link.
Mail knows nothing of what it carries, so each feature declares the paths of its secret links.
"""

from __future__ import annotations

import functools
import re

# path prefix -> what the link is for, as the admin reads it ("set a password")
_SECRET_LINKS: dict[str, str] = {}
# The characters of the tokens the portal makes (itsdangerous, secrets.token_urlsafe), and of
# their percent-encoded forms.
_LINK_TAIL = r"[A-Za-z0-9_.~%=-]+"
# Whatever comes before the path in the same URL: a scheme, a host, a base path.
_URL_START = r"(?:[A-Za-z][A-Za-z0-9+.-]*://[^\s\"'<>]*?)?"
# An iCalendar object (a calendar invitation's text/calendar part), and its line folds
# (RFC 5545 3.1: a line break followed by one space or tab continues the line).
_CALENDAR = re.compile(r"\ufeff?\s*BEGIN:VCALENDAR\r?\n", re.IGNORECASE)
_FOLD = re.compile(r"\r?\n[ \t]")


def declare_secret_link(path_prefix: str, purpose: str) -> None:
    """Links whose path starts with `path_prefix` are secret; `purpose` says what they do."""
    if not (path_prefix.startswith("/") and path_prefix.endswith("/")):
        raise ValueError(f"a secret link's path prefix starts and ends with /: {path_prefix!r}")
    _SECRET_LINKS[path_prefix] = purpose
    _pattern.cache_clear()


def secret_link_prefixes() -> dict[str, str]:
    """The declared prefixes and what their links are for."""
    return dict(_SECRET_LINKS)


@functools.cache
def _pattern() -> re.Pattern[str] | None:
    if not _SECRET_LINKS:
        return None
    prefixes = "|".join(
        re.escape(prefix) for prefix in sorted(_SECRET_LINKS, key=len, reverse=True)
    )
    return re.compile(f"{_URL_START}({prefixes}){_LINK_TAIL}")


def hide_secret_links(text: str) -> str:
    """`text` with every secret link replaced by a note of what it was for. iCalendar text
    comes back unfolded: a line folded at 75 octets may split a link anywhere."""
    pattern = _pattern()
    if pattern is None or not text:
        return text
    if _CALENDAR.match(text):
        text = _FOLD.sub("", text)
    return pattern.sub(lambda found: f"[link to {_SECRET_LINKS[found.group(1)]}: hidden]", text)
