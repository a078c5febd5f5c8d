"""Properties of the deal computation over generated appointment and entry histories."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date, timedelta

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from biss_pipeline.domain.deals import (
    DealComputation,
    DealSettings,
    classify_entries,
    compute_deals,
    contact_rollups,
    patients_awaiting_quiet_period,
    recompute_for_patients,
)
from tests.logic.factories import RULES, A, E, appointments_frame, entries_frame

BASE = date(2024, 1, 1)
PATIENTS = (("mb", "MB_P1"), ("mb", "MB_P2"), ("mb", "MB_P3"), ("rk", "RK_P1"))
ROLES = ("lead", "treatment", "treatment", "followup", "ignore")
STATUSES = ("booked", "confirmed", "arrived", "completed", "completed", "cancelled", "no_show", "clarified")
ENTRY_KINDS = (
    ("goz", "2060"),
    ("goz", "3010"),
    ("goz", "9010"),
    ("bema", "13a"),
    ("bema", "Ä1"),  # not billable
    ("lab", "L1"),
    ("lab", "X"),  # no rule
    ("mat", "M1"),
    ("pabg", "2060"),
    ("text", "Befund"),
)
PROPERTY_SETTINGS = settings(max_examples=50, deadline=None)


@dataclass(frozen=True)
class History:
    appointments: pd.DataFrame
    entries: pd.DataFrame

    @property
    def classified(self) -> pd.DataFrame:
        return classify_entries(self.entries, RULES)

    def compute(self, as_of: date, deal_settings: DealSettings) -> DealComputation:
        return compute_deals(self.appointments, self.classified, deal_settings, as_of)


@st.composite
def patient_rows(draw: st.DrawFn, practice: str, patient: str) -> tuple[list[A], list[E]]:
    appointments = [
        A(
            key=f"{patient}_A{index}",
            role=draw(st.sampled_from(ROLES)),
            on=(BASE + timedelta(days=draw(st.integers(0, 240)))).isoformat(),
            status=draw(st.sampled_from(STATUSES)),
            hour=draw(st.integers(8, 9)),  # few hours, so that ties on the start happen
            patient=patient,
            practice=practice,
        )
        for index in range(draw(st.integers(0, 7)))
    ]
    links = [None, f"{patient}_A99", *(appointment.key for appointment in appointments)]
    entries = []
    for index in range(draw(st.integers(0, 7))):
        entry_type, code = draw(st.sampled_from(ENTRY_KINDS))
        entries.append(
            E(
                key=f"{patient}_E{index}",
                amount_cents=draw(st.integers(-50_000, 200_000)),
                appointment=draw(st.sampled_from(links)),
                on=(BASE + timedelta(days=draw(st.integers(0, 250)))).isoformat(),
                entry_type=entry_type,
                code=code,
                patient=patient,
                practice=practice,
            )
        )
    return appointments, entries


def history_of(rows: list[tuple[list[A], list[E]]]) -> History:
    return History(
        appointments_frame([appointment for appointments, _ in rows for appointment in appointments]),
        entries_frame([entry for _, entries in rows for entry in entries]),
    )


@st.composite
def histories(draw: st.DrawFn) -> History:
    patients = draw(st.lists(st.sampled_from(PATIENTS), min_size=1, max_size=len(PATIENTS), unique=True))
    return history_of([draw(patient_rows(practice, patient)) for practice, patient in patients])


@st.composite
def changed_histories(draw: st.DrawFn) -> tuple[History, History, set[str]]:
    """A history before and after some patients' rows changed (added, removed, edited)."""
    before: dict[str, tuple[list[A], list[E]]] = {}
    after: dict[str, tuple[list[A], list[E]]] = {}
    changed: set[str] = set()
    for practice, patient in PATIENTS:
        before[patient] = draw(patient_rows(practice, patient))
        if draw(st.booleans()):
            changed.add(patient)
            after[patient] = draw(patient_rows(practice, patient))
        else:
            after[patient] = before[patient]
    return history_of(list(before.values())), history_of(list(after.values())), changed


as_of_days = st.integers(0, 300).map(lambda offset: BASE + timedelta(days=offset))
deal_settings = st.sampled_from(
    [DealSettings(), DealSettings(close_after_days=14), DealSettings(close_after_days=1)]
)


def assert_same(left: DealComputation, right: DealComputation) -> None:
    for table in DealComputation.TABLES:
        # `equals` is the quick check (dtypes, values, NA positions); the slow one explains a difference.
        if not getattr(left, table).equals(getattr(right, table)):
            pd.testing.assert_frame_equal(getattr(left, table), getattr(right, table), obj=table)
            raise AssertionError(f"{table} differs")


@PROPERTY_SETTINGS
@given(history=histories(), as_of=as_of_days, deal_settings=deal_settings)
def test_invariants(history: History, as_of: date, deal_settings: DealSettings) -> None:
    computation = history.compute(as_of, deal_settings)
    deals, members = computation.deals, computation.deal_appointments

    # At most one open deal per patient and practice; every deal but the patient's last is closed.
    assert (deals.groupby(["practice_id", "patient_key"])["is_open"].sum() <= 1).all()
    for _, journey in deals.groupby(["practice_id", "patient_key"]):
        assert not journey["is_open"].iloc[:-1].any()
    assert (
        deals["is_open"] == deals["stage"].isin(["termin_gebucht", "erstberatung", "in_behandlung"])
    ).all()

    # Every non-ignore appointment in exactly one deal, ignore-type ones in none.
    appointments = history.appointments
    non_ignore = appointments.loc[appointments["deal_role"] != "ignore", "appointment_key"]
    assert Counter(members["appointment_key"]) == Counter(non_ignore)

    # Deterministic keys: a deal is keyed by its opening appointment, the first of its members.
    first_member = members.groupby("deal_key", sort=False)["appointment_key"].first()
    assert (deals["deal_key"] == deals["opened_by_appointment_key"]).all()
    assert first_member.reindex(deals["deal_key"]).tolist() == deals["deal_key"].tolist()
    assert deals["deal_key"].is_unique
    assert (
        members.groupby("deal_key").size().reindex(deals["deal_key"]).to_numpy() == deals["num_appointments"]
    ).all()

    # Revenue: buckets and entries add up exactly to the amount; each entry counts at most once.
    amounts = deals.set_index("deal_key")["amount_cents"]
    by_bucket = (
        computation.deal_revenue.groupby("deal_key")["amount_cents"]
        .sum()
        .reindex(amounts.index, fill_value=0)
    )
    by_entry = (
        computation.deal_entries.groupby("deal_key")["amount_cents"]
        .sum()
        .reindex(amounts.index, fill_value=0)
    )
    assert (by_bucket == amounts).all()
    assert (by_entry == amounts).all()
    counted = computation.deal_entries["entry_key"]
    assert counted.is_unique
    assert set(counted).isdisjoint(computation.uncounted_entries["entry_key"])
    assert sorted([*counted, *computation.uncounted_entries["entry_key"]]) == sorted(
        history.entries["entry_key"]
    )
    classified = history.classified.set_index("entry_key")
    assert classified.loc[list(counted), "billable"].all()

    # Stage fields agree with each other.
    closed = deals.loc[~deals["is_open"]]
    assert closed["closed_date"].notna().all()
    assert deals.loc[deals["is_open"], "closed_date"].isna().all()
    assert deals.loc[deals["stage"] != "verloren", "lost_reason"].isna().all()
    in_treatment = deals["stage"] == "in_behandlung"
    assert deals.loc[in_treatment, "behandlungsstart"].notna().all()

    # Contact roll-ups agree with the deals.
    contacts = contact_rollups(appointments, deals, computation.deal_revenue, as_of)
    assert (contacts["num_open_deals"] <= 1).all()
    assert contacts["lifetime_revenue_cents"].sum() == deals["amount_cents"].sum()


@PROPERTY_SETTINGS
@given(history=histories(), as_of=as_of_days, data=st.data())
def test_row_order_does_not_matter(history: History, as_of: date, data: st.DataObject) -> None:
    appointment_order = data.draw(st.permutations(range(len(history.appointments))))
    entry_order = data.draw(st.permutations(range(len(history.entries))))
    shuffled = History(history.appointments.iloc[appointment_order], history.entries.iloc[entry_order])
    assert_same(history.compute(as_of, DealSettings()), shuffled.compute(as_of, DealSettings()))
    assert_same(history.compute(as_of, DealSettings()), history.compute(as_of, DealSettings()))


@PROPERTY_SETTINGS
@given(history=histories(), as_of=as_of_days, data=st.data())
def test_recompute_is_idempotent(history: History, as_of: date, data: st.DataObject) -> None:
    full = history.compute(as_of, DealSettings())
    patients = data.draw(st.sets(st.sampled_from([patient for _, patient in PATIENTS])))
    again = recompute_for_patients(
        full, history.appointments, history.classified, patients, DealSettings(), as_of
    )
    assert_same(again, full)
    twice = recompute_for_patients(
        again, history.appointments, history.classified, patients, DealSettings(), as_of
    )
    assert_same(twice, full)


@PROPERTY_SETTINGS
@given(change=changed_histories(), as_of=as_of_days, deal_settings=deal_settings)
def test_incremental_equals_full_rebuild(
    change: tuple[History, History, set[str]], as_of: date, deal_settings: DealSettings
) -> None:
    before, after, changed = change
    previous = before.compute(as_of, deal_settings)
    incremental = recompute_for_patients(
        previous, after.appointments, after.classified, changed, deal_settings, as_of
    )
    assert_same(incremental, after.compute(as_of, deal_settings))


@PROPERTY_SETTINGS
@given(change=changed_histories(), as_of=as_of_days, later_by=st.integers(0, 120))
def test_incremental_with_a_later_as_of(
    change: tuple[History, History, set[str]], as_of: date, later_by: int
) -> None:
    before, after, changed = change
    previous = before.compute(as_of, DealSettings())
    later = as_of + timedelta(days=later_by)
    patients = changed | patients_awaiting_quiet_period(previous.deals)
    incremental = recompute_for_patients(
        previous, after.appointments, after.classified, patients, DealSettings(), later
    )
    assert_same(incremental, after.compute(later, DealSettings()))


@PROPERTY_SETTINGS
@given(history=histories(), first=as_of_days, second=as_of_days)
def test_membership_does_not_depend_on_as_of(history: History, first: date, second: date) -> None:
    left = history.compute(first, DealSettings())
    right = history.compute(second, DealSettings())
    pd.testing.assert_frame_equal(left.deal_appointments, right.deal_appointments)
    pd.testing.assert_frame_equal(left.deal_entries, right.deal_entries)
