"""Properties of the deal computation over generated appointment and entry histories."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, fields, replace
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
    patients_to_recompute,
    recompute_for_patients,
    stale_appointments,
)
from biss_pipeline.domain.deals.rules import LOST_STATUSES, PENDING_STATUSES, UNCOUNTED_REASONS
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
# Small thresholds too, so that every rule fires within the generated 240 days.
deal_settings = st.one_of(
    st.just(DealSettings()),
    st.builds(
        DealSettings,
        close_after_days=st.integers(1, 90),
        lost_after_days=st.integers(1, 150),
        stale_after_days=st.integers(1, 20),
        rebook_days=st.integers(0, 60),
        entry_grace_days=st.integers(0, 60),
    ),
)


def assert_same(left: DealComputation, right: DealComputation) -> None:
    for table in DealComputation.TABLES:
        # `equals` is the quick check (dtypes, values, NA positions); the slow one explains a difference.
        if not getattr(left, table).equals(getattr(right, table)):
            pd.testing.assert_frame_equal(getattr(left, table), getattr(right, table), obj=table)
            raise AssertionError(f"{table} differs")


def days(value: object) -> date:
    return pd.Timestamp(value).date()  # type: ignore[arg-type]


def stale_days(appointments: pd.DataFrame, deal_settings: DealSettings) -> list[date]:
    """The days on which a pending-status, non-ignore appointment becomes stale, sorted."""
    pending = appointments.loc[
        appointments["status"].isin(PENDING_STATUSES) & (appointments["deal_role"] != "ignore"), "start"
    ]
    return sorted({days(start) + timedelta(days=deal_settings.stale_after_days) for start in pending})


@PROPERTY_SETTINGS
@given(history=histories(), as_of=as_of_days, deal_settings=deal_settings)
def test_invariants(history: History, as_of: date, deal_settings: DealSettings) -> None:
    computation = history.compute(as_of, deal_settings)
    deals, members = computation.deals, computation.deal_appointments
    appointment_rows = history.appointments.set_index("appointment_key")

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

    # r2: staleness as of as_of; the driving appointment is the deal's latest non-stale member, and the
    # closing dates follow from it and the settings.
    stale_after = timedelta(days=deal_settings.stale_after_days)
    for appointment_key, is_stale in zip(members["appointment_key"], members["is_stale"], strict=True):
        row = appointment_rows.loc[appointment_key]
        expected = row["status"] in PENDING_STATUSES and days(row["start"]) + stale_after <= as_of
        assert bool(is_stale) == expected, appointment_key
    live_members = members.loc[~members["is_stale"]]
    driving = live_members.groupby("deal_key", sort=False)["appointment_key"].last()
    assert [None if pd.isna(key) else key for key in driving.reindex(deals["deal_key"])] == [
        None if pd.isna(key) else key for key in deals["driving_appointment_key"]
    ]
    assert (deals["reopened_count"] >= 0).all()
    for deal in deals.to_dict("records"):
        driving_key = deal["driving_appointment_key"]
        driving_row = None if pd.isna(driving_key) else appointment_rows.loc[driving_key]
        quiet_from = deal["first_appointment_date"] if driving_row is None else days(driving_row["start"])
        if deal["stage"] == "abgeschlossen":
            assert deal["closed_date"] == quiet_from + timedelta(days=deal_settings.close_after_days)
        elif deal["lost_reason"] == "inactive":
            assert deal["closed_date"] == quiet_from + timedelta(days=deal_settings.lost_after_days)
            assert driving_row is None or driving_row["status"] not in LOST_STATUSES
        elif deal["stage"] == "verloren":
            assert driving_row is not None and deal["lost_reason"] == driving_row["status"]
            assert deal["closed_date"] == quiet_from
        else:
            assert deal["is_open"] and pd.isna(deal["lost_reason"])
    # An open deal has no closing rule that applies as of as_of, unless something pending blocks it.
    for deal in deals.loc[deals["is_open"]].to_dict("records"):
        own = live_members.loc[live_members["deal_key"] == deal["deal_key"], "appointment_key"]
        if appointment_rows.loc[list(own), "status"].isin(PENDING_STATUSES).any():
            continue
        driving_key = deal["driving_appointment_key"]
        driving_row = None if pd.isna(driving_key) else appointment_rows.loc[driving_key]
        quiet_from = deal["first_appointment_date"] if driving_row is None else days(driving_row["start"])
        if deal["stage"] == "in_behandlung":
            assert as_of < quiet_from + timedelta(days=deal_settings.close_after_days)
        else:
            assert driving_row is None or driving_row["status"] not in LOST_STATUSES
            assert as_of < quiet_from + timedelta(days=deal_settings.lost_after_days)

    # The data-quality listing shows exactly the members flagged stale.
    listed = stale_appointments(appointments, deal_settings, as_of)
    assert sorted(listed["appointment_key"]) == sorted(members.loc[members["is_stale"], "appointment_key"])

    # Contact roll-ups agree with the deals.
    contacts = contact_rollups(appointments, deals, computation.deal_revenue, as_of)
    assert (contacts["num_open_deals"] <= 1).all()
    assert contacts["lifetime_revenue_cents"].sum() == deals["amount_cents"].sum()


@PROPERTY_SETTINGS
@given(history=histories(), as_of=as_of_days, deal_settings=deal_settings)
def test_every_billable_entry_is_counted_once_or_listed_with_its_reason(
    history: History, as_of: date, deal_settings: DealSettings
) -> None:
    computation = history.compute(as_of, deal_settings)
    classified = history.classified
    billable = classified.loc[classified["billable"], "entry_key"]
    counted = Counter(computation.deal_entries["entry_key"])
    uncounted = computation.uncounted_entries
    assert set(uncounted["reason"]) <= set(UNCOUNTED_REASONS)
    listed = Counter(
        uncounted.loc[~uncounted["reason"].isin(["not_billable", "unmatched_rule"]), "entry_key"]
    )
    for entry_key in billable:
        assert counted[entry_key] + listed[entry_key] == 1, entry_key
    # Nothing else is counted, and the listed amounts are the entries' own, to the cent.
    assert set(counted) <= set(billable)
    amounts = classified.set_index("entry_key")["amount_cents"]
    assert (uncounted.set_index("entry_key")["amount_cents"] == amounts.reindex(uncounted["entry_key"])).all()
    assert (
        computation.deal_entries["amount_cents"].sum()
        + uncounted.loc[uncounted["entry_key"].isin(billable), "amount_cents"].sum()
        == amounts.loc[list(billable)].sum()
    )


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


unchanged_histories = histories().map(lambda history: (history, history, set[str]()))


def assert_incremental_equals_full_rebuild(
    change: tuple[History, History, set[str]],
    previous: tuple[DealSettings, date],
    new: tuple[DealSettings, date],
) -> None:
    (before, after, changed), (previous_settings, previous_as_of), (settings, as_of) = change, previous, new
    computed = before.compute(previous_as_of, previous_settings)
    patients = changed | patients_to_recompute(
        computed.deals,
        after.appointments,
        previous_settings=previous_settings,
        settings=settings,
        previous_as_of=previous_as_of,
        as_of=as_of,
    )
    incremental = recompute_for_patients(
        computed, after.appointments, after.classified, patients, settings, as_of
    )
    assert_same(incremental, after.compute(as_of, settings))


# Unchanged inputs half the time: changed patients are recomputed anyway and would hide a patient that
# `patients_to_recompute` missed.
some_changes = st.one_of(changed_histories(), unchanged_histories)


@PROPERTY_SETTINGS
@given(change=some_changes, deal_settings=deal_settings, data=st.data())
def test_incremental_equals_full_rebuild_when_as_of_moves(
    change: tuple[History, History, set[str]], deal_settings: DealSettings, data: st.DataObject
) -> None:
    # A wrong recompute set shows around the days on which a booking becomes stale or a deal closes by
    # time (the day before, the day itself, the day after), so both as-of dates are drawn from those days
    # as often as at random, and the second one often close to the first, in either direction.
    def around(days_: Iterable[date]) -> st.SearchStrategy[date]:
        near = sorted({day + timedelta(days=shift) for day in days_ for shift in (-1, 0, 1)})
        return st.one_of(as_of_days, st.sampled_from(near)) if near else as_of_days

    flips = stale_days(change[0].appointments, deal_settings)
    previous_as_of = data.draw(around(flips), label="previous_as_of")
    closings = change[0].compute(previous_as_of, deal_settings).deals["closed_date"].dropna()
    nearby = st.integers(-10, 10).map(lambda delta: previous_as_of + timedelta(days=delta))
    as_of = data.draw(st.one_of(around([*flips, *closings]), nearby), label="as_of")
    assert_incremental_equals_full_rebuild(change, (deal_settings, previous_as_of), (deal_settings, as_of))


@PROPERTY_SETTINGS
@given(
    change=some_changes,
    previous_settings=deal_settings,
    previous_as_of=as_of_days,
    data=st.data(),
)
def test_incremental_equals_full_rebuild_when_settings_move(
    change: tuple[History, History, set[str]],
    previous_settings: DealSettings,
    previous_as_of: date,
    data: st.DataObject,
) -> None:
    # Often only one setting moves, so that each setting's own effect is seen; the as-of may move too.
    one_setting_moved = st.sampled_from([setting.name for setting in fields(DealSettings)]).flatmap(
        lambda name: st.integers(DealSettings.MINIMUM_DAYS[name], 150).map(
            lambda value: replace(previous_settings, **{name: value})
        )
    )
    settings_ = data.draw(
        st.one_of(one_setting_moved, one_setting_moved, one_setting_moved, deal_settings), label="settings"
    )
    as_of = data.draw(st.one_of(st.just(previous_as_of), st.just(previous_as_of), as_of_days), label="as_of")
    assert_incremental_equals_full_rebuild(change, (previous_settings, previous_as_of), (settings_, as_of))


@PROPERTY_SETTINGS
@given(history=histories(), first=as_of_days, deal_settings=deal_settings, data=st.data())
def test_membership_depends_on_as_of_only_through_staleness(
    history: History, first: date, deal_settings: DealSettings, data: st.DataObject
) -> None:
    # Days on which some pending-status appointment becomes stale; between two of them nothing turns
    # stale, so an as-of anywhere in the same stretch must give the same membership and attribution.
    flips = stale_days(history.appointments, deal_settings)
    lower = max([flip for flip in flips if flip <= first], default=first - timedelta(days=400))
    upper = min([flip for flip in flips if flip > first], default=first + timedelta(days=400))
    second = lower + timedelta(days=data.draw(st.integers(0, (upper - lower).days - 1)))
    left = history.compute(first, deal_settings)
    right = history.compute(second, deal_settings)
    pd.testing.assert_frame_equal(left.deal_appointments, right.deal_appointments)
    pd.testing.assert_frame_equal(left.deal_entries, right.deal_entries)
    pd.testing.assert_frame_equal(left.uncounted_entries, right.uncounted_entries)
