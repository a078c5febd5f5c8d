"""Deals and contact roll-ups of one practice, brought up to date in the warehouse by the pure rules
in `biss_pipeline.domain.deals.rules`.

The refresh covers the whole practice: a treatment journey spans many days. It reads the current
staging rows of the practice (the newest version of every key across partitions) and
recomputes only the patients whose inputs changed since its last run, found by comparing a
fingerprint of each patient's staging rows with the one stored last time. A changed mapping
(roles, entry rules, stages, settings) or `full_rebuild` recomputes everyone. Deals whose stage
can change with time alone (the quiet period before "won") are recomputed when the as-of
date moves. Roll-ups (next/last appointment depend on the as-of date) are recomputed in full.

The as-of date is never the wall clock: it is `as_of` from the run config, or else the day of
the newest modification Ivoris reported for the practice, so the same data gives the same
deals whenever the run happens.
"""

import datetime as dt
import hashlib
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import sqlalchemy as sa

from biss_pipeline.domain.deals.contacts import contact_rollups
from biss_pipeline.domain.deals.entry_rules import EntryRule, classify_entries
from biss_pipeline.domain.deals.rules import (
    DealComputation,
    DealSettings,
    compute_deals,
    patients_awaiting_quiet_period,
)
from biss_pipeline.domain.mapping.config import MappingConfig
from biss_pipeline.domain.mapping.practices import PracticeConfig
from biss_pipeline.domain.staging.as_of import practice_as_of
from biss_pipeline.domain.staging.rules import newest_rows
from biss_pipeline.domain.warehouse import schema
from biss_pipeline.domain.warehouse.store import Warehouse

DEAL_TABLES: dict[str, sa.Table] = {
    "deals": schema.deals,
    "deal_appointments": schema.deal_appointments,
    "deal_revenue": schema.deal_revenue,
    "deal_entries": schema.deal_entries,
    "uncounted_entries": schema.uncounted_entries,
}
APPOINTMENT_INPUT = ["appointment_key", "type_key", "start", "end", "status", "modified_at"]
ENTRY_INPUT = ["entry_key", "appointment_key", "entry_date", "entry_type", "code", "amount_cents"]


@dataclass(frozen=True)
class DealRules:
    """What the deal computation needs from the mapping config, for one practice."""

    deal_roles: Mapping[str, str]  # type_key -> lead | treatment | followup | ignore
    entry_rules: Sequence[EntryRule]
    settings: DealSettings
    mapping_hash: str


def deal_rules_for(mapping: MappingConfig, practice: PracticeConfig) -> DealRules:
    """The part of the mapping a practice's deals depend on, with the practice's mapping hash, so
    onboarding another practice does not rebuild this one's deals."""
    roles = {key: role for key, role in mapping.deal_roles.items()
             if key.startswith(practice.key_prefix)}
    return DealRules(deal_roles=roles, entry_rules=mapping.entry_rules, settings=mapping.deal_settings,
                     mapping_hash=mapping.practice_hash(practice.practice_id))


def load_current_inputs(warehouse: Warehouse, practice_id: str,
                        deal_roles: Mapping[str, str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The practice's current appointments (with their deal role) and document entries."""
    def current(table: sa.Table, key: str) -> list[dict[str, Any]]:
        return newest_rows(warehouse.read_rows(sa.select(table).where(table.c.practice_id == practice_id)),
                           key)

    appointments = pd.DataFrame(current(schema.stg_appointments, "appointment_key"),
                                columns=[c.name for c in schema.stg_appointments.columns])
    appointments["deal_role"] = appointments["type_key"].map(deal_roles)
    entries = pd.DataFrame(current(schema.stg_document_entries, "entry_key"),
                           columns=[c.name for c in schema.stg_document_entries.columns])
    return appointments, entries


def input_fingerprints(appointments: pd.DataFrame, entries: pd.DataFrame) -> dict[str, str]:
    """Per patient, a digest of every input row that can influence the patient's deals."""
    def rows_by_patient(frame: pd.DataFrame, columns: list[str]) -> dict[str, list[str]]:
        grouped: dict[str, list[str]] = {}
        records = zip(frame["patient_key"], *(frame[c] for c in columns), strict=True)
        for patient_key, *values in sorted(records, key=lambda r: str(r[1])):
            grouped.setdefault(patient_key, []).append("\x1f".join(map(str, values)))
        return grouped

    appointment_rows = rows_by_patient(appointments, [*APPOINTMENT_INPUT, "deal_role"])
    entry_rows = rows_by_patient(entries, ENTRY_INPUT)
    fingerprints = {}
    for patient_key in appointment_rows.keys() | entry_rows.keys():
        digest = hashlib.blake2b(digest_size=16)
        for text in appointment_rows.get(patient_key, []):
            digest.update(b"A" + text.encode())
        for text in entry_rows.get(patient_key, []):
            digest.update(b"E" + text.encode())
        fingerprints[patient_key] = digest.hexdigest()
    return fingerprints


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """DataFrame rows as plain Python values (NA → None) for SQLAlchemy."""
    return [{k: (None if v is None or (not isinstance(v, str | list) and pd.isna(v)) else v)
             for k, v in row.items()} for row in frame.astype(object).to_dict("records")]


def _table_frame(warehouse: Warehouse, table: sa.Table, practice_id: str) -> pd.DataFrame:
    return pd.DataFrame(warehouse.read_rows(sa.select(table).where(table.c.practice_id == practice_id)),
                        columns=[c.name for c in table.columns])


def _plan(stored: Mapping[str, str], current: Mapping[str, str], watermark: Mapping[str, Any] | None,
          rules: DealRules, as_of: dt.date, full_rebuild: bool,
          awaiting_quiet_period: Callable[[], set[str]]) -> tuple[str, set[str]]:
    """Which patients to recompute, and why."""
    everyone = set(current) | set(stored)
    if full_rebuild:
        return "full rebuild (requested)", everyone
    if watermark is None:
        return "full rebuild (first run)", everyone
    if watermark["mapping_hash"] != rules.mapping_hash:
        return "full rebuild (mapping changed)", everyone
    if as_of < watermark["as_of"]:
        return "full rebuild (as-of moved back)", everyone
    touched = {key for key in everyone if stored.get(key) != current.get(key)}
    if as_of != watermark["as_of"]:
        touched |= awaiting_quiet_period()
    return "incremental", touched


def _write_deals(warehouse: Warehouse, practice_id: str, patients: Iterable[str],
                 computation: DealComputation, fingerprints: Mapping[str, str], as_of: dt.date,
                 mapping_hash: str) -> None:
    patients = list(patients)
    with warehouse.transaction() as connection:
        for start in range(0, max(len(patients), 1), 500):
            chunk = patients[start:start + 500]
            for table in (*DEAL_TABLES.values(), schema.deal_input_fingerprints):
                connection.execute(table.delete().where(table.c.practice_id == practice_id,
                                                        table.c.patient_key.in_(chunk)))
        for name, table in DEAL_TABLES.items():
            rows = _records(getattr(computation, name))
            columns = {c.name for c in table.columns}
            rows = [{k: v for k, v in row.items() if k in columns} for row in rows]
            if rows:
                connection.execute(table.insert(), rows)
        fingerprint_rows = [{"practice_id": practice_id, "patient_key": key, "fingerprint": fingerprints[key]}
                            for key in patients if key in fingerprints]
        if fingerprint_rows:
            connection.execute(schema.deal_input_fingerprints.insert(), fingerprint_rows)
        connection.execute(schema.deal_watermarks.delete().where(
            schema.deal_watermarks.c.practice_id == practice_id))
        connection.execute(schema.deal_watermarks.insert().values(
            practice_id=practice_id, as_of=as_of, mapping_hash=mapping_hash))


def refresh_deals(warehouse: Warehouse, practice_id: str, rules: DealRules, as_of: dt.date | None = None,
                  full_rebuild: bool = False) -> dict[str, Any]:
    """Bring the practice's deal tables and roll-ups up to date; returns figures for metadata."""
    as_of = as_of or practice_as_of(warehouse, practice_id)
    if as_of is None:  # nothing staged yet: no deals, and no date to judge them by
        return {"mode": "no staged data", "as_of": "no data", "patients_recomputed": 0, "patients_total": 0,
                "deals": 0, "deals_by_stage": {}, "amount_eur": "0.00", "contacts": 0}
    appointments, entries = load_current_inputs(warehouse, practice_id, rules.deal_roles)
    current = input_fingerprints(appointments, entries)
    stored = {row["patient_key"]: row["fingerprint"] for row in warehouse.read_rows(
        sa.select(schema.deal_input_fingerprints).where(
            schema.deal_input_fingerprints.c.practice_id == practice_id))}
    watermarks = warehouse.read_rows(sa.select(schema.deal_watermarks).where(
        schema.deal_watermarks.c.practice_id == practice_id))
    watermark = watermarks[0] if watermarks else None
    mode, touched = _plan(
        stored, current, watermark, rules, as_of, full_rebuild,
        lambda: patients_awaiting_quiet_period(_table_frame(warehouse, schema.deals, practice_id)))

    mine = appointments["patient_key"].isin(touched) & (appointments["deal_role"].notna())
    classified = classify_entries(entries.loc[entries["patient_key"].isin(touched)], rules.entry_rules)
    computation = compute_deals(appointments.loc[mine], classified, rules.settings, as_of)
    _write_deals(warehouse, practice_id, sorted(touched), computation, current, as_of, rules.mapping_hash)

    deals = _table_frame(warehouse, schema.deals, practice_id)
    rollups = contact_rollups(appointments.loc[appointments["deal_role"].notna()], deals,
                              _table_frame(warehouse, schema.deal_revenue, practice_id), as_of)
    warehouse.replace_practice_rows(schema.contact_rollups, practice_id, _records(rollups))
    return {
        "mode": mode,
        "as_of": as_of.isoformat(),
        "patients_recomputed": len(touched),
        "patients_total": len(current),
        "deals": len(deals),
        "deals_by_stage": dict(sorted(Counter(deals["stage"]).items())),
        "amount_eur": f"{int(deals['amount_cents'].sum()) / 100:.2f}" if len(deals) else "0.00",
        "contacts": len(rollups),
    }
