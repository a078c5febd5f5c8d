"""Preview of a rule change (SPEC §5, issue 12): the practice's deals computed under the mapping now in
the sheet, compared with the deals in the warehouse. Reads only; writes nothing.

What a person runs before changing, say, `close_after_days` for the whole chain: deals per stage before
and after, the deals that change stage counted by from → to, and the revenue that moves (deal amounts
and the billable euros counted for no deal). The as-of date is the one the deals step would use (the
newest Ivoris modification of the practice, unless given), so the only difference is the mapping.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

import sqlalchemy as sa

from biss_pipeline.domain.deals.entry_rules import classify_entries
from biss_pipeline.domain.deals.quality import NOT_REVENUE_REASONS
from biss_pipeline.domain.deals.refresh import DealRules, load_current_inputs
from biss_pipeline.domain.deals.rules import Stage, compute_deals
from biss_pipeline.domain.staging.as_of import practice_as_of
from biss_pipeline.domain.warehouse import schema
from biss_pipeline.domain.warehouse.store import Warehouse

NO_DEAL = "(no deal)"  # a deal key that exists on one side only


def _eur(cents: int) -> float:
    return round(cents / 100, 2)


def preview_rule_change(warehouse: Warehouse, practice_id: str, rules: DealRules,
                        as_of: dt.date | None = None) -> dict[str, Any]:
    """Deals under `rules` against the stored deals; figures only (stage names, counts, euros)."""
    as_of = as_of or practice_as_of(warehouse, practice_id)
    deals = schema.deals
    before = {row["deal_key"]: (row["stage"], int(row["amount_cents"])) for row in warehouse.read_rows(
        sa.select(deals.c.deal_key, deals.c.stage, deals.c.amount_cents)
        .where(deals.c.practice_id == practice_id))}
    uncounted = schema.uncounted_entries
    uncounted_before = sum(int(row["amount_cents"]) for row in warehouse.read_rows(
        sa.select(uncounted.c.amount_cents).where(uncounted.c.practice_id == practice_id,
                                                  uncounted.c.reason.not_in(sorted(NOT_REVENUE_REASONS)))))
    after: dict[str, tuple[str, int]] = {}
    uncounted_after = 0
    if as_of is not None:
        appointments, entries = load_current_inputs(warehouse, practice_id, rules.deal_roles)
        computation = compute_deals(appointments.loc[appointments["deal_role"].notna()],
                                    classify_entries(entries, rules.entry_rules), rules.settings, as_of)
        after = {key: (stage, int(amount)) for key, stage, amount in zip(
            computation.deals["deal_key"], computation.deals["stage"], computation.deals["amount_cents"],
            strict=True)}
        lost = computation.uncounted_entries
        uncounted_after = int(lost.loc[~lost["reason"].isin(NOT_REVENUE_REASONS), "amount_cents"].sum())

    transitions: Counter[tuple[str, str]] = Counter()
    moved_cents = 0  # the absolute change of every deal's amount: euros that land on another deal
    for key in before.keys() | after.keys():
        old_stage, old_amount = before.get(key, (NO_DEAL, 0))
        new_stage, new_amount = after.get(key, (NO_DEAL, 0))
        if old_stage != new_stage:
            transitions[(old_stage, new_stage)] += 1
        moved_cents += abs(new_amount - old_amount)
    stages = [stage.value for stage in Stage]

    def per_stage(deals_by_key: dict[str, tuple[str, int]]) -> dict[str, int]:
        counts = Counter(stage for stage, _ in deals_by_key.values())
        return {stage: counts.get(stage, 0) for stage in stages}

    def amount(deals_by_key: dict[str, tuple[str, int]]) -> int:
        return sum(cents for _, cents in deals_by_key.values())

    return {
        "as_of": as_of.isoformat() if as_of else None,
        "deals_before": len(before),
        "deals_after": len(after),
        "deals_per_stage_before": per_stage(before),
        "deals_per_stage_after": per_stage(after),
        "stage_changes": sum(transitions.values()),
        "stage_changes_from_to": {f"{old} -> {new}": n for (old, new), n in sorted(transitions.items())},
        "deal_revenue_eur_before": _eur(amount(before)),
        "deal_revenue_eur_after": _eur(amount(after)),
        "revenue_moved_eur": _eur(moved_cents),
        "uncounted_eur_before": _eur(uncounted_before),
        "uncounted_eur_after": _eur(uncounted_after),
    }


def preview_lines(practice_id: str, figures: dict[str, Any]) -> list[str]:
    """The preview as lines for the run's log."""
    before, after = figures["deals_per_stage_before"], figures["deals_per_stage_after"]
    lines = [f"{practice_id}: rule preview as of {figures['as_of']}: {figures['deals_before']} deals now, "
             f"{figures['deals_after']} under the sheet's mapping; {figures['stage_changes']} change stage"]
    lines += [f"  {stage}: {before[stage]} -> {after[stage]}" for stage in before]
    lines += [f"  {change}: {n}" for change, n in figures["stage_changes_from_to"].items()]
    lines.append(f"  deal revenue {figures['deal_revenue_eur_before']:,.2f} -> "
                 f"{figures['deal_revenue_eur_after']:,.2f} EUR (moved {figures['revenue_moved_eur']:,.2f}); "
                 f"uncounted {figures['uncounted_eur_before']:,.2f} -> "
                 f"{figures['uncounted_eur_after']:,.2f} EUR")
    return lines
