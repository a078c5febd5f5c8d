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
    patients_awaiting_quiet_period,
    recompute_for_patients,
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
    "patients_awaiting_quiet_period",
    "recompute_for_patients",
    "unmatched_entries",
]
