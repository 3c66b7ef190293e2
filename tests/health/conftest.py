"""The probes' tests run in-process jobs unless they say otherwise (the suite's PostgreSQL
database has no procrastinate tables; test_views builds one that has for worker mode)."""

from __future__ import annotations

import dataclasses

import pytest

from portal.settings import Settings


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return dataclasses.replace(settings, jobs="in-process")
