"""Jitsi rooms: one per person, stable, and not guessable from the person's id."""

from __future__ import annotations

import dataclasses

from starlette.datastructures import Secret

from portal.accounts.models import User
from portal.conferencing.rooms import jitsi_room_url
from portal.settings import Settings


def test_each_person_has_a_stable_room_of_their_own(settings: Settings) -> None:
    ada = User(id=1, company_id=1, email="ada@acme.example", display_name="Ada")
    bob = User(id=2, company_id=1, email="bob@acme.example", display_name="Bob")
    room = jitsi_room_url(settings, ada)
    assert room.startswith(f"{settings.jitsi_url}/portal-") and len(room.rsplit("-", 1)[1]) == 26
    assert jitsi_room_url(settings, ada) == room != jitsi_room_url(settings, bob)
    same_id_elsewhere = User(id=1, company_id=2, email="x@globex.example", display_name="X")
    assert jitsi_room_url(settings, same_id_elsewhere) != room
    other_key = dataclasses.replace(settings, secret_key=Secret("another-secret-key-" * 3))
    assert jitsi_room_url(other_key, ada) != room
