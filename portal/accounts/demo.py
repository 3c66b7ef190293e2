"""The demo company: Acme, 30 people in 5 departments, one admin; created once, then kept.
Asked for more people (benchmarks: 10,000), it adds made-up colleagues after the 30."""

from __future__ import annotations

import string
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select
from sqlmodel import col

from portal.accounts.models import ADMIN, MEMBER, Company, User
from portal.accounts.passwords import hash_password
from portal.db import UNSCOPED, Database
from portal.settings import Settings

DEMO_SLUG = "acme"
DEMO_PASSWORD = "acme-demo-portal"  # noqa: S105  (printed by `make run`; a demo on 127.0.0.1)
DOMAIN = "acme.example"

# (name, title, department, time zone); the first is the admin.
PEOPLE = [
    ("Ada Lovelace", "Head of Operations", "Operations", "Europe/London"),
    ("Grace Hopper", "VP Engineering", "Engineering", "America/New_York"),
    ("Alan Turing", "Principal Engineer", "Engineering", "Europe/London"),
    ("Katherine Johnson", "Staff Engineer", "Engineering", "America/Chicago"),
    ("Linus Berg", "Backend Engineer", "Engineering", "Europe/Stockholm"),
    ("Mei Tanaka", "Frontend Engineer", "Engineering", "Asia/Tokyo"),
    ("Ravi Iyer", "Site Reliability Engineer", "Engineering", "Asia/Kolkata"),
    ("Sofia Rossi", "QA Engineer", "Engineering", "Europe/Rome"),
    ("Omar Haddad", "Engineering Manager", "Engineering", "Asia/Dubai"),
    ("Chloé Martin", "Head of Sales", "Sales", "Europe/Paris"),
    ("Diego Fernández", "Account Executive", "Sales", "America/Mexico_City"),
    ("Hannah Schmidt", "Account Executive", "Sales", "Europe/Berlin"),
    ("Jamal Carter", "Sales Engineer", "Sales", "America/Los_Angeles"),
    ("Priya Nair", "Sales Development Rep", "Sales", "Asia/Singapore"),
    ("Tom O'Brien", "Customer Success Manager", "Sales", "Europe/Dublin"),
    ("Lucía Gómez", "Marketing Director", "Marketing", "Europe/Madrid"),
    ("Noah Williams", "Content Lead", "Marketing", "America/Denver"),
    ("Amara Okafor", "Designer", "Marketing", "Africa/Lagos"),
    ("Ethan Clarke", "Growth Marketer", "Marketing", "Australia/Sydney"),
    ("Ingrid Larsen", "Events Manager", "Marketing", "Europe/Oslo"),
    ("Wei Zhang", "Product Manager", "Product", "Asia/Shanghai"),
    ("Fatima Zahra", "Product Manager", "Product", "Africa/Casablanca"),
    ("Lukas Novak", "UX Researcher", "Product", "Europe/Prague"),
    ("Isabela Costa", "Product Designer", "Product", "America/Sao_Paulo"),
    ("Kenji Watanabe", "Product Analyst", "Product", "Asia/Tokyo"),
    ("Olivia Brown", "Finance Manager", "Operations", "America/Toronto"),
    ("Mateo Silva", "IT Administrator", "Operations", "America/Bogota"),
    ("Zoe Papadopoulos", "People Partner", "Operations", "Europe/Athens"),
    ("Samuel Mensah", "Office Manager", "Operations", "Africa/Accra"),
    ("Nora Kowalski", "Legal Counsel", "Operations", "Europe/Warsaw"),
]


# For the made-up colleagues: 40 x 26 x 40 distinct names before any repeats.
# fmt: off
FIRST_NAMES = (
    "Aiko", "Ben", "Carla", "Dev", "Elif", "Finn", "Gita", "Hugo", "Ines", "Jon", "Kofi", "Lena",
    "Marta", "Nils", "Olu", "Pia", "Quinn", "Rosa", "Sami", "Tara", "Umar", "Vera", "Wen", "Xavi",
    "Yara", "Zane", "Anya", "Bruno", "Chen", "Dara", "Emil", "Farah", "Goran", "Hana", "Ivo",
    "Jana", "Kai", "Luca", "Maya", "Noor",
)
LAST_NAMES = (
    "Abe", "Bauer", "Costa", "Dubois", "Eriksen", "Fischer", "Garcia", "Horvat", "Ito", "Jensen",
    "Kim", "Lopez", "Moreau", "Nakamura", "Olsen", "Petrov", "Quispe", "Reyes", "Sato", "Torres",
    "Umeh", "Varga", "Weber", "Xu", "Yilmaz", "Zhou", "Adeyemi", "Brandt", "Castro", "Dalton",
    "Evans", "Fontaine", "Gupta", "Hale", "Ivanova", "Jovanovic", "Keller", "Lund", "Mendes",
    "Novak",
)
# fmt: on


def _made_up_people(count: int) -> Iterator[tuple[str, str, str, str]]:
    """`count` more (name, title, department, zone), in the same departments and zones; every
    first and last name is about as common as the others."""
    shapes = [(title, department, zone) for _, title, department, zone in PEOPLE]
    for number in range(count):
        first = FIRST_NAMES[number % len(FIRST_NAMES)]
        last = LAST_NAMES[number // len(FIRST_NAMES) % len(LAST_NAMES)]
        initial = string.ascii_uppercase[number // (len(FIRST_NAMES) * len(LAST_NAMES)) % 26]
        yield (f"{first} {initial}. {last}", *shapes[number % len(shapes)])


@dataclass(frozen=True)
class DemoCompany:
    company: Company
    admin_email: str
    created: bool


def demo_email(name: str) -> str:
    ascii_name = name.lower().replace("'", "").translate(str.maketrans("éíóúáç", "eiouac"))
    return ".".join(ascii_name.split()) + f"@{DOMAIN}"


async def ensure_demo_company(
    db: Database, settings: Settings, *, people: int = len(PEOPLE)
) -> DemoCompany:
    """Create Acme and its people (at least the 30 named ones) unless Acme exists; existing
    data is never changed."""
    admin_email = demo_email(PEOPLE[0][0])
    async with db.session(company_id=UNSCOPED, write=True) as session:
        company = (
            await session.execute(select(Company).where(col(Company.slug) == DEMO_SLUG))
        ).scalar_one_or_none()
        if company is not None:
            return DemoCompany(company, admin_email, created=False)
        company = Company(name="Acme", slug=DEMO_SLUG, default_time_zone="Europe/London")
        session.add(company)
        await session.flush()
        # One hash for everyone: 30 Argon2 hashes would slow the first `make run` for nothing.
        password_hash = await hash_password(settings.password_hasher, DEMO_PASSWORD)
        for index, (name, title, department, zone) in enumerate(PEOPLE):
            session.add(
                User(
                    company_id=company.id or 0,
                    email=demo_email(name),
                    display_name=name,
                    title=title,
                    department=department,
                    phone=f"+1 415 555 {100 + index:04d}",
                    time_zone=zone,
                    role=ADMIN if index == 0 else MEMBER,
                    password_hash=password_hash,
                )
            )
        extra = [
            _made_up_row(company.id or 0, number, person, password_hash)
            for number, person in enumerate(_made_up_people(people - len(PEOPLE)), start=1)
        ]
        if extra:
            # One multi-row INSERT: 10,000 ORM objects would take the unit of work seconds.
            await session.execute(insert(User), extra)
        await session.commit()
    return DemoCompany(company, admin_email, created=True)


def _made_up_row(
    company_id: int, number: int, person: tuple[str, str, str, str], password_hash: str
) -> dict[str, Any]:
    name, title, department, zone = person
    first, _, last = name.split()
    return {
        "company_id": company_id,
        # numbered: names repeat after 41,600 people, addresses never do
        "email": f"{first.lower()}.{last.lower()}.{number}@{DOMAIN}",
        "display_name": name,
        "title": title,
        "department": department,
        "phone": f"+1 415 556 {number:04d}",
        "time_zone": zone,
        "role": MEMBER,
        "password_hash": password_hash,
    }
