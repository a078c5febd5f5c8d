"""The synthetic practice data, generated lazily and deterministically.

The data model is a fixed "universe" per (seed, size): every appointment that will ever be
booked, with its whole life as a list of timed events (booked, confirmed, arrived, completed,
cancelled, ..., set back). The emulator clock only decides how much of that universe is
visible: an appointment exists once its booking event is in the past, its status is the
latest event at or before the clock. Advancing the clock therefore reveals new bookings and
status changes without regenerating anything.

Generation layers, each cached and each a pure function of the layer below:

1. patient metadata per site (creation/update times, insurance, family links; no Faker);
2. journey plans per (site, start day): a patient's chain of visits weeks apart, e.g. an
   Erstberatung followed by treatments; visit times are fixed here so that a follow-up's
   booking time never depends on another day's chair assignment;
3. day skeletons per (site, day): that day's visits from all plans, ids, chairs, event
   times and the number of billing lines, all plain ints (cheap enough to count a year);
4. details on demand: document entries per appointment, patient records via Faker.
"""

from __future__ import annotations

import bisect
import datetime as dt
import heapq
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from operator import itemgetter
from random import Random
from typing import Any

from faker import Faker

from biss_emulators.ivoris._util import (
    Cents,
    LruCache,
    date_text,
    day_of_epoch_local,
    derive_seed,
    local_epoch,
    local_text,
    unit,
    utc_text,
)
from biss_emulators.ivoris.catalogue import (
    APPOINTMENT_TYPES,
    ARRIVED,
    BILLING,
    BOOKED,
    CANCELLED,
    CLARIFIED,
    CODES,
    COMPLETED,
    CONFIRMED,
    EMAIL_DOMAINS,
    NO_SHOW,
    SITE_DEFINITIONS,
    STATUSES,
    TEXT_CODE,
    TEXT_LINES,
    UNLINKED_CODES,
    SiteDefinition,
    T,
)
from biss_emulators.ivoris.sizes import DatasetSize

SETBACK = 7  # outcome only: completed, then corrected back to booked some days later
SPAN_DAYS = 150  # longest journey (first visit to last follow-up), bounds the look-back per day
# Longest gap between two visits of a journey (56 days) plus the weekend shift (6): a follow-up is
# booked at the previous visit, so nothing further ahead than this or the booking horizon exists.
MAX_GAP_DAYS = 62
UNLINKED_MAX_OFFSET = 4  # an entry without appointment is dated up to this many days after the visit
INSURANCES = ("GKV", "PKV", "self")
ENTRY_ID_STRIDE = 100
UNLINKED_LINE = 99
_JOURNEY_KINDS = ("checkup", "pzr", "erst", "fuel", "schmerz", "kfo", "paro", "chir", "blocker")
_JOURNEY_CUM_WEIGHTS = tuple(
    sum((30, 16, 18, 12, 8, 4, 4, 4, 4)[: i + 1]) for i in range(len(_JOURNEY_KINDS))
)
_DURATION = {t.id: t.duration_min for t in APPOINTMENT_TYPES}


_TREATMENT_PLANS = ("fuel", "endo", "paro", "prot", "impl", "chir")
_TREATMENT_CUM_WEIGHTS = (35, 50, 65, 80, 90, 100)


def _ri(rng: Random, lo: int, hi: int) -> int:
    """randint via the C-level `random()`: `Random.randint` is several times slower on hot paths."""
    return lo + int(rng.random() * (hi - lo + 1))


def _pick(rng: Random, items: Sequence[Any]) -> Any:
    return items[int(rng.random() * len(items))]


def weekday(day_ord: int) -> int:
    """Monday = 0 ... Sunday = 6 (ordinal 1 is a Monday)."""
    return (day_ord - 1) % 7


# ---------------------------------------------------------------------------------------------
# journeys


def _visit_types(rng: Random) -> list[tuple[int, int]]:
    """The (gap in days since the previous visit, type id) chain of one treatment journey."""
    kind = _JOURNEY_KINDS[bisect.bisect_right(_JOURNEY_CUM_WEIGHTS, rng.random() * _JOURNEY_CUM_WEIGHTS[-1])]
    if kind == "checkup":
        visits = [(0, T["KONS"])]
        if rng.random() < 0.35:
            visits.append((_ri(rng, 7, 28), T["PZR"]))
        if rng.random() < 0.2:
            visits.append((_ri(rng, 7, 21), T["FUEL"]))
        return visits
    if kind == "pzr":
        return [(0, T["PZR"])]
    if kind == "erst":
        visits = [(0, T["ERST"])]
        if rng.random() < 0.3:
            return visits  # came for advice, never came back
        first = _ri(rng, 7, 28)
        plan = _TREATMENT_PLANS[bisect.bisect_right(_TREATMENT_CUM_WEIGHTS, rng.random() * 100)]
        if plan == "fuel":
            visits.append((first, T["FUEL"]))
            visits.extend((_ri(rng, 7, 21), T["FUEL"]) for _ in range(_ri(rng, 0, 2)))
        elif plan == "endo":
            visits.append((first, T["ENDO"]))
            if rng.random() < 0.5:
                visits.append((_ri(rng, 7, 14), T["ENDO"]))
            visits.append((_ri(rng, 7, 21), T["FUEL"]))
        elif plan == "paro":
            visits += [(first, T["PARO"]), (_ri(rng, 14, 28), T["PARO"]), (_ri(rng, 21, 42), T["NACH"])]
        elif plan == "prot":
            visits += [(first, T["PROT"]), (_ri(rng, 7, 14), T["PROT"])]
            if rng.random() < 0.5:
                visits.append((_ri(rng, 7, 14), T["PROT"]))
            visits.append((_ri(rng, 14, 28), T["NACH"]))
        elif plan == "impl":
            visits += [(first, T["IMPB"]), (_ri(rng, 14, 28), T["IMPL"]), (_ri(rng, 7, 10), T["NACH"]),
                       (_ri(rng, 42, 56), T["PROT"])]
        else:
            visits += [(first, T["CHIR"]), (_ri(rng, 7, 10), T["NACH"])]
        return visits
    if kind == "fuel":
        return [(0, T["FUEL"])] + ([(_ri(rng, 7, 21), T["FUEL"])] if rng.random() < 0.4 else [])
    if kind == "schmerz":
        visits = [(0, T["SCHM"])]
        if rng.random() < 0.6:
            visits.append((_ri(rng, 3, 10), T["ENDO"]))
            if rng.random() < 0.5:
                visits.append((_ri(rng, 7, 21), T["FUEL"]))
        return visits
    if kind == "kfo":
        return [(0, T["KFOB"])]
    if kind == "paro":
        return [(0, T["PARO"]), (_ri(rng, 14, 28), T["PARO"])]
    if kind == "chir":
        return [(0, T["CHIR"]), (_ri(rng, 7, 10), T["NACH"])]
    return [(0, T["BLCK"])]


def _outcome(rng: Random, type_id: int) -> int:
    r = rng.random()
    if type_id == T["BLCK"]:
        return COMPLETED if r < 0.95 else CANCELLED
    if r < 0.83:
        return COMPLETED
    if r < 0.85:
        return SETBACK
    if r < 0.925:
        return CANCELLED
    if r < 0.965:
        return NO_SHOW
    if r < 0.985:
        return CLARIFIED
    return ARRIVED  # left in "arrived": the visit happened but nobody closed it


def _journey(rng: Random) -> list[tuple[int, int, int]]:
    """Visits with outcomes; a missed or cancelled visit often ends the journey."""
    visits: list[tuple[int, int, int]] = []
    for gap, type_id in _visit_types(rng):
        outcome = _outcome(rng, type_id)
        visits.append((gap, type_id, outcome))
        if outcome in (CANCELLED, NO_SHOW, CLARIFIED) and rng.random() < 0.6:
            break
    return visits


@cache
def mean_visits_per_journey() -> float:
    """Calibrates journeys per day against the size's appointments-per-day target."""
    rng = Random(20260630)
    samples = 20_000
    return sum(len(_journey(rng)) for _ in range(samples)) / samples


def _shift_to_working_day(day: int, rng: Random) -> int:
    """Follow-ups avoid Sundays and mostly Saturdays; moving forward only keeps the visit order."""
    wd = weekday(day)
    if wd == 6:
        return day + _ri(rng, 1, 5)
    if wd == 5 and rng.random() > 0.3:
        return day + _ri(rng, 2, 6)
    return day


def _entry_count_range(weight: str, lo: int, hi: int) -> tuple[int, int]:
    width = hi - lo
    if weight == "light":
        return lo, lo + round(0.55 * width)
    if weight == "medium":
        return lo + round(0.2 * width), lo + round(0.75 * width)
    return lo + round(0.55 * width), hi


# ---------------------------------------------------------------------------------------------
# records


class ApptSkel:
    """One appointment of the universe; `events` is flat (epoch, status, epoch, status, ...)."""

    __slots__ = ("chair_id", "day", "dur", "entries_at", "events", "id", "n_entries", "patient_id",
                 "start_min", "type_id", "unlinked_at", "unlinked_day")

    def __init__(self, appt_id: int, day: int, patient_id: int, chair_id: int, type_id: int, start_min: int,
                 dur: int, events: tuple[int, ...], entries_at: int, n_entries: int, unlinked_day: int,
                 unlinked_at: int) -> None:
        self.id = appt_id
        self.day = day
        self.patient_id = patient_id
        self.chair_id = chair_id
        self.type_id = type_id
        self.start_min = start_min
        self.dur = dur
        self.events = events
        self.entries_at = entries_at
        self.n_entries = n_entries
        self.unlinked_day = unlinked_day
        self.unlinked_at = unlinked_at

    def state_at(self, clock: int) -> tuple[int, int] | None:
        """(status, modified epoch) as of `clock`, or None when not yet booked."""
        events = self.events
        if events[0] > clock:
            return None
        index = 0
        while index + 2 < len(events) and events[index + 2] <= clock:
            index += 2
        return events[index + 1], events[index]

    def record(self, clock: int) -> dict[str, Any] | None:
        state = self.state_at(clock)
        if state is None:
            return None
        return {
            "id": self.id, "patientId": self.patient_id, "chairId": self.chair_id, "typeId": self.type_id,
            "start": local_text(self.day, self.start_min),
            "end": local_text(self.day, self.start_min + self.dur),
            "status": STATUSES[state[0]], "modifiedAt": utc_text(state[1]),
        }

    def entry_ids(self) -> Iterable[int]:
        base = self.id * ENTRY_ID_STRIDE
        return range(base + 1, base + self.n_entries + 1)


@dataclass(frozen=True, slots=True)
class Entry:
    id: int
    patient_id: int
    appointment_id: int | None
    day: int
    entry_type: str
    code: str
    description: str
    cents: int
    modified: int

    def record(self, modified: int | None = None) -> dict[str, Any]:
        return {
            "id": self.id, "patientId": self.patient_id, "appointmentId": self.appointment_id,
            "date": date_text(self.day), "type": self.entry_type, "code": self.code,
            "description": self.description, "amount": Cents(self.cents),
            "modifiedAt": utc_text(self.modified if modified is None else modified),
        }


@dataclass
class PatientMeta:
    """Everything about a site's patients that needs no Faker, indexed by id - 1."""

    created: list[int]
    updates: list[tuple[int, ...]]
    insurance: bytearray
    family_head: list[int]
    female: bytearray
    no_email: bytearray

    def state_at(self, patient_id: int, clock: int) -> tuple[int, int] | None:
        """(version, modified epoch) as of `clock`; version counts the updates applied."""
        created = self.created[patient_id - 1]
        if created > clock:
            return None
        version, modified = 0, created
        for when in self.updates[patient_id - 1]:
            if when <= clock:
                version, modified = version + 1, when
        return version, modified


@dataclass(frozen=True)
class PatientBase:
    first_name: str
    last_name: str
    birth_ord: int
    email: str | None
    phone: str


@dataclass
class _Site:
    definition: SiteDefinition
    meta: PatientMeta | None = None
    chairs: list[dict[str, Any]] | None = None
    plans: LruCache[int, dict[int, list[tuple[int, ...]]]] = field(default_factory=lambda: LruCache(1200))
    days: LruCache[int, list[ApptSkel]] = field(default_factory=lambda: LruCache(1200))
    patient_index: dict[int, list[ApptSkel]] = field(default_factory=dict)
    indexed_until: int = 0


_TRANSLIT = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "é": "e", "è": "e", "á": "a"})


def _mail_part(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower().translate(_TRANSLIT))


# ---------------------------------------------------------------------------------------------
# the dataset


class Dataset:
    """All sites' data for one (seed, size); every public method is thread-safe.

    Methods take the clock as epoch seconds explicitly, so the caller decides what "now" is
    (the HTTP layer passes the emulator clock; stale duplicate copies pass an earlier one).
    """

    def __init__(self, seed: int, size: DatasetSize) -> None:
        self.seed = seed
        self.size = size
        self.lock = threading.RLock()
        self.history_start = size.history_start.toordinal()
        hi = size.appointments_per_day[1]
        # room for days far busier than the target, ids stay stable per (day, position)
        self.appt_stride = max(1000, 10 ** len(str(hi * 4)))
        self.sites: dict[str, _Site] = {
            d.site_id: _Site(d) for d in SITE_DEFINITIONS[: size.sites]
        }
        self._faker = Faker("de_DE")
        self._patients: LruCache[tuple[str, int], PatientBase] = LruCache(60_000)
        self._entries: LruCache[tuple[str, int], list[Entry]] = LruCache(60_000)
        self._dated: LruCache[tuple[str, int, int, float], list[Entry]] = LruCache(256)
        self._range_counts: LruCache[tuple[Any, ...], list[int]] = LruCache(32)
        self._patient_lists: LruCache[tuple[str, int | None, int], list[int]] = LruCache(16)
        self._gap_keys = {sid: derive_seed(seed, sid, "date-route-gap") for sid in self.sites}

    # -- helpers ------------------------------------------------------------------------------

    def site(self, site_id: str) -> _Site:
        try:
            return self.sites[site_id]
        except KeyError:
            raise KeyError(f"unknown site {site_id!r}") from None

    def is_hidden(self, site_id: str, entry_id: int, gap_rate: float) -> bool:
        """Whether the date route leaves this entry out: a fixed subset, stable across requests."""
        return gap_rate > 0 and unit(self._gap_keys[site_id], entry_id) < gap_rate

    def _meta(self, site: _Site) -> PatientMeta:
        if site.meta is None:
            site.meta = self._build_meta(site.definition.site_id)
        return site.meta

    def _build_meta(self, site_id: str) -> PatientMeta:
        size = self.size
        rng = Random(derive_seed(self.seed, site_id, "patients"))
        total = size.patients_per_site
        existing = max(1, int(total * 0.7))
        horizon = size.booking_horizon_days
        old_from = local_epoch(self.history_start - 8 * 365, 0)
        # existing patients predate the earliest booking any journey can make
        old_to = local_epoch(self.history_start - SPAN_DAYS - horizon - 1, 0)
        new_to = int(size.default_clock.timestamp())
        update_until = new_to + 180 * 86400
        created: list[int] = []
        updates: list[tuple[int, ...]] = []
        insurance = bytearray(total)
        family = [0] * total
        female = bytearray(total)
        no_email = bytearray(total)
        for index in range(total):
            if index < existing:
                step = (old_to - old_from) // existing
                base = old_from + index * step
            else:
                newcomers = total - existing
                step = (new_to - old_to) // newcomers
                base = old_to + (index - existing) * step
            when = base + int(rng.random() * max(1, step))
            created.append(when)
            r = rng.random()
            count = 2 if r < 0.05 else 1 if r < 0.25 else 0
            updates.append(tuple(sorted(_ri(rng, when + 1, max(when + 1, update_until))
                                        for _ in range(count))))
            r = rng.random()
            insurance[index] = 0 if r < 0.85 else 1 if r < 0.97 else 2
            if index > 0 and rng.random() < 0.05:
                family[index] = index - int(rng.random() * min(50, index))  # an earlier patient's id
            female[index] = rng.random() < 0.52
            no_email[index] = rng.random() < 0.03
        return PatientMeta(created, updates, insurance, family, female, no_email)

    # -- journeys and day skeletons -------------------------------------------------------------

    def _plan(self, site: _Site, start_day: int) -> dict[int, list[tuple[int, ...]]]:
        return site.plans.get_or_create(start_day, lambda: self._build_plan(site, start_day))

    def _build_plan(self, site: _Site, start_day: int) -> dict[int, list[tuple[int, ...]]]:
        wd = weekday(start_day)
        if wd == 6:
            return {}
        size = self.size
        site_id = site.definition.site_id
        meta = self._meta(site)
        rng = Random(derive_seed(self.seed, site_id, "plan", start_day))
        lo, hi = size.appointments_per_day
        target = rng.uniform(lo, hi) * (0.25 if wd == 5 else 1.0) / mean_visits_per_journey()
        count = int(target) + (1 if rng.random() < target - int(target) else 0)
        horizon = size.booking_horizon_days
        by_day: dict[int, list[tuple[int, ...]]] = {}
        for journey in range(count):
            visits = _journey(rng)
            lead = 1 + int(horizon * rng.random() ** 1.5)
            booked = local_epoch(start_day - lead, 8 * 60 + int(rng.random() * 600))
            patient = self._pick_patient(meta, rng, booked, new=visits[0][1] in (T["ERST"], T["SCHM"]))
            day = start_day
            for index, (gap, type_id, outcome) in enumerate(visits):
                if index:
                    day = _shift_to_working_day(day + gap, rng)
                if day - start_day > SPAN_DAYS:
                    break
                dur = _DURATION[type_id]
                close = 13 * 60 if weekday(day) == 5 else 18 * 60
                start = 8 * 60 + 5 * int(rng.random() * ((close - 8 * 60 - dur) // 5 + 1))
                if day >= self.history_start:
                    by_day.setdefault(day, []).append(
                        (start_day, journey, index, patient, type_id, start, dur, outcome, booked))
                # the next visit is booked at the reception desk right after this one
                booked = local_epoch(day, start + dur + _ri(rng, 2, 20))
        return by_day

    @staticmethod
    def _pick_patient(meta: PatientMeta, rng: Random, booked: int, new: bool) -> int:
        existing = max(1, bisect.bisect_right(meta.created, booked))
        if new and rng.random() < 0.6:
            recent = bisect.bisect_right(meta.created, booked - 30 * 86400)
            if recent < existing:
                return _ri(rng, recent + 1, existing)
        return _ri(rng, 1, existing)

    def _day(self, site: _Site, day: int) -> list[ApptSkel]:
        if day < self.history_start:
            return []
        return site.days.get_or_create(day, lambda: self._build_day(site, day))

    def _chair_count(self, site_id: str) -> int:
        lo, hi = self.size.chairs
        return Random(derive_seed(self.seed, site_id, "chairs")).randint(lo, hi)

    def _build_day(self, site: _Site, day: int) -> list[ApptSkel]:
        site_id = site.definition.site_id
        visits: list[tuple[int, ...]] = []
        for start_day in range(day - SPAN_DAYS, day + 1):
            visits.extend(self._plan(site, start_day).get(day, ()))
        visits.sort(key=itemgetter(5, 0, 1, 2))
        rng = Random(derive_seed(self.seed, site_id, "day", day))
        chairs = [(0, chair) for chair in range(1, self._chair_count(site_id) + 1)]
        entries_lo, entries_hi = self.size.entries_per_appointment
        base_id = (day - self.history_start + 1) * self.appt_stride
        midnight = local_epoch(day, 0)
        out: list[ApptSkel] = []
        for position, (_s, _j, _v, patient, type_id, start, dur, outcome, booked) in enumerate(visits):
            if position + 1 >= self.appt_stride:
                break
            # earliest-free chair; when all are busy the practice double-books, as real ones do
            free_at, chair = chairs[0]
            heapq.heapreplace(chairs, (max(free_at, start) + dur, chair))
            start_at = midnight + start * 60
            end_at = start_at + dur * 60
            events = [booked, BOOKED]
            if rng.random() < 0.6:
                confirmed = start_at - _ri(rng, 18 * 3600, 30 * 3600)
                if confirmed > booked + 3600:
                    events += [confirmed, CONFIRMED]
            entries_at = n_entries = unlinked_day = unlinked_at = 0
            if outcome == CANCELLED:
                earliest, latest = events[-2] + 60, start_at - 1800
                # most cancellations come shortly before the date
                when = earliest
                if latest > earliest:
                    when = latest - int((latest - earliest) * rng.random() ** 3)
                events += [when, CANCELLED]
            elif outcome == NO_SHOW:
                events += [start_at + _ri(rng, 20, 90) * 60, NO_SHOW]
            elif outcome == CLARIFIED:
                missed = start_at + _ri(rng, 20, 90) * 60
                events += [missed, NO_SHOW, missed + _ri(rng, 2 * 3600, 72 * 3600), CLARIFIED]
            elif outcome == ARRIVED:
                events += [start_at - _ri(rng, 0, 15) * 60, ARRIVED]
            else:
                completed = end_at + _ri(rng, 0, 45) * 60
                events += [start_at - _ri(rng, 0, 15) * 60, ARRIVED, completed, COMPLETED]
                if outcome == SETBACK:
                    events += [completed + _ri(rng, 2, 10) * 86400 + _ri(rng, 0, 8 * 3600), BOOKED]
                if type_id != T["BLCK"]:
                    entries_at = completed + _ri(rng, 5, 180) * 60
                    lo, hi = _entry_count_range(BILLING[type_id].weight, entries_lo, entries_hi)
                    n_entries = _ri(rng, lo, hi)
                    if rng.random() < 0.4:
                        unlinked_day = day + _pick(rng, (0, 0, 1, 2, 3))
                        if weekday(unlinked_day) == 6:
                            unlinked_day += 1
                        unlinked_at = entries_at + (unlinked_day - day) * 86400 + _ri(rng, 0, 3600)
            out.append(ApptSkel(base_id + position + 1, day, patient, chair, type_id, start, dur,
                                tuple(events), entries_at, n_entries, unlinked_day, unlinked_at))
        return out

    # -- document entries ----------------------------------------------------------------------

    def _appt_entries(self, site: _Site, appt: ApptSkel) -> list[Entry]:
        site_id = site.definition.site_id
        return self._entries.get_or_create((site_id, appt.id), lambda: self._build_entries(site, appt))

    def _build_entries(self, site: _Site, appt: ApptSkel) -> list[Entry]:
        rng = Random(derive_seed(self.seed, site.definition.site_id, "entries", appt.id))
        template = BILLING[appt.type_id]
        privat = self._meta(site).insurance[appt.patient_id - 1] != 0
        core = template.core_privat if privat else template.core_kasse
        extra = template.extra_privat if privat else template.extra_kasse
        count = appt.n_entries
        codes = list(core[: min(len(core), (count + 1) // 2)])
        while len(codes) < count:
            r = rng.random()
            if r < 0.14:
                codes.append(TEXT_CODE)
            elif r < 0.55 and extra:
                codes.append(_pick(rng, extra))
            elif template.extra_common:
                codes.append(_pick(rng, template.extra_common))
            else:
                codes.append(_pick(rng, core or extra or (TEXT_CODE,)))
        base = appt.id * ENTRY_ID_STRIDE
        entries = [self._entry(rng, base + line, appt.patient_id, appt.id, appt.day, code, appt.entries_at)
                   for line, code in enumerate(codes, start=1)]
        if count >= 3 and rng.random() < 0.04:
            # a Storno line: the last line corrects an earlier one, fully or in part
            billed = [e for e in entries[:-1] if e.entry_type != "text" and e.cents > 0]
            if billed:
                target = _pick(rng, billed)
                amount = target.cents if rng.random() < 0.5 else max(50, target.cents // 2 // 50 * 50)
                last = entries[-1]
                entries[-1] = Entry(last.id, last.patient_id, last.appointment_id, last.day,
                                    target.entry_type, target.code, f"Korrektur: {target.description}",
                                    -amount, last.modified)
        if appt.unlinked_day:
            entries.append(self._entry(rng, base + UNLINKED_LINE, appt.patient_id, None, appt.unlinked_day,
                                       _pick(rng, UNLINKED_CODES), appt.unlinked_at))
        return entries

    @staticmethod
    def _entry(rng: Random, entry_id: int, patient_id: int, appointment_id: int | None, day: int, code: str,
               modified: int) -> Entry:
        if code == TEXT_CODE:
            return Entry(entry_id, patient_id, appointment_id, day, "text", TEXT_CODE,
                         _pick(rng, TEXT_LINES), 0, modified)
        spec = CODES[code]
        cents = _ri(rng, spec.min_cents, spec.max_cents)
        return Entry(entry_id, patient_id, appointment_id, day, spec.entry_type, code, spec.description,
                     cents, modified)

    def _entries_dated(self, site: _Site, day: int, clock: int, gap_rate: float) -> list[Entry]:
        """Visible entries dated `day`, by id; `gap_rate` > 0 drops the date route's blind spots."""
        key = (site.definition.site_id, day, clock, gap_rate)
        return self._dated.get_or_create(key, lambda: self._build_entries_dated(site, day, clock, gap_rate))

    def _build_entries_dated(self, site: _Site, day: int, clock: int, gap_rate: float) -> list[Entry]:
        site_id = site.definition.site_id
        out: list[Entry] = []
        for source in range(day - UNLINKED_MAX_OFFSET, day + 1):
            for appt in self._day(site, source):
                linked = source == day and appt.n_entries and appt.entries_at <= clock
                unlinked = appt.unlinked_day == day and appt.unlinked_at <= clock
                if not (linked or unlinked):
                    continue
                for entry in self._appt_entries(site, appt):
                    if entry.day == day and entry.modified <= clock and not self.is_hidden(
                            site_id, entry.id, gap_rate):
                        out.append(entry)
        out.sort(key=lambda e: e.id)
        return out

    def _entry_counts(self, site: _Site, first: int, last: int, clock: int, gap_rate: float) -> list[int]:
        """Visible entries per date in [first, last], from skeletons only (no entry details)."""
        key = ("entries", site.definition.site_id, first, last, clock, gap_rate)
        return self._range_counts.get_or_create(
            key, lambda: self._build_entry_counts(site, first, last, clock, gap_rate))

    def _build_entry_counts(self, site: _Site, first: int, last: int, clock: int,
                            gap_rate: float) -> list[int]:
        site_id = site.definition.site_id
        counts = [0] * (last - first + 1)
        for source in range(first - UNLINKED_MAX_OFFSET, last + 1):
            for appt in self._day(site, source):
                if appt.n_entries and source >= first and appt.entries_at <= clock:
                    if gap_rate > 0:
                        counts[source - first] += sum(
                            1 for eid in appt.entry_ids() if not self.is_hidden(site_id, eid, gap_rate))
                    else:
                        counts[source - first] += appt.n_entries
                if (appt.unlinked_day and first <= appt.unlinked_day <= last and appt.unlinked_at <= clock
                        and not self.is_hidden(site_id, appt.id * ENTRY_ID_STRIDE + UNLINKED_LINE, gap_rate)):
                    counts[appt.unlinked_day - first] += 1
        return counts

    # -- public: reference data ------------------------------------------------------------------

    def practices(self, site_id: str) -> list[dict[str, Any]]:
        definition = self.site(site_id).definition
        return [{"id": definition.practice_id, "name": definition.name}]

    def chairs(self, site_id: str) -> list[dict[str, Any]]:
        with self.lock:
            site = self.site(site_id)
            if site.chairs is None:
                site.chairs = self._build_chairs(site_id)
            return site.chairs

    def _build_chairs(self, site_id: str) -> list[dict[str, Any]]:
        count = self._chair_count(site_id)
        dentists: list[str] = []
        for index in range(max(2, count // 2)):
            self._faker.seed_instance(derive_seed(self.seed, site_id, "dentist", index))
            title = "Dr. med. dent." if index % 3 == 0 else "Dr."
            dentists.append(f"{title} {self._faker.first_name()} {self._faker.last_name()}")
        prophylaxis = 1 if count < 9 else 2
        chairs = []
        for chair in range(1, count + 1):
            name = (f"Prophylaxe {chair - (count - prophylaxis)}" if chair > count - prophylaxis
                    else f"Behandlungszimmer {chair}")
            chairs.append({"id": chair, "name": name, "dentist": dentists[(chair - 1) % len(dentists)]})
        return chairs

    @staticmethod
    def appointment_types() -> list[dict[str, Any]]:
        return [{"id": t.id, "code": t.code, "name": t.name, "duration_min": t.duration_min}
                for t in APPOINTMENT_TYPES]

    # -- public: appointments ---------------------------------------------------------------------

    def _appointment_counts(self, site: _Site, first: int, last: int, clock: int) -> list[int]:
        key = ("appointments", site.definition.site_id, first, last, clock)
        return self._range_counts.get_or_create(key, lambda: [
            sum(1 for appt in self._day(site, day) if appt.events[0] <= clock)
            for day in range(first, last + 1)
        ])

    def appointments_page(self, site_id: str, first: int, last: int, clock: int, offset: int,
                          limit: int) -> tuple[int, list[dict[str, Any]]]:
        with self.lock:
            site = self.site(site_id)
            counts = self._appointment_counts(site, first, last, clock)

            def day_records(index: int) -> list[dict[str, Any]]:
                records = (appt.record(clock) for appt in self._day(site, first + index))
                return [r for r in records if r is not None]

            return _page(counts, day_records, offset, limit)

    def appointment_record(self, site_id: str, appointment_id: int, clock: int) -> dict[str, Any] | None:
        with self.lock:
            site = self.site(site_id)
            day = self.history_start - 1 + appointment_id // self.appt_stride
            position = appointment_id % self.appt_stride - 1
            appts = self._day(site, day)
            if not 0 <= position < len(appts):
                return None
            return appts[position].record(clock)

    # -- public: document entries -------------------------------------------------------------------

    def entries_page(self, site_id: str, first: int, last: int, clock: int, gap_rate: float, offset: int,
                     limit: int) -> tuple[int, list[dict[str, Any]]]:
        with self.lock:
            site = self.site(site_id)
            counts = self._entry_counts(site, first, last, clock, gap_rate)

            def day_records(index: int) -> list[dict[str, Any]]:
                return [e.record() for e in self._entries_dated(site, first + index, clock, gap_rate)]

            return _page(counts, day_records, offset, limit)

    def entries_in_range(self, site_id: str, first: int, last: int, clock: int,
                         gap_rate: float = 0.0) -> list[Entry]:
        with self.lock:
            site = self.site(site_id)
            out: list[Entry] = []
            for day in range(first, last + 1):
                out.extend(self._entries_dated(site, day, clock, gap_rate))
            return out

    def _ensure_index(self, site: _Site, until_day: int) -> None:
        """Patient -> appointments with entries, extended day by day as the clock moves on."""
        if site.indexed_until == 0:
            site.indexed_until = self.history_start - 1
        for day in range(site.indexed_until + 1, until_day + 1):
            for appt in self._day(site, day):
                if appt.n_entries:
                    site.patient_index.setdefault(appt.patient_id, []).append(appt)
        site.indexed_until = max(site.indexed_until, until_day)

    def patient_entries(self, site_id: str, patient_id: int, clock: int) -> list[Entry] | None:
        """All visible entries of one patient (None if the patient does not exist yet)."""
        with self.lock:
            site = self.site(site_id)
            meta = self._meta(site)
            if not 1 <= patient_id <= len(meta.created) or meta.created[patient_id - 1] > clock:
                return None
            self._ensure_index(site, day_of_epoch_local(clock))
            out = [entry for appt in site.patient_index.get(patient_id, ())
                   if appt.entries_at <= clock for entry in self._appt_entries(site, appt)
                   if entry.modified <= clock]
            out.sort(key=lambda e: (e.day, e.id))
            return out

    # -- public: patients -------------------------------------------------------------------------

    def _patient_base(self, site: _Site, patient_id: int) -> PatientBase:
        key = (site.definition.site_id, patient_id)
        return self._patients.get_or_create(key, lambda: self._build_patient(site, patient_id))

    def _build_patient(self, site: _Site, patient_id: int) -> PatientBase:
        site_id = site.definition.site_id
        meta = self._meta(site)
        fake = self._faker
        fake.seed_instance(derive_seed(self.seed, site_id, "patient", patient_id))
        index = patient_id - 1
        first = fake.first_name_female() if meta.female[index] else fake.first_name_male()
        last = fake.last_name()
        phone = fake.phone_number()
        rng = Random(derive_seed(self.seed, site_id, "patient-extra", patient_id))
        birth = self.history_start - int(365.25 * rng.uniform(3, 90))
        head_id = meta.family_head[index]
        if head_id:
            head = self._patient_base(site, head_id)
            # families share the surname and, as real households do, one mailbox
            last, email = head.last_name, head.email
            child = head.birth_ord + int(365.25 * rng.uniform(22, 40))
            birth = child if child < self.history_start - 365 else head.birth_ord + _ri(rng, -1800, 1800)
        elif meta.no_email[index]:
            email = None
        else:
            email = self._email(rng, first, last)
        return PatientBase(first, last, birth, email, phone)

    @staticmethod
    def _email(rng: Random, first: str, last: str) -> str:
        f, l_ = _mail_part(first), _mail_part(last)
        local = _pick(rng, (f"{f}.{l_}", f"{f[:1]}.{l_}", f"{f}{l_}{_ri(rng, 1, 99)}", f"{l_}.{f}",
                            f"{f}_{l_}{_ri(rng, 60, 99)}"))
        return f"{local}@{_pick(rng, EMAIL_DOMAINS)}"

    def _phone(self, site_id: str, patient_id: int, version: int, base: PatientBase) -> str:
        if version == 0:
            return base.phone
        self._faker.seed_instance(derive_seed(self.seed, site_id, "phone", patient_id, version))
        return self._faker.phone_number()

    def patient_record(self, site_id: str, patient_id: int, clock: int) -> dict[str, Any] | None:
        with self.lock:
            site = self.site(site_id)
            meta = self._meta(site)
            if not 1 <= patient_id <= len(meta.created):
                return None
            state = meta.state_at(patient_id, clock)
            if state is None:
                return None
            version, modified = state
            base = self._patient_base(site, patient_id)
            return {
                "id": patient_id, "firstName": base.first_name, "lastName": base.last_name,
                "birthDate": date_text(base.birth_ord), "email": base.email,
                # an update in Ivoris is modelled as a changed phone number
                "phone": self._phone(site_id, patient_id, version, base),
                "insurance": INSURANCES[meta.insurance[patient_id - 1]], "modifiedAt": utc_text(modified),
            }

    def patients_by_ids(self, site_id: str, ids: Sequence[int], clock: int) -> list[dict[str, Any]]:
        with self.lock:
            records = (self.patient_record(site_id, pid, clock) for pid in sorted(set(ids)))
            return [r for r in records if r is not None]

    def _patient_ids(self, site: _Site, since: int | None, clock: int) -> list[int]:
        def build() -> list[int]:
            meta = self._meta(site)
            out = []
            for pid in range(1, len(meta.created) + 1):
                state = meta.state_at(pid, clock)
                if state is not None and (since is None or state[1] >= since):
                    out.append(pid)
            return out

        return self._patient_lists.get_or_create((site.definition.site_id, since, clock), build)

    def patient_ids(self, site_id: str, since: int | None, clock: int) -> list[int]:
        with self.lock:
            return list(self._patient_ids(self.site(site_id), since, clock))

    def patients_page(self, site_id: str, since: int | None, clock: int, offset: int,
                      limit: int) -> tuple[int, list[dict[str, Any]]]:
        with self.lock:
            ids = self._patient_ids(self.site(site_id), since, clock)
            records = (self.patient_record(site_id, pid, clock) for pid in ids[offset: offset + limit])
            return len(ids), [r for r in records if r is not None]

    # -- public: counts from skeletons ------------------------------------------------------------

    def counts(self, site_id: str, clock: int) -> dict[str, int]:
        """Totals visible at `clock`, computed from skeletons without generating any details."""
        with self.lock:
            site = self.site(site_id)
            today = day_of_epoch_local(clock)
            appointments = completed = entries = 0
            status_counts = dict.fromkeys(STATUSES, 0)
            ahead = max(self.size.booking_horizon_days, MAX_GAP_DAYS)
            for day in range(self.history_start, today + ahead + 1):
                for appt in self._day(site, day):
                    state = appt.state_at(clock)
                    if state is None:
                        continue
                    appointments += 1
                    status_counts[STATUSES[state[0]]] += 1
                    completed += state[0] == COMPLETED
                    if appt.n_entries and appt.entries_at <= clock:
                        entries += appt.n_entries
                    if appt.unlinked_day and appt.unlinked_at <= clock:
                        entries += 1
            meta = self._meta(site)
            patients = bisect.bisect_right(meta.created, clock)
            return {"patients": patients, "appointments": appointments, "completed_appointments": completed,
                    "document_entries": entries, **{f"status_{k}": v for k, v in status_counts.items()}}


def _page(counts: list[int], materialise: Callable[[int], list[dict[str, Any]]], offset: int,
          limit: int) -> tuple[int, list[dict[str, Any]]]:
    """Slice [offset, offset + limit) out of per-bucket records, materialising only touched buckets."""
    total = sum(counts)
    items: list[dict[str, Any]] = []
    start = 0
    for index, count in enumerate(counts):
        end = start + count
        if count and end > offset and start < offset + limit:
            records = materialise(index)
            items.extend(records[max(0, offset - start): offset + limit - start])
        if end >= offset + limit:
            break
        start = end
    return total, items


def parse_day(value: dt.date | str) -> int:
    if isinstance(value, str):
        value = dt.date.fromisoformat(value)
    return value.toordinal()
