"""Checks shared by every field that holds a cron schedule or a timezone."""

import zoneinfo

from dagster_autopilot import _dagster_internals as internals


def valid_cron(cron: str) -> str:
    """`cron` itself, or a ValueError that says what a valid one looks like."""
    if not internals.is_valid_cron_string(cron):
        raise ValueError(f"'{cron}' is not a valid cron schedule (expected e.g. '0 6 * * *')")
    return cron


def valid_timezone(timezone: str) -> str:
    """`timezone` itself, or a ValueError when it is not a known IANA name."""
    try:
        zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"'{timezone}' is not a known IANA timezone") from None
    return timezone
