"""CSV import: a report of rows taken and refused; a file that can't be read imports nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from portal.accounts.imports import ImportRefused, read_rows
from portal.accounts.models import Company, User
from portal.db import Database
from portal.mail.models import OutboxMessage
from tests.conftest import PortalClient


async def _upload(client: PortalClient, content: bytes, name: str = "people.csv"):
    token = await client.csrf()
    return await client.http.post(
        "/setup/users/import",
        data={"csrf_token": token},
        files={"file": (name, content, "text/csv")},
    )


async def _people(db: Database, company: Company) -> list[str]:
    async with db.session(company_id=company.id) as session:
        return sorted((await session.execute(select(User.email))).scalars())


GOOD = (
    "Name,Email,Title,Department,Phone,Time zone,Admin\n"
    "Dana Scully,dana@acme.example,Agent,Field,+1 202 555 0100,America/New_York,no\n"
    "Fox Mulder,FOX@acme.example,Agent,Field,,,yes\n"
)


async def test_import_adds_people_and_sends_each_a_link(
    admin_client: PortalClient, db: Database, acme: Company, admin: User
) -> None:
    response = await _upload(admin_client, GOOD.encode())
    assert response.status_code == 200
    assert "<strong>2</strong> people added; <strong>0</strong> rows refused." in response.text
    assert await _people(db, acme) == ["ada@acme.example", "dana@acme.example", "fox@acme.example"]
    async with db.session(company_id=acme.id) as session:
        fox = (
            await session.execute(select(User).where(User.email == "fox@acme.example"))
        ).scalar_one()
        mails = (
            await session.execute(select(func.count()).select_from(OutboxMessage))
        ).scalar_one()
    assert fox.is_admin and fox.time_zone == acme.default_time_zone
    assert mails == 2


async def test_bad_rows_are_refused_with_reasons_and_good_ones_taken(
    admin_client: PortalClient, db: Database, acme: Company, admin: User
) -> None:
    content = (
        "name,email,admin\n"
        "Good One,good@acme.example,\n"
        ",noname@acme.example,\n"
        "Bad Mail,not-an-email,\n"
        "Ada Again,ADA@acme.example,\n"
        "Twice,good@acme.example,\n"
        "Maybe,maybe@acme.example,perhaps\n"
        ",,\n"
    )
    response = await _upload(admin_client, content.encode())
    text = response.text.replace("&#34;", '"')
    assert "<strong>1</strong> person added; <strong>5</strong> rows refused." in text
    assert "Enter the name." in text
    assert "is not a valid email address" in text
    assert "already uses this email address" in text
    assert "appears earlier in the file" in text
    assert "Admin must be yes or no, not “perhaps”." in text
    assert await _people(db, acme) == ["ada@acme.example", "good@acme.example"]


async def test_unreadable_files_import_nothing(
    admin_client: PortalClient, db: Database, acme: Company, admin: User
) -> None:
    cases = [
        (b"Name,Email,Shoe size\nA,a@acme.example,42\n", "Unknown column: Shoe size"),
        (b"Title,Department\nX,Y\n", "needs a column for name and email"),
        ("name,email\nJosé,jose@acme.example\n".encode("latin-1"), "not UTF-8 text"),
        (b"", "The file is empty."),
        (b"\xef\xbb\xbf", "The file is empty."),
        (b"\xef\xbb\xbf\r\n \n", "The file is empty."),
        (b"name,email\nNul\x00Name,nul@acme.example\n", "NUL"),
        (b"name,email\n", "a header but no people"),
    ]
    for content, message in cases:
        response = await _upload(admin_client, content)
        assert response.status_code == 400
        assert message in response.text
        assert "Nothing was imported." in response.text
    assert await _people(db, acme) == ["ada@acme.example"]


async def test_members_cannot_import(
    client: PortalClient, member: User, db: Database, acme: Company
) -> None:
    await client.sign_in(member.email)
    response = await _upload(client, GOOD.encode())
    assert response.status_code == 403
    assert await _people(db, acme) == ["bob@acme.example"]


def test_a_file_of_only_a_byte_order_mark_is_empty() -> None:
    for content in (b"\xef\xbb\xbf", b"\xef\xbb\xbf\n\n"):
        with pytest.raises(ImportRefused, match="The file is empty"):
            read_rows(content)
