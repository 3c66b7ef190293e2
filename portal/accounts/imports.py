"""Importing people from a CSV file: every row is taken whole or refused with a reason."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from portal.accounts.forms import clean_person
from portal.accounts.models import ADMIN, MEMBER, Company, User
from portal.accounts.services import DUPLICATE_EMAIL, queue_password_email
from portal.settings import Settings

MAX_BYTES = 2 * 1024 * 1024
MAX_ROWS = 2000

# Header as people write it -> the field it fills.
COLUMNS = {
    "name": "display_name",
    "full name": "display_name",
    "display name": "display_name",
    "email": "email",
    "e-mail": "email",
    "email address": "email",
    "title": "title",
    "job title": "title",
    "department": "department",
    "phone": "phone",
    "phone number": "phone",
    "time zone": "time_zone",
    "timezone": "time_zone",
    "admin": "admin",
}
REQUIRED = ("display_name", "email")
YES = {"yes", "y", "true", "1", "admin"}
NO = {"", "no", "n", "false", "0", "member"}


class ImportRefused(ValueError):
    """The file as a whole can't be read; str() says why. Nothing was imported."""


@dataclass(frozen=True)
class RefusedRow:
    line: int
    email: str
    reasons: list[str]


@dataclass
class ImportReport:
    taken: list[User] = field(default_factory=list)
    refused: list[RefusedRow] = field(default_factory=list)


def _header_map(header: list[str]) -> dict[int, str]:
    mapping: dict[int, str] = {}
    unknown = []
    for index, raw in enumerate(header):
        key = " ".join(raw.strip().lower().replace("_", " ").split())
        if key in COLUMNS:
            mapping[index] = COLUMNS[key]
        elif key:
            unknown.append(raw.strip())
    if unknown:
        raise ImportRefused(
            f"Unknown column{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}. "
            "Use name, email, title, department, phone, time zone, admin."
        )
    missing = [name for name in REQUIRED if name not in mapping.values()]
    if missing:
        labels = ["name" if name == "display_name" else name for name in missing]
        raise ImportRefused(f"The file needs a column for {' and '.join(labels)}.")
    return mapping


def read_rows(data: bytes) -> list[tuple[int, dict[str, str]]]:
    """(line number, field -> text) for each non-empty row; ImportRefused for an unusable file."""
    if not data.strip():
        raise ImportRefused("The file is empty.")
    if len(data) > MAX_BYTES:
        raise ImportRefused("The file is larger than 2 MB; split it into smaller files.")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ImportRefused(
            "The file is not UTF-8 text. In your spreadsheet, save it as “CSV UTF-8” and try again."
        ) from error
    if not text.strip():  # a byte order mark and blank lines are still an empty file
        raise ImportRefused("The file is empty.")
    if "\x00" in text:
        raise ImportRefused(
            "The file holds NUL characters, which no text in the portal may hold: "
            "is it a CSV file? In your spreadsheet, save it as “CSV UTF-8” and try again."
        )
    try:
        lines = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as error:
        raise ImportRefused(f"The file is not a readable CSV file: {error}.") from error
    mapping = _header_map(lines[0])
    rows = []
    for line, values in enumerate(lines[1:], start=2):
        if not any(value.strip() for value in values):
            continue
        rows.append(
            (line, {name: values[i] if i < len(values) else "" for i, name in mapping.items()})
        )
    if not rows:
        raise ImportRefused("The file has a header but no people in it.")
    if len(rows) > MAX_ROWS:
        raise ImportRefused(
            f"The file has {len(rows)} people; import at most {MAX_ROWS} at a time."
        )
    return rows


async def import_people(
    session: AsyncSession, settings: Settings, company: Company, actor: User, data: bytes
) -> ImportReport:
    """Add every valid row and queue its set-password email, all in one transaction."""
    rows = read_rows(data)
    existing = set((await session.execute(select(col(User.email)))).scalars())
    seen: set[str] = set()
    report = ImportReport()
    for line, values in rows:
        admin = values.pop("admin", "").strip().lower()
        values["role"] = ADMIN if admin in YES else MEMBER
        person, errors = clean_person(values, default_tz=company.default_time_zone)
        reasons = list(errors.values())
        if admin not in YES | NO:
            reasons.append(f"Admin must be yes or no, not “{admin}”.")
        if person.email in existing:
            reasons.append(DUPLICATE_EMAIL)
        elif person.email in seen:
            reasons.append("This email address appears earlier in the file.")
        if reasons:
            report.refused.append(RefusedRow(line, values.get("email", "").strip(), reasons))
            continue
        seen.add(person.email)
        report.taken.append(User(company_id=company.id or 0, **vars(person)))
    if report.taken:
        try:
            # A savepoint: people added meanwhile by someone else refuse the file as a whole.
            async with session.begin_nested():
                session.add_all(report.taken)
                await session.flush()
        except IntegrityError as error:
            raise ImportRefused(
                "Someone added people while the file was being imported; nothing was imported. "
                "Upload the file again."
            ) from error
        for user in report.taken:
            queue_password_email(
                session, settings, company, user, template="set_password", actor=actor
            )
    return report
