"""Closing confirmed duplicate deals in HubSpot as lost: the portal reads, the reason property and the
batch updates around the pure plan of `biss_pipeline.domain.hubspot.remediation`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from biss_pipeline.domain.hubspot.api import HubSpotApiError
from biss_pipeline.domain.hubspot.client import HubSpotClient
from biss_pipeline.domain.hubspot.ledger import Ledger
from biss_pipeline.domain.hubspot.model import (
    DEALS,
    PROPERTY_GROUP,
    PROPERTY_GROUP_LABEL,
    PropertyDef,
    SyncMapping,
)
from biss_pipeline.domain.hubspot.portal import ensure_portal, portal_spec
from biss_pipeline.domain.hubspot.remediation import (
    REASON_PROPERTY,
    LostStage,
    RemediationPlan,
    plan_remediation,
)
from biss_pipeline.domain.hubspot.verification import (
    METADATA_LIST_LIMIT,
    ledger_deal_ids,
    load_practice_deals,
)
from biss_pipeline.domain.warehouse.store import Warehouse

REASON_PROPERTY_DEF = PropertyDef(
    REASON_PROPERTY,
    "Bereinigungsgrund",
    "string",
    "text",
    False,
    "Warum die Pipeline diesen Deal als Duplikat geschlossen hat (ID des behaltenen Deals)",
)


class RemediationError(RuntimeError):
    """The portal is not in a state the remediation can work with (no sync pipeline yet)."""


@dataclass
class RemediationReport:
    practice_id: str
    dry_run: bool
    plan: RemediationPlan
    closed: list[str] = field(default_factory=list)  # HubSpot confirmed the update
    failed: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # code summaries
    property_created: bool = False

    def as_metadata(self) -> dict[str, Any]:
        plan = self.plan
        return {
            "practice_id": self.practice_id,
            "dry_run": self.dry_run,
            **plan.counts(),
            "closed": len(self.closed),
            "failed": len(self.failed),
            "property_created": self.property_created,
            "closures": [
                {"deal_id": c.deal_id, "kind": c.kind, "kept_deal_id": c.kept_deal_id, "key": c.key}
                for c in plan.closures[:METADATA_LIST_LIMIT]
            ],
            "closed_ids": self.closed[:METADATA_LIST_LIMIT],
            "failed_ids": self.failed[:METADATA_LIST_LIMIT],
            "errors": self.errors[:METADATA_LIST_LIMIT],
            "needs_review": {
                c: list(ids) for c, ids in list(plan.needs_review.items())[:METADATA_LIST_LIMIT]
            },
        }


def lost_stage(client: HubSpotClient, mapping: SyncMapping) -> LostStage:
    """The sync pipeline's closed-lost stage, found the way the portal setup finds it (reads only)."""
    portal = ensure_portal(client, portal_spec(mapping), dry_run=True)
    spec = next(s for s in mapping.pipeline.stages if s.outcome == "lost")
    stage_id = portal.stage_ids.get(spec.stage, "")
    if (
        not portal.pipeline_id
        or portal.pipeline_id.startswith("<")
        or not stage_id
        or stage_id.startswith("<")
    ):
        raise RemediationError(
            "the deal pipeline or its lost stage is not in HubSpot yet; run hubspot/portal_setup first"
        )
    return LostStage(portal.pipeline_id, stage_id)


def ensure_reason_property(client: HubSpotClient) -> bool:
    """Create `biss_remediation_reason` on deals when missing; True when this call created it."""
    if REASON_PROPERTY in client.list_properties(DEALS.api_type):
        return False
    if PROPERTY_GROUP not in client.list_property_groups(DEALS.api_type):
        try:
            client.create_property_group(DEALS.api_type, PROPERTY_GROUP, PROPERTY_GROUP_LABEL)
        except HubSpotApiError as exc:
            if exc.status != 409:  # 409: created meanwhile, or by our own retried write
                raise
    for error in client.create_properties(DEALS.api_type, [REASON_PROPERTY_DEF]):
        if error.status != 409 and error.category != "OBJECT_ALREADY_EXISTS":
            raise RemediationError(f"creating deals.{REASON_PROPERTY} failed: {error.summary}")
    return True


def remediate_practice(
    client: HubSpotClient,
    warehouse: Warehouse,
    practice_id: str,
    mapping: SyncMapping | None = None,
    *,
    dry_run: bool = True,
    batch_size: int = 100,
) -> RemediationReport:
    mapping = mapping or SyncMapping()
    lost = lost_stage(client, mapping)
    deals = load_practice_deals(client, ledger_deal_ids(warehouse, practice_id))
    ledger = Ledger(warehouse).load(practice_id, [DEALS.name]).get(DEALS.name, {})
    ledger_ids = {key: entry.hubspot_id for key, entry in ledger.items() if entry.hubspot_id}
    plan = plan_remediation(deals, practice_id, ledger_ids, lost)
    report = RemediationReport(practice_id, dry_run, plan)
    if dry_run or not plan.closures:
        return report
    report.property_created = ensure_reason_property(client)
    updates = [(c.deal_id, c.properties(lost)) for c in plan.closures]
    for start in range(0, len(updates), batch_size):
        chunk = updates[start : start + batch_size]
        outcome = client.batch_update(DEALS.api_type, chunk)
        confirmed = set(outcome.updated)
        report.closed.extend(i for i, _ in chunk if i in confirmed)
        report.failed.extend(i for i, _ in chunk if i not in confirmed)
        report.errors.extend(e.summary for e in outcome.errors)
    return report
