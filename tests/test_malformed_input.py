"""No malformed input answers 500: each reported case, then a walk of every route with
hypothesis-drawn nonsense, signed in as a member and as an admin, on both databases."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, example, given
from hypothesis import settings as examples
from hypothesis import strategies as st
from sqlalchemy import select
from starlette.exceptions import HTTPException
from starlette.requests import Request

from portal import features
from portal.accounts.models import Company, User
from portal.accounts.tokens import make_set_password_token
from portal.app import named_routes
from portal.calendar.models import ACCEPTED, CalendarEvent, CalendarFeed, EventParticipant
from portal.calendar.replies import reply_token
from portal.db import UNSCOPED, Database, metadata
from portal.directory.search import search_people
from portal.mail.models import OutboxMessage
from portal.meetings.models import MeetingInvitee
from portal.notifications.models import Notification
from portal.pagination import MAX_PAGE, page_number
from portal.settings import Settings
from portal.web import form_data
from tests.conftest import PASSWORD, PortalClient, make_company, make_user

HUGE = "99999999999999999999"


async def snapshot(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table: what a refused request must leave as it was."""
    rows = {}
    async with db.session(company_id=UNSCOPED) as session:
        for table in metadata.sorted_tables:
            result = await session.execute(select(table))
            rows[table.name] = sorted(map(tuple, result.all()), key=repr)
    return rows


def _but_throttles(rows: dict[str, list[tuple[Any, ...]]]) -> dict[str, list[tuple[Any, ...]]]:
    """All but the sign-in throttles, which count refused attempts on purpose."""
    return {name: table for name, table in rows.items() if not name.endswith("throttle")}


@pytest.fixture
async def member_client(client: PortalClient, member: User) -> PortalClient:
    await client.sign_in(member.email)
    return client


# --- Each case of the issue, as it was reported -------------------------------------------


async def test_meet_now_with_a_malformed_person_opens_an_empty_form(
    member_client: PortalClient,
) -> None:
    for value in ("²", HUGE, "\u0663", "-1", ""):
        response = await member_client.get("/meetings/now", params={"with": value})
        assert response.status_code == 200, value
        assert 'name="invitee" value=' not in response.text


async def test_sign_in_with_a_malformed_company_is_not_an_error(
    client: PortalClient, member: User, db: Database
) -> None:
    before = await snapshot(db)
    for value in ("²", HUGE, "x"):
        response = await client.post(
            "/signin", {"email": member.email, "password": "wrong " + PASSWORD, "company_id": value}
        )
        assert response.status_code == 400, value
    # A wrong password is counted (the throttles), and nothing else changes.
    after = await snapshot(db)
    assert _but_throttles(after) == _but_throttles(before)


async def test_meet_now_with_a_malformed_invitee_starts_nothing(
    member_client: PortalClient, db: Database, admin: User
) -> None:
    before = await snapshot(db)
    for value in ("²", HUGE):
        response = await member_client.post(
            "/meetings/start", {"invitee": [str(admin.id), value], "request_key": "key-123456"}
        )
        assert response.status_code in (404, 422), value
    assert await snapshot(db) == before


@pytest.mark.parametrize(
    "path", ["/people", "/meetings", "/notifications", "/setup/users", "/setup/outbox"]
)
async def test_a_page_far_past_the_end_shows_the_last_one(
    admin_client: PortalClient, path: str
) -> None:
    for value in (HUGE, str(2**63), "1" * 400, "²", "\u0663", "-5", "1_0"):
        response = await admin_client.get(path, params={"page": value})
        assert response.status_code == 200, (path, value)


def test_page_numbers_are_ascii_digits_within_bounds() -> None:
    assert page_number(None) == 1
    assert page_number("3") == 3
    assert page_number(" 3") == 1
    assert page_number("\u0663") == 1
    assert page_number("1_0") == 1
    assert page_number("0") == 1
    assert page_number(HUGE) == MAX_PAGE


async def test_searching_people_far_past_the_end_gives_the_last_page(
    db: Database, acme: Company, member: User
) -> None:
    async with db.session(company_id=acme.id) as session:
        page = await search_people(session, "", page=10**20)
        other = await search_people(session, "bob", page=10**20)
    assert page.number == 1 and [p.email for p in page.items] == [member.email]
    assert other.number == 1 and other.total == 1


async def test_nul_in_a_form_field_is_refused_and_changes_nothing(
    admin_client: PortalClient, db: Database
) -> None:
    before = await snapshot(db)
    person = {"display_name": "Nul\x00l", "email": "nul@acme.example", "time_zone": "UTC"}
    plain = await admin_client.post("/setup/users/new", person)
    token = await admin_client.csrf()
    htmx = await admin_client.http.post(
        "/setup/users/new", data=person, headers={"X-CSRF-Token": token, "HX-Request": "true"}
    )
    signin = await admin_client.post("/signin", {"email": "ada\x00@acme.example", "password": "x"})
    for response in (plain, htmx, signin):
        assert response.status_code == 400
        assert "NUL" in response.text
    assert await snapshot(db) == before


async def test_nul_in_the_address_is_refused_but_dropped_from_search_text(
    admin_client: PortalClient,
) -> None:
    refused = ("/people?page=1%00", "/meetings/now?with=%00", "/signin?next=/%00", "/join/a%00b")
    for path in refused:
        response = await admin_client.get(path)
        assert response.status_code == 400, path
        assert "NUL" in response.text
    for path in ("/people?q=b%00ob", "/people?q=bob&department=Sa%00les", "/setup/users?q=%00"):
        assert (await admin_client.get(path)).status_code == 200, path


# --- The walk: every route, every field, nonsense from hypothesis ---------------------------

# What each route reads: query parameters on GET, form fields on POST. A route missing here
# fails test_every_route_is_walked, so a new route is walked from its first day.
QUERY_FIELDS: dict[str, tuple[str, ...]] = {
    "accounts.sign_in": ("next",),
    "accounts.forgot_password": (),
    "accounts.set_password": (),
    "accounts.profile": (),
    "home": (),
    "directory.people": ("q", "department", "page"),
    "directory.suggestions": ("q",),
    "directory.profile": (),
    "directory.card": (),
    "meetings.history": ("page",),
    "meetings.new": ("with",),
    "meetings.people_options": ("q", "invitee", "invitee"),
    "meetings.join": (),
    "notifications.list": ("page",),
    "notifications.menu": (),
    "setup.home": (),
    "setup.users": ("q", "status", "page"),
    "setup.user_new": (),
    "setup.users_import": (),
    "setup.user_edit": (),
    "setup.outbox": ("status", "page"),
    "setup.outbox_message": (),
    "setup.outbox_message_html": (),
    "setup.conferencing": ("provider",),
    "setup.conferencing_provider": ("provider",),
    "setup.conferencing_connection": ("show", "q", "page"),
    "setup.conferencing_disconnect": (),
    "setup.conferencing_history": ("page",),
    "setup.conferencing_run": (),
    "setup.conferencing_map": ("q", "page"),
    "setup.conferencing_members": ("q", "find", "page"),
    "conferencing.authorize": ("next",),
    "conferencing.authorized": ("state", "code", "error"),
    "accounts.conferencing": ("next",),
    "accounts.conferencing_status": (),
    "health.live": (),
    "calendar.home": ("view", "date"),
    "calendar.new": ("date", "with"),
    "calendar.availability": ("date", "time_zone", "participant", "participant"),
    "calendar.event": ("occurrence",),
    "calendar.edit": ("occurrence", "scope"),
    "calendar.reply_link": (),
    "calendar.start": ("occurrence",),
    "calendar.join": (),
    "calendar.feed_settings": (),
    "calendar.feed": (),
}
PERSON_FIELDS = ("display_name", "email", "title", "department", "phone", "time_zone", "role")
FORM_FIELDS: dict[str, tuple[str, ...]] = {
    "accounts.sign_in": ("email", "password", "company_id", "next"),
    "accounts.sign_out": (),
    "accounts.forgot_password": ("email",),
    "accounts.set_password": ("new_password", "confirm_password"),
    "accounts.profile": PERSON_FIELDS,
    "accounts.change_password": ("current_password", "new_password", "confirm_password"),
    "meetings.start": ("invitee", "invitee", "emails", "message", "request_key", "one_click"),
    "notifications.read_all": (),
    "notifications.open": (),
    "setup.user_new": PERSON_FIELDS,
    "setup.users_import": ("file",),
    "setup.user_edit": PERSON_FIELDS,
    "setup.user_deactivate": (),
    "setup.user_reactivate": (),
    "setup.user_resend": (),
    "setup.outbox_retry": (),
    "setup.conferencing_connect": (
        "provider",
        "name",
        "account_id",
        "client_id",
        "client_secret",
        "api_key",
        "product",
    ),
    "setup.conferencing_sitewide": (
        "auto_create",
        "join_before_host",
        "allow_jitsi_fallback",
        "require_account",
    ),
    "setup.conferencing_credentials": ("account_id", "client_id", "client_secret"),
    "setup.conferencing_settings": (
        "name",
        "serves",
        "departments",
        "auto_create",
        "provisioning",
        "join_before_host",
        "sync_hour",
    ),
    "setup.conferencing_disconnect": (),
    "setup.conferencing_sync": (),
    "setup.conferencing_map": ("user_id",),
    "setup.conferencing_unmap": (),
    "setup.conferencing_clear_manual": (),
    "setup.conferencing_member_add": ("email", "user_id"),
    "setup.conferencing_member_remove": (),
    "accounts.conferencing_default": ("default",),
    "accounts.conferencing_password": ("username", "password"),
    "accounts.conferencing_forget": (),
    "accounts.conferencing_reassociate": (),
    "calendar.create": (
        "title",
        "start_date",
        "start_time",
        "end_time",
        "time_zone",
        "invitee",
        "emails",
        "repeat",
    ),
    "calendar.update": (
        "occurrence",
        "scope",
        "start_date",
        "start_time",
        "end_time",
        "time_zone",
        "invitee",
    ),
    "calendar.cancel": ("occurrence",),
    "calendar.reply": ("answer", "occurrence"),
    "calendar.reply_link_answer": ("answer",),
    "calendar.feed_reset": (),
}
# The live stream never ends; it reads nothing from the request but the session. The readiness
# probe reads nothing from the request and answers 503, rightly, on the PostgreSQL pass, whose
# database has no procrastinate worker (tests/health covers it).
NOT_WALKED = {("GET", "notifications.stream"), ("GET", "health.ready")}
# After these, the walker may be signed out (or signed in as someone else): sign in again.
RESIGN = {"accounts.sign_out", "accounts.change_password", "accounts.set_password"}

UNICODE_DIGITS = "²³¹٠١٢٣٤٥٦٧٨٩०१२३४५६७८९০১২৩０１２３４５６７８９߀𝟎𝟏𝟗"


def _walk() -> list[tuple[str, str, str]]:
    """(method, route name, path template) for every route of the app, mounts' routes too."""
    walked = []
    for prefix, route in named_routes(features.routes()):
        for method in ("GET", "POST"):
            if method in (getattr(route, "methods", None) or ()):
                walked.append((method, route.name, prefix + route.path))
    return walked


WALK = _walk()


def test_every_route_is_walked() -> None:
    for method, name, _ in WALK:
        fields = QUERY_FIELDS if method == "GET" else FORM_FIELDS
        assert name in fields or (method, name) in NOT_WALKED, f"{method} {name}: list its fields"


@dataclass
class World:
    """The signed-in walker and the real values a request may carry among the nonsense."""

    client: PortalClient
    viewer_id: int
    path_ids: dict[str, list[str]]
    plausible: list[str]


@pytest.fixture(params=["member", "admin"])
async def world(
    request: pytest.FixtureRequest,
    client: PortalClient,
    new_client: Any,
    db: Database,
    settings: Settings,
    acme: Company,
    admin: User,
    member: User,
) -> World:
    """Acme with a meeting (notices, emails, join links), and Globex, whose ids are nobody's."""
    globex = await make_company(db, "Globex")
    outsider = await make_user(db, globex, "otto@globex.example")
    host: PortalClient = new_client()
    await host.sign_in(admin.email)
    started = await host.post(
        "/meetings/start",
        {"invitee": str(member.id), "emails": "guest@example.org", "request_key": "walk-1234"},
    )
    assert started.status_code == 200, started.text
    scheduled = await host.post(
        "/calendar/events",
        {
            "title": "Walk review",
            "start_date": "2030-01-07",
            "start_time": "09:00",
            "end_time": "10:00",
            "time_zone": "Europe/Berlin",
            "invitee": str(member.id),
            "emails": "guest@example.org",
            "repeat": "weekly",
            "weekdays": "MO",
            "ends": "after",
            "count": "4",
            "uses_room": "on",
            "request_key": "walk-event-1234",
        },
    )
    assert scheduled.status_code == 303, scheduled.text
    assert (await host.get("/calendar/feed")).status_code == 200
    viewer = admin if request.param == "admin" else member
    await client.sign_in(viewer.email)
    async with db.session(company_id=UNSCOPED) as session:
        notices = (await session.execute(select(Notification.id))).scalars().all()
        messages = (await session.execute(select(OutboxMessage.id))).scalars().all()
        joins = (await session.execute(select(MeetingInvitee.join_token))).scalars().all()
        events = (await session.execute(select(CalendarEvent))).scalars().all()
        participants = (await session.execute(select(EventParticipant))).scalars().all()
        feeds = (await session.execute(select(CalendarFeed.token))).scalars().all()
    secret = str(settings.secret_key)
    tokens = [
        *joins,
        *(make_set_password_token(secret, user) for user in (admin, member)),
        *(participant.join_token for participant in participants),
        *(reply_token(settings, participant, events[0], ACCEPTED) for participant in participants),
        *feeds,
    ]
    users = [str(user.id) for user in (admin, member, outsider)]
    return World(
        client=client,
        viewer_id=viewer.id or 0,
        path_ids={
            "user_id": users,
            "notification_id": [str(number) for number in notices],
            "message_id": [str(number) for number in messages],
            "token": tokens,
            "event_id": [str(event.id) for event in events],
            # No conferencing connection here: its ids are nobody's (tests/conferencing/
            # test_setup_people.py walks Company Setup's conferencing routes with connections).
            "connection_id": [],
            "account_id": [],
            "run_id": [],
        },
        plausible=[
            *users,
            admin.email,
            member.email,
            "UTC",
            "Europe/Paris",
            "/people",
            "//evil.example",
            "sent",
            "failed",
            "inactive",
        ],
    )


@dataclass(frozen=True)
class Real:
    """A real value of the world (an id of the viewer's company, a token, an email) in a slot:
    the world's `index`-th, since the examples are drawn before the world is made."""

    index: int


Value = str | Real
# Values drawn per request: one a path id or field, in order; the person forms take the most.
SLOTS = 8
# Each class of malformed input in every slot at once, before the random examples: the walk
# never depends on chance to try the cases of the issue.
EVERY_SLOT: list[Value] = [
    "²",
    "\u0663",
    HUGE,
    str(2**63),
    "",
    "9" * 5000,
    "a\x00b",
    Real(0),
    Real(1),
]


def nonsense() -> st.SearchStrategy[Value]:
    """What a field may be sent: any text, unicode digits, huge numbers, empty, overlong, NUL,
    and now and then a real value, to get past the first check."""
    return st.one_of(
        st.text(max_size=30),
        st.text(alphabet=UNICODE_DIGITS + "0123456789", min_size=1, max_size=12),
        st.integers(min_value=-(10**30), max_value=10**30).map(str),
        st.sampled_from(["", " ", "0", "-1", str(2**31), str(2**63), "1e9", "0x1f", "1_0"]),
        st.integers(min_value=200, max_value=6000).map(lambda n: "9" * n),
        st.integers(min_value=200, max_value=6000).map(lambda n: "é" * n),
        st.text(max_size=5).map(lambda text: f"{text}\x00{text}"),
        st.builds(Real, st.integers(min_value=0, max_value=20)),
    )


def upload() -> st.SearchStrategy[bytes]:
    """A CSV file's bytes: nonsense, or a header and a row of nonsense."""
    row = st.lists(st.text(max_size=20), min_size=1, max_size=4).map(",".join)
    return st.one_of(
        st.binary(max_size=300),
        st.sampled_from([b"", b"\xef\xbb\xbf", b"\xef\xbb\xbf\n", b"name,email\n"]),
        row.map(lambda text: ("name,email,admin\n" + text + "\n").encode()),
        row.map(lambda text: ("\ufeffName,Email\n" + text).encode("utf-16")),
    )


def _text(value: Value, real: list[str]) -> str:
    if isinstance(value, Real):
        return real[value.index % len(real)] if real else "1"
    return value


def _every_slot(test: Any) -> Any:
    for value in reversed(EVERY_SLOT):
        test = example(values=[value] * SLOTS, htmx=False, file_as_text=False, csv=b"\xef\xbb\xbf")(
            test
        )
    return test


@pytest.mark.parametrize(("method", "name", "template"), WALK, ids=[f"{m} {n}" for m, n, _ in WALK])
@examples(
    max_examples=8,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
@given(
    values=st.lists(nonsense(), min_size=SLOTS, max_size=SLOTS),
    htmx=st.booleans(),
    file_as_text=st.booleans(),
    csv=upload(),
)
@_every_slot
async def test_no_route_answers_500(
    world: World,
    db: Database,
    method: str,
    name: str,
    template: str,
    values: list[Value],
    htmx: bool,
    file_as_text: bool,
    csv: bytes,
) -> None:
    """Each route gets nonsense in its path ids, query parameters and form fields, plain and
    through htmx; it answers below 500, and a refused POST changes nothing.

    How: anyio's pytest plugin runs an async @given test's examples on the loop of its
    fixtures, so one world (database, app, signed-in client) serves every example of a route.
    The function-scoped-fixture health check is off for that reason, and the world is
    deliberately shared: what one example kept is the next one's ground. The examples are
    slots of values, not fields, so that each class of the issue can be given as an explicit
    @example for every route (EVERY_SLOT); then 8 drawn with a fixed seed (derandomize), the
    same on every run, keep the walk short.
    """
    if (method, name) in NOT_WALKED:
        return
    slots = iter(values)

    def fill(match: re.Match[str]) -> str:
        return quote(_text(next(slots), world.path_ids[match.group(1)]), safe="") or "x"

    path = re.sub(r"\{(\w+)\}", fill, template)
    headers = {"HX-Request": "true"} if htmx else {}
    client = world.client
    if method == "GET":
        params = [(field, _text(next(slots), world.plausible)) for field in QUERY_FIELDS[name]]
        response = await client.get(path, params=params, headers=headers)
        assert response.status_code < 500, (path, params, response.text[:300])
        return
    form: dict[str, list[str]] = {"csrf_token": [await client.csrf()]}
    files = {}
    for field in FORM_FIELDS[name]:
        value = _text(next(slots), world.plausible)
        if field == "file" and not file_as_text:
            files["file"] = ("people.csv", csv, "text/csv")
        else:
            form.setdefault(field, []).append(value)
    before = await snapshot(db)
    response = await client.http.post(path, data=form, files=files or None, headers=headers)
    assert response.status_code < 500, (path, form, response.text[:300])
    if response.status_code >= 400:
        after = _but_throttles(await snapshot(db))
        changed = [table for table, rows in after.items() if rows != before[table]]
        assert not changed, (path, form, response.status_code, changed)
    if name in RESIGN and response.status_code == 303:
        await _sign_in_again(world, db)


async def _sign_in_again(world: World, db: Database) -> None:
    async with db.session(company_id=UNSCOPED) as session:
        email = (
            await session.execute(select(User.email).where(User.id == world.viewer_id))
        ).scalar_one()
    world.client.http.cookies.clear()
    world.client._token = None
    await world.client.sign_in(email)


@examples(
    max_examples=40,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    content_type=st.sampled_from(
        [
            "multipart/form-data",
            "multipart/form-data; boundary=b",
            'multipart/form-data; boundary="b"; charset=no-such-charset',
            "application/x-www-form-urlencoded",
            "application/x-www-form-urlencoded; charset=utf-16",
        ]
    ),
    body=st.one_of(
        st.binary(max_size=400),
        st.lists(
            st.one_of(
                st.sampled_from(
                    [
                        b"--b\r\n",
                        b"--b--\r\n",
                        b"Content-Disposition: form-data\r\n",
                        b'Content-Disposition: form-data; name="display_name"\r\n',
                        b'Content-Disposition: form-data; name="file"; filename="a.csv"\r\n',
                        b"Content-Type: text/csv\r\n",
                        b"\r\n",
                        b"=&%%%00+",
                    ]
                ),
                st.binary(max_size=20),
            ),
            max_size=12,
        ).map(b"".join),
    ),
    in_header=st.booleans(),
)
async def test_no_form_body_answers_500(
    admin_client: PortalClient, db: Database, content_type: str, body: bytes, in_header: bool
) -> None:
    """A body that is not the form it says it is: the CSRF middleware reads it (the token in a
    field), or the view does (the token in the header); either way a 4xx, and nothing kept."""
    token = await admin_client.csrf()
    before = await snapshot(db)
    for path in ("/setup/users/import", "/setup/users/new"):
        headers = {"Content-Type": content_type}
        if in_header:
            headers["X-CSRF-Token"] = token
        response = await admin_client.http.post(path, content=body, headers=headers)
        assert response.status_code < 500, (path, body)
    assert _but_throttles(await snapshot(db)) == _but_throttles(before)


@pytest.mark.parametrize("in_app", [True, False])
async def test_a_view_that_meets_a_bad_form_answers_4xx(in_app: bool) -> None:
    """form_data without the middleware in front: Starlette's own error becomes a clear 4xx."""
    cases = [
        ("multipart/form-data", b"x", 400, "could not be read"),
        ("application/x-www-form-urlencoded", b"a=" + b"x" * (1536 * 1024), 413, "too long"),
        ("application/x-www-form-urlencoded", b"&".join([b"a=1"] * 1500), 413, "too many"),
        ("application/x-www-form-urlencoded", b"name=a%00b", 400, "NUL"),
    ]
    for content_type, body, status, message in cases:
        scope: dict[str, Any] = {
            "type": "http",
            "method": "POST",
            "path": "/",
            "headers": [(b"content-type", content_type.encode())],
        }
        if in_app:
            scope["app"] = object()

        async def receive(body: bytes = body) -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        with pytest.raises(HTTPException) as refused:
            await form_data(Request(scope, receive))
        assert refused.value.status_code == status
        assert message in refused.value.detail
