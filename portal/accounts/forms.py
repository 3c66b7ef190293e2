"""Validation of what people type about themselves and others; messages meant for the page."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from email_validator import EmailNotValidError, validate_email

from portal.accounts.models import ADMIN, EMAIL_MAX, MEMBER, NAME_MAX, PHONE_MAX
from portal.timezones import is_time_zone

PHONE_PATTERN = re.compile(r"^[0-9+()./\- ]*(?:(?:x|ext\.?)\s*[0-9]{1,6})?$", re.IGNORECASE)
CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")


class InvalidEmail(ValueError):
    """The text is not an email address; str() is the message for the page."""


def normalize_email(raw: str) -> str:
    """The stored form of an address: validated, lower-cased; InvalidEmail says what is wrong."""
    text = raw.strip()
    if not text:
        raise InvalidEmail("Enter an email address.")
    if len(text) > EMAIL_MAX:
        raise InvalidEmail(f"An email address can be at most {EMAIL_MAX} characters.")
    try:
        result = validate_email(text, check_deliverability=False)
    except EmailNotValidError as error:
        raise InvalidEmail(f"“{text}” is not a valid email address: {error}") from error
    return result.normalized.lower()


def _clean_text(
    value: str | None,
    label: str,
    errors: dict[str, str],
    field: str,
    *,
    required: bool = False,
    max_length: int = NAME_MAX,
) -> str:
    text = " ".join((value or "").split())
    if required and not text:
        errors[field] = f"Enter the {label}."
    elif len(text) > max_length:
        errors[field] = f"{label.capitalize()} can be at most {max_length} characters."
    elif CONTROL_CHARS.search(text):
        errors[field] = f"{label.capitalize()} contains characters that are not allowed."
    return text


@dataclass(frozen=True)
class ProfileInput:
    display_name: str
    title: str
    phone: str
    time_zone: str


@dataclass(frozen=True)
class PersonInput:
    display_name: str
    email: str
    title: str
    department: str
    phone: str
    time_zone: str
    role: str


def _clean_profile(
    data: Mapping[str, str], errors: dict[str, str], default_tz: str
) -> ProfileInput:
    name = _clean_text(data.get("display_name"), "name", errors, "display_name", required=True)
    title = _clean_text(data.get("title"), "title", errors, "title")
    phone = (data.get("phone") or "").strip()
    if len(phone) > PHONE_MAX:
        errors["phone"] = f"A phone number can be at most {PHONE_MAX} characters."
    elif not PHONE_PATTERN.match(phone):
        errors["phone"] = "Use digits, spaces and + ( ) - . only, e.g. +1 415 555 0100 ext 12."
    tz = (data.get("time_zone") or "").strip() or default_tz
    if not is_time_zone(tz):
        errors["time_zone"] = f"“{tz}” is not a time zone we know; pick one from the list."
    return ProfileInput(name, title, phone, tz)


def clean_profile(
    data: Mapping[str, str], *, default_tz: str
) -> tuple[ProfileInput, dict[str, str]]:
    """What a person may change about themselves; errors by field name."""
    errors: dict[str, str] = {}
    return _clean_profile(data, errors, default_tz), errors


def clean_person(data: Mapping[str, str], *, default_tz: str) -> tuple[PersonInput, dict[str, str]]:
    """A person as an admin adds them (form or CSV row); errors by field name."""
    errors: dict[str, str] = {}
    profile = _clean_profile(data, errors, default_tz)
    email = ""
    try:
        email = normalize_email(data.get("email") or "")
    except InvalidEmail as error:
        errors["email"] = str(error)
    department = _clean_text(data.get("department"), "department", errors, "department")
    role = (data.get("role") or MEMBER).strip().lower()
    if role not in (ADMIN, MEMBER):
        errors["role"] = "Choose admin or member."
    return (
        PersonInput(
            display_name=profile.display_name,
            email=email,
            title=profile.title,
            department=department,
            phone=profile.phone,
            time_zone=profile.time_zone,
            role=role,
        ),
        errors,
    )
