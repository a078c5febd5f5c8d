"""Dataset sizes: the presets (`tiny`, `demo`, `bench`) and the dataclass for custom sizes."""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass

from biss_emulators.ivoris.catalogue import SITE_DEFINITIONS

# A fixed "now" so that a preset is reproducible no matter when the tests run.
DEFAULT_CLOCK = dt.datetime(2026, 6, 30, 18, 0, tzinfo=dt.UTC)
MAX_ENTRIES_PER_APPOINTMENT = 98  # entry ids are appointment id * 100 + line number, 99 is the unlinked line


@dataclass(frozen=True)
class DatasetSize:
    """How much synthetic data one emulator serves.

    `appointments_per_day` is the (min, max) target for a Monday–Friday; Saturdays get about a
    quarter of that and Sundays nothing. Each day's real count scatters around the target
    because follow-up visits of earlier journeys land on it.
    """

    name: str = "custom"
    sites: int = 3
    patients_per_site: int = 400
    appointments_per_day: tuple[int, int] = (30, 60)
    chairs: tuple[int, int] = (6, 12)
    history_start: dt.date = dt.date(2026, 4, 1)
    booking_horizon_days: int = 42
    entries_per_appointment: tuple[int, int] = (3, 12)
    default_clock: dt.datetime = DEFAULT_CLOCK

    def __post_init__(self) -> None:
        if not 1 <= self.sites <= len(SITE_DEFINITIONS):
            raise ValueError(f"sites must be 1..{len(SITE_DEFINITIONS)}")
        if self.patients_per_site < 1:
            raise ValueError("patients_per_site must be at least 1")
        for field, (lo, hi), floor in (("appointments_per_day", self.appointments_per_day, 0),
                                        ("chairs", self.chairs, 1),
                                        ("entries_per_appointment", self.entries_per_appointment, 1)):
            if not floor <= lo <= hi:
                raise ValueError(f"{field} must be a (min, max) range with {floor} <= min <= max")
        if self.entries_per_appointment[1] > MAX_ENTRIES_PER_APPOINTMENT:
            raise ValueError(f"entries_per_appointment max is {MAX_ENTRIES_PER_APPOINTMENT}")
        if not 1 <= self.booking_horizon_days <= 365:
            raise ValueError("booking_horizon_days must be 1..365")
        if self.default_clock.tzinfo is None:
            raise ValueError("default_clock must be timezone-aware")
        if self.history_start > self.default_clock.date():
            raise ValueError("history_start must not be after default_clock")

    @property
    def history_days(self) -> int:
        return (self.default_clock.date() - self.history_start).days + 1

    def replace(self, **changes: object) -> DatasetSize:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


PRESETS: dict[str, DatasetSize] = {
    # Unit tests: a couple of weeks, a handful of appointments, tens of patients.
    "tiny": DatasetSize(
        name="tiny", sites=3, patients_per_site=40, appointments_per_day=(2, 4), chairs=(6, 8),
        history_start=DEFAULT_CLOCK.date() - dt.timedelta(days=13), booking_horizon_days=14,
    ),
    # The demo: about three months, a few hundred patients per practice.
    "demo": DatasetSize(
        name="demo", sites=3, patients_per_site=400, appointments_per_day=(30, 60), chairs=(6, 12),
        history_start=dt.date(2026, 4, 1), booking_horizon_days=42,
    ),
    # Benchmarks: a year of three busy practices, over a million document entries. The daily
    # volume sits above the SPEC's 60–120 because a year of 3–12 lines per visit needs it.
    "bench": DatasetSize(
        name="bench", sites=3, patients_per_site=40_000, appointments_per_day=(180, 240), chairs=(12, 12),
        history_start=DEFAULT_CLOCK.date() - dt.timedelta(days=364), booking_horizon_days=60,
    ),
}


def resolve_size(size: str | DatasetSize) -> DatasetSize:
    if isinstance(size, DatasetSize):
        return size
    try:
        return PRESETS[size]
    except KeyError:
        raise ValueError(f"unknown size {size!r}; presets are {', '.join(PRESETS)}") from None
