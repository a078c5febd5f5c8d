"""Fault-free ground truth at the emulator clock, read straight from the dataset (no HTTP).

Records have the API's shape; amounts are `Decimal` with two places, so they compare equal
to a response parsed with `json.loads(text, parse_float=Decimal)`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

from biss_emulators.ivoris._util import Cents
from biss_emulators.ivoris.dataset import Dataset, parse_day
from biss_emulators.ivoris.faults import FaultConfig
from biss_emulators.ivoris.lies import ENTITIES, NonIntegerIds

_ALL = 10**12


def _plain(record: dict[str, Any]) -> dict[str, Any]:
    return {key: Decimal(int(value)).scaleb(-2) if isinstance(value, Cents) else value
            for key, value in record.items()}


class Truth:
    def __init__(self, dataset: Dataset, clock: Callable[[], int], faults: Callable[[], FaultConfig]) -> None:
        self._dataset = dataset
        self._clock = clock
        self._faults = faults
        self._non_integer = NonIntegerIds(dataset.seed)

    @property
    def site_ids(self) -> list[str]:
        return list(self._dataset.sites)

    def appointments(self, site_id: str, date_from: dt.date | str,
                     date_to: dt.date | str) -> list[dict[str, Any]]:
        """Appointments starting in [date_from, date_to] (local date), in the API's order."""
        first, last = parse_day(date_from), parse_day(date_to)
        return self._dataset.appointments_page(site_id, first, last, self._clock(), 0, _ALL)[1]

    def document_entries(self, site_id: str, date_from: dt.date | str,
                         date_to: dt.date | str) -> list[dict[str, Any]]:
        """Entries dated in the range, including those the date route hides."""
        first, last = parse_day(date_from), parse_day(date_to)
        entries = self._dataset.entries_in_range(site_id, first, last, self._clock())
        return [_plain(entry.record()) for entry in entries]

    def hidden_document_entry_ids(self, site_id: str, date_from: dt.date | str, date_to: dt.date | str,
                                  gap_rate: float | None = None) -> set[int]:
        """Ids the date route leaves out at `gap_rate` (default: the current fault setting)."""
        rate = self._faults().date_route_gap_rate if gap_rate is None else gap_rate
        first, last = parse_day(date_from), parse_day(date_to)
        entries = self._dataset.entries_in_range(site_id, first, last, self._clock())
        return {e.id for e in entries if self._dataset.is_hidden(site_id, e.id, rate)}

    def patients(self, site_id: str, ids: Iterable[int]) -> list[dict[str, Any]]:
        return self._dataset.patients_by_ids(site_id, list(ids), self._clock())

    def patient_ids(self, site_id: str, modified_since: dt.datetime | None = None) -> list[int]:
        """Ids of the patients that exist now (optionally modified at or after the given time)."""
        since = int(modified_since.timestamp()) if modified_since is not None else None
        return self._dataset.patient_ids(site_id, since, self._clock())

    def patient_document_entries(self, site_id: str, patient_id: int) -> list[dict[str, Any]]:
        entries = self._dataset.patient_entries(site_id, patient_id, self._clock())
        return [_plain(entry.record()) for entry in entries or ()]

    def counts(self, site_id: str | None = None) -> dict[str, int]:
        """Totals visible now (patients, appointments, completed, document entries, per status),
        from the cheap skeletons; with no site, summed over all sites."""
        sites = [site_id] if site_id is not None else self.site_ids
        total: dict[str, int] = {}
        for sid in sites:
            for key, value in self._dataset.counts(sid, self._clock()).items():
                total[key] = total.get(key, 0) + value
        return total

    def non_integer_ids(self, site_id: str, entity: str, ids: Iterable[int],
                        rate: float | None = None) -> dict[int, Any]:
        """Of the given true ids of `entity` ("patients", "appointments", "document_entries"), those
        served with a non-integer id, mapped to the value served (at `rate`, default: the current
        `non_integer_id_rate`, within `lie_sites`). With `non_integer_id_references` on, a record
        whose `patientId`/`appointmentId` is among these ids is served with that value there too.

        These records are bad input, never recoverable as valid: the truth holds their real ids.
        """
        if entity not in ENTITIES:
            raise ValueError(f"entity must be one of {ENTITIES}, got {entity!r}")
        faults = self._faults()
        if rate is None:
            rate = faults.non_integer_id_rate if faults.lies_apply(site_id) else 0.0
        out: dict[int, Any] = {}
        for record_id in ids:
            value = self._non_integer.value(site_id, entity, record_id, rate)
            if value is not None:
                out[record_id] = value
        return out
