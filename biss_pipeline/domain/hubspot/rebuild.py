"""Rebuild a practice's ledger from HubSpot, then re-send what is missing (SPEC §8).

The command a mass disappearance names (`biss-pipeline hubspot rebuild-ledger --practice <id>`), for
after a portal reset or restore, once a person has made sure the portal is the one it should be:

1. portal setup (properties, pipeline: a reset portal needs them again);
2. every key the ledger or the warehouse knows is looked up in HubSpot *by its unique Ivoris key*
   (batch read with `idProperty`, 100 per call; by key, not by record id, because after a restore the
   ids are new);
   - found with the ledger's id: the row stays as it is (its hash still says what HubSpot holds);
   - found with another id: the row takes the new id and loses its hash, so the sync updates it;
   - not found: the row loses id and hash, so the sync creates it;
3. the practice's association rows go (the ids changed; creating a pair that exists is harmless), and
4. one sync run (`verify="written"`) re-sends the missing objects and every association.

Suppressed patients stay suppressed (lift one with `unsuppress`): a reset does not undo an erasure
request. Every row it changes is logged in `hubspot_sync_log` (`rebuild_found`, `rebuild_missing`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from biss_pipeline.domain.hubspot.api import HubSpotApi, HubSpotError
from biss_pipeline.domain.hubspot.desired import desired_state, read_snapshot
from biss_pipeline.domain.hubspot.diff import STATUS_SUPPRESSED
from biss_pipeline.domain.hubspot.engine import SyncAborted, SyncEngine, SyncReport
from biss_pipeline.domain.hubspot.ledger import Ledger, LedgerUpdate, SyncLogEntry
from biss_pipeline.domain.hubspot.model import CONTACTS, OBJECT_KINDS, SyncMapping
from biss_pipeline.domain.hubspot.portal import ensure_portal, portal_spec

if TYPE_CHECKING:
    from biss_pipeline.domain.warehouse.store import Warehouse

logger = logging.getLogger(__name__)


@dataclass
class RebuildReport:
    practice_id: str
    found_same: dict[str, int] = field(default_factory=dict)
    found_moved: dict[str, int] = field(default_factory=dict)
    missing: dict[str, int] = field(default_factory=dict)
    associations_dropped: int = 0
    sync: SyncReport | None = None

    def lines(self) -> list[str]:
        out = [f"rebuild of {self.practice_id}:"]
        for kind in OBJECT_KINDS:
            out.append(
                f"  {kind.name}: {self.found_same.get(kind.name, 0)} found as recorded, "
                f"{self.found_moved.get(kind.name, 0)} found under a new id, "
                f"{self.missing.get(kind.name, 0)} missing (re-sent)"
            )
        out.append(f"  association rows dropped (re-sent): {self.associations_dropped}")
        if self.sync is not None:
            for name, counts in self.sync.objects.items():
                out.append(f"  sync {name}: {counts.hubspot_new} created, {counts.hubspot_updated} updated, "
                           f"{counts.failed} failed")
            added = sum(a.added for a in self.sync.associations.values())
            out.append(f"  sync associations: {added} pairs sent; errors {self.sync.errors}")
        return out


def rebuild_ledger(
    client: HubSpotApi,
    warehouse: Warehouse,
    practice_id: str,
    mapping: SyncMapping | None = None,
    *,
    run_id: str | None = None,
    resend: bool = True,
    **sync_options: Any,
) -> RebuildReport:
    mapping = mapping or SyncMapping()
    report = RebuildReport(practice_id)
    ledger_store = Ledger(warehouse, run_id)
    snapshot = read_snapshot(warehouse, practice_id)
    spec = portal_spec(mapping, snapshot.buckets, snapshot.categories)
    try:
        portal = ensure_portal(client, spec)
    except HubSpotError as exc:
        raise SyncAborted(f"portal setup: {exc}") from None
    ledger = ledger_store.load(practice_id)
    suppressed = {k for k, e in ledger.get(CONTACTS.name, {}).items() if e.status == STATUS_SUPPRESSED}
    desired = desired_state(snapshot, mapping, portal.pipeline_id, portal.stage_ids, suppressed)
    log: list[SyncLogEntry] = []
    for kind in OBJECT_KINDS:
        entries = ledger.get(kind.name, {})
        keys = sorted({*entries, *desired.records[kind.name]} - (suppressed if kind is CONTACTS else set()))
        found = client.batch_read(kind.api_type, kind.id_property, keys, [kind.id_property]) if keys else {}
        moved: list[LedgerUpdate] = []
        gone: list[str] = []
        same = 0
        for key in keys:
            entry = entries.get(key)
            theirs = found.get(key)
            if theirs is None:
                if entry is not None and entry.hubspot_id:
                    gone.append(key)
                continue
            hubspot_id = str(theirs.get("hs_object_id") or "")
            if entry is not None and entry.hubspot_id == hubspot_id:
                same += 1
                continue
            # known under another id (or not in the ledger at all): adopt it, hash unknown → updated
            moved.append(LedgerUpdate(kind.name, key, "synced", content_hash=None, hubspot_id=hubspot_id))
        ledger_store.record(practice_id, moved)
        ledger_store.forget_ids(practice_id, kind.name, gone, "missing in HubSpot at rebuild")
        report.found_same[kind.name] = same
        report.found_moved[kind.name] = len(moved)
        report.missing[kind.name] = len(gone)
        log += [SyncLogEntry("rebuild_found", kind.name, u.record_key, "found under a new id") for u in moved]
        log += [SyncLogEntry("rebuild_missing", kind.name, k, "missing in HubSpot at rebuild") for k in gone]
    report.associations_dropped = ledger_store.delete_practice_associations(practice_id)
    ledger_store.log(practice_id, log)
    logger.info("HubSpot %s ledger rebuilt: %s", practice_id, "; ".join(report.lines()[1:]))
    if resend:
        engine = SyncEngine(client, warehouse, mapping, verify="written", run_id=run_id,
                            mass_missing_min=10**9, **sync_options)
        report.sync = engine.sync_practice(practice_id)
    return report
