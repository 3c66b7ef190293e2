"""CSRF on every unsafe request (forms and htmx), cross-site refusals, headers and cookie flags."""

from __future__ import annotations

from sqlalchemy import select

from portal.accounts.models import Company, User
from portal.app import create_app
from portal.db import Database
from portal.settings import Settings
from tests.conftest import PASSWORD, PortalClient

PERSON = {
    "display_name": "Mallory",
    "email": "mallory@acme.example",
    "time_zone": "UTC",
    "role": "admin",
}


async def _emails(db: Database, company: Company) -> list[str]:
    async with db.session(company_id=company.id) as session:
        return sorted((await session.execute(select(User.email))).scalars())


async def test_missing_or_wrong_token_is_refused_and_changes_nothing(
    admin_client: PortalClient, db: Database, acme: Company
) -> None:
    missing = await admin_client.http.post("/setup/users/new", data=PERSON)
    wrong = await admin_client.http.post(
        "/setup/users/new", data={**PERSON, "csrf_token": "0" * 64}
    )
    for response in (missing, wrong):
        assert response.status_code == 403
        assert "This form has expired or did not come from the portal." in response.text
    assert await _emails(db, acme) == ["ada@acme.example"]


async def test_htmx_requests_carry_the_token_in_a_header(
    admin_client: PortalClient, db: Database, acme: Company
) -> None:
    page = await admin_client.get("/people")
    assert 'hx-headers=\'{"X-CSRF-Token": "' in page.text
    token = await admin_client.csrf()
    response = await admin_client.http.post(
        "/setup/users/new", data=PERSON, headers={"X-CSRF-Token": token, "HX-Request": "true"}
    )
    assert response.status_code == 303
    assert "mallory@acme.example" in await _emails(db, acme)


async def test_a_token_from_another_session_does_not_work(
    admin_client: PortalClient, new_client, member: User, db: Database, acme: Company
) -> None:
    attacker = new_client()
    await attacker.sign_in(member.email)
    foreign = await attacker.csrf()
    response = await admin_client.http.post(
        "/setup/users/new", data={**PERSON, "csrf_token": foreign}
    )
    assert response.status_code == 403
    assert "mallory@acme.example" not in await _emails(db, acme)


async def test_cross_site_requests_are_refused_even_with_a_token(
    admin_client: PortalClient,
) -> None:
    token = await admin_client.csrf()
    for headers in ({"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
        response = await admin_client.http.post(
            "/setup/users/new", data={**PERSON, "csrf_token": token}, headers=headers
        )
        assert response.status_code == 403
        assert "other sites" in response.text
    same = await admin_client.http.post(
        "/setup/users/new",
        data={**PERSON, "csrf_token": token},
        headers={"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"},
    )
    assert same.status_code == 303


async def test_sign_in_itself_needs_the_token(client: PortalClient, member: User) -> None:
    response = await client.http.post("/signin", data={"email": member.email, "password": PASSWORD})
    assert response.status_code == 403


async def test_security_headers_and_cookie_flags(client: PortalClient) -> None:
    response = await client.get("/signin")
    csp = response.headers["content-security-policy"]
    assert (
        "default-src 'self'" in csp
        and "frame-ancestors 'none'" in csp
        and "object-src 'none'" in csp
    )
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "same-origin"
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "secure" not in cookie


async def test_cookie_is_secure_behind_https(settings: Settings, db: Database) -> None:
    import dataclasses

    import httpx

    app = create_app(dataclasses.replace(settings, base_url="https://portal.example"))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://portal.example") as http:
        response = await http.get("/signin")
    await app.state.db.dispose()
    assert "secure" in response.headers["set-cookie"].lower()
    assert "strict-transport-security" in response.headers


async def test_unknown_pages_and_bad_ids_are_404_not_500(admin_client: PortalClient) -> None:
    for path in ("/nope", "/setup/users/abc", "/setup/users/99999999999999999999"):
        response = await admin_client.get(path)
        assert response.status_code == 404, path
        assert "does not exist" in response.text or "No such person" in response.text


async def test_oversized_upload_is_refused_with_a_message(admin_client: PortalClient) -> None:
    token = await admin_client.csrf()
    response = await admin_client.http.post(
        "/setup/users/import",
        data={"csrf_token": token},
        files={"file": ("big.csv", b"x" * (5 * 1024 * 1024), "text/csv")},
    )
    assert response.status_code == 413 and "too large" in response.text


async def _people_count(db: Database, company: Company) -> int:
    return len(await _emails(db, company))


async def test_a_field_over_a_megabyte_is_refused_with_a_message(
    admin_client: PortalClient, db: Database, acme: Company
) -> None:
    token = await admin_client.csrf()
    big = {**PERSON, "display_name": "x" * (1536 * 1024)}
    in_form = await admin_client.http.post("/setup/users/new", data={**big, "csrf_token": token})
    in_header = await admin_client.http.post(
        "/setup/users/new", data=big, headers={"X-CSRF-Token": token}
    )
    for response in (in_form, in_header):
        assert response.status_code == 413
        assert "A field of this form is too long" in response.text
    assert await _people_count(db, acme) == 1


async def test_too_many_fields_are_refused_with_a_message(
    admin_client: PortalClient, db: Database, acme: Company
) -> None:
    token = await admin_client.csrf()
    fields = [(f"field{number}", "x") for number in range(1500)]
    in_form = {"csrf_token": token, **PERSON, **dict(fields)}
    in_header = {**PERSON, **dict(fields)}
    for form, headers in ((in_form, {}), (in_header, {"X-CSRF-Token": token})):
        response = await admin_client.http.post("/setup/users/new", data=form, headers=headers)
        assert response.status_code == 413
        assert "too many fields" in response.text
    assert await _people_count(db, acme) == 1


async def test_a_multipart_body_without_a_usable_boundary_is_a_bad_request(
    admin_client: PortalClient, db: Database, acme: Company
) -> None:
    token = await admin_client.csrf()
    garbage = b"--zzz\r\nnot a part at all\r\n\r\n\x00\xff--zzz--"
    for content_type in (
        "multipart/form-data",
        "multipart/form-data; boundary=",
        "multipart/form-data; boundary=zzz",
        "multipart/form-data; boundary=other",
    ):
        for headers in ({}, {"X-CSRF-Token": token}):
            response = await admin_client.http.post(
                "/setup/users/import",
                content=garbage,
                headers={"Content-Type": content_type, **headers},
            )
            assert response.status_code in (400, 403), (content_type, headers)
            if headers:
                assert response.status_code == 400
                assert "could not be read" in response.text, content_type
    assert await _people_count(db, acme) == 1


async def test_a_multipart_field_without_a_name_is_a_bad_request(
    admin_client: PortalClient,
) -> None:
    token = await admin_client.csrf()
    body = (
        b"--b\r\nContent-Disposition: form-data\r\n\r\nx\r\n"
        b'--b\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\n'
        + token.encode()
        + b"\r\n--b--\r\n"
    )
    response = await admin_client.http.post(
        "/setup/users/import",
        content=body,
        headers={"Content-Type": "multipart/form-data; boundary=b"},
    )
    assert response.status_code == 400
    assert "could not be read" in response.text
