"""The practices' calendar: one time zone for partition days, local appointment times and as-of days,
and how far ahead bookings reach."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

PRACTICE_TIMEZONE = "Europe/Berlin"
PRACTICE_TZ = ZoneInfo(PRACTICE_TIMEZONE)

# Appointments are booked weeks ahead and deal stages need them ("nothing booked ahead"), so
# partitions and the sync windows reach this many days past today.
BOOKING_LOOKAHEAD_DAYS = 60


def local_day(stamp: dt.datetime) -> dt.date:
    """The practice-local day of an instant; a naive value is taken as UTC (what the warehouse
    stores, and what SQLite hands back without its zone)."""
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.UTC)
    return stamp.astimezone(PRACTICE_TZ).date()


def local_midnight(day: dt.date) -> dt.datetime:
    """The instant a practice-local day begins (aware, in the practice's zone)."""
    return dt.datetime.combine(day, dt.time(), tzinfo=PRACTICE_TZ)
