"""Pure business logic: entry classification, treatment-journey deals, contact roll-ups.

No Dagster, database or network imports here: plain functions over pandas DataFrames.
"""

from biss_pipeline.domain.deals.contacts import contact_rollups
from biss_pipeline.domain.deals.entry_rules import (
    TREATMENT_CATEGORIES,
    EntryRule,
    classify_entries,
    entry_rule_problems,
    unmatched_entries,
)
from biss_pipeline.domain.deals.rules import (
    STAGE_LABELS,
    DealComputation,
    DealSettings,
    Stage,
    compute_deals,
    key_order,
    patients_awaiting_quiet_period,
    patients_to_recompute,
    recompute_for_patients,
    stale_appointments,
)

__all__ = [
    "STAGE_LABELS",
    "TREATMENT_CATEGORIES",
    "DealComputation",
    "DealSettings",
    "EntryRule",
    "Stage",
    "classify_entries",
    "compute_deals",
    "contact_rollups",
    "entry_rule_problems",
    "key_order",
    "patients_awaiting_quiet_period",
    "patients_to_recompute",
    "recompute_for_patients",
    "stale_appointments",
    "unmatched_entries",
]
