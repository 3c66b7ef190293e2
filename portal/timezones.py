"""Time zones: the ones a person can pick, looking one up, and a stored time as someone reads it."""

from __future__ import annotations

import datetime as dt
import functools
import zoneinfo

UTC = "UTC"


@functools.cache
def time_zones() -> tuple[str, ...]:
    """IANA zones a person can pick, without the legacy aliases (US/Eastern, Etc/GMT+5...)."""
    return (
        *sorted(
            zone
            for zone in zoneinfo.available_timezones()
            if "/" in zone and not zone.startswith(("Etc/", "SystemV/", "US/"))
        ),
        UTC,
    )


@functools.cache
def _time_zone_set() -> frozenset[str]:
    return frozenset(time_zones())


def is_time_zone(name: str) -> bool:
    return name in _time_zone_set()


@functools.lru_cache(maxsize=512)
def zone(name: str) -> zoneinfo.ZoneInfo:
    """The zone called `name`; UTC for one a later tzdata dropped, a known answer, not an error."""
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo(UTC)


def local_time(moment: dt.datetime, zone_name: str, fmt: str = "%d %b %Y, %H:%M") -> str:
    """A stored UTC time as someone in `zone_name` reads it."""
    return moment.astimezone(zone(zone_name)).strftime(fmt)
