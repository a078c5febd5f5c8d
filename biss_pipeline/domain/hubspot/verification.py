"""What the checks on `hubspot/<practice_id>/sync` verify: duplicate deals, and the ledger against
HubSpot (the checks themselves are wired in `biss_pipeline.checks.hubspot`; the costs are in
`docs/hubspot-sync.md`):

| check                   | fails                                                                      |
| ----------------------- | -------------------------------------------------------------------------- |
| `duplicate_deals`       | ERROR: one `ivoris_deal_key` on several deals, or a contact with several   |
|                         | open deals; WARN: an open deal without key (the old automation's leftover) |
|                         | sharing a contact with a pipeline deal. Reads the ledger's deals by id,    |
|                         | their contacts and those contacts' other deals (no search, so nothing      |
|                         | depends on indexing); the rules are `remediation.find_duplicates`          |
| `ledger_reconciliation` | ERROR: a ledger object HubSpot no longer has (or that now carries another  |
|                         | key), or fewer objects answered than the ledger says exist; WARN: records  |
|                         | whose pipeline-owned values differ from the payload the ledger says was    |
|                         | sent                                                                       |

Scope: a nightly run (`full`) reads every ledger id, 100 per call. Any other run (`written`) reads what
its own run wrote (`hubspot_ledger.last_run_id`) plus a rotating slice of 100 ledger ids per object
type, so every object is read again within ledger size / 100 ticks and a tick that wrote nothing still
verifies something. Neither check passes on an empty read while the ledger has objects.

Both run in the `hubspot` pool (one HubSpot client at a time: the rate limit is per app). A check that
cannot read HubSpot raises (the check errored) rather than reporting a pass or a fail it does not know.
Metadata holds counts, HubSpot ids, Ivoris keys and property names — never values or names.

HubSpot reads
-------------
Everything goes through `HubSpotClient` (limiter, retries, statistics): reads by record id
(`read_by_ids`: batch read without `idProperty`, immediately consistent) and associations (v4 batch
read, paging followed). `search_practice_objects` is kept for people exploring a portal; no check
uses it.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from biss_pipeline.domain.hubspot.client import HubSpotClient
from biss_pipeline.domain.hubspot.desired import desired_state, read_snapshot
from biss_pipeline.domain.hubspot.diff import (
    CONFIRMED_STATUSES,
    STATUS_SUPPRESSED,
    LedgerEntry,
    changed_properties,
)
from biss_pipeline.domain.hubspot.engine import property_types
from biss_pipeline.domain.hubspot.ledger import Ledger
from biss_pipeline.domain.hubspot.model import (
    CONTACTS,
    DEALS,
    OBJECT_KINDS,
    PRACTICE_PROPERTY,
    ObjectKind,
    SyncMapping,
)
from biss_pipeline.domain.hubspot.payloads import FLAG_EMAIL_CONFLICT
from biss_pipeline.domain.hubspot.portal import PortalState, ensure_portal, portal_spec
from biss_pipeline.domain.hubspot.remediation import (
    REASON_PROPERTY,
    DealRecord,
    DuplicateFindings,
    find_duplicates,
)
from biss_pipeline.domain.verdicts import CheckOutcome, Severity
from biss_pipeline.domain.warehouse.store import Warehouse

SEARCH_PAGE = 200  # HubSpot's maximum page size for search
METADATA_LIST_LIMIT = 50  # ids/keys listed in metadata per finding; the counts are always complete
DEAL_READ_PROPERTIES = (DEALS.id_property, PRACTICE_PROPERTY, "dealstage", "pipeline", "createdate")

# -- HubSpot reads and writes on top of the client ----------------------------------------------------


def search_practice_objects(
    client: HubSpotClient, api_type: str, practice_id: str, properties: Sequence[str]
) -> list[dict[str, Any]]:
    """Every object of a type tagged with the practice: `{"id", "properties"}` dicts, by id ascending."""
    found: list[dict[str, Any]] = []
    last_id = 0
    while True:
        page = client.search(
            api_type,
            {
                "filter_groups": [
                    {
                        "filters": [
                            {"propertyName": PRACTICE_PROPERTY, "operator": "EQ", "value": practice_id},
                            {"propertyName": "hs_object_id", "operator": "GT", "value": str(last_id)},
                        ]
                    }
                ],
                # keyset paging: each query starts after the last id seen, so no query reaches the
                # 10,000-result cap that offset paging hits
                "sorts": [{"propertyName": "hs_object_id", "direction": "ASCENDING"}],
                "properties": sorted({*properties, PRACTICE_PROPERTY}),
                "limit": SEARCH_PAGE,
            },
        )
        results = page.get("results") or []
        for result in results:
            found.append({"id": str(result["id"]), "properties": dict(result.get("properties") or {})})
        if len(results) < SEARCH_PAGE:
            return found
        last_id = max(int(r["id"]) for r in results)


def read_by_ids(
    client: HubSpotClient, api_type: str, ids: Iterable[str], properties: Sequence[str]
) -> dict[str, dict[str, str | None]]:
    """Current (not archived) objects by HubSpot id; ids missing from the answer are gone."""
    return client.read_by_ids(api_type, sorted(set(ids)), properties)


def closed_stage_ids(client: HubSpotClient) -> frozenset[str]:
    """Stage ids (of every deal pipeline) HubSpot marks closed: won and lost alike."""
    return frozenset(
        stage.id
        for pipeline in client.list_pipelines()
        for stage in pipeline.stages
        if str(stage.metadata.get("isClosed", "false")).lower() == "true"
    )


def _deal_record(
    deal_id: str, props: Mapping[str, Any], contacts: Iterable[str], closed: frozenset[str]
) -> DealRecord:
    stage = props.get("dealstage") or None
    return DealRecord(
        deal_id=deal_id,
        key=props.get(DEALS.id_property) or None,
        practice_id=props.get(PRACTICE_PROPERTY) or None,
        pipeline_id=props.get("pipeline") or None,
        stage_id=stage,
        is_open=stage not in closed,
        created_at=props.get("createdate") or None,
        contact_ids=frozenset(contacts),
        remediation_reason=props.get(REASON_PROPERTY) or None,
    )


def ledger_deal_ids(warehouse: Warehouse, practice_id: str, run_id: str | None = None) -> list[str]:
    """HubSpot ids of the practice's deals in the ledger; with `run_id` (intraday) the deals that run
    wrote plus a rotating slice of 100 (so a tick that wrote nothing still checks something, and every
    deal is checked again within ledger size / 100 ticks)."""
    ledger = Ledger(warehouse)
    entries = {k: e for k, e in ledger.load(practice_id, [DEALS.name]).get(DEALS.name, {}).items()
               if e.hubspot_id}
    if run_id is None:
        return sorted({str(e.hubspot_id) for e in entries.values()})
    written = ledger.written_by_run(practice_id, DEALS.name, run_id)
    keys = _scope(DEALS.name, entries, run_id, written)
    return sorted({str(entries[k].hubspot_id) for k in keys})


def load_practice_deals(client: HubSpotClient, deal_ids: Iterable[str]) -> list[DealRecord]:
    """The given deals (the ledger's) as HubSpot has them, plus every other deal of their contacts.

    Old-automation deals and copies made behind the ledger's back carry no id the ledger knows, so
    they are found through the contacts: deals → their contacts → all deals of those contacts. Every
    read is by id (associations, then a batch read by record id), so a deal created a moment ago counts
    whether or not search has indexed it. A deal missing from the read was archived: no duplicate.
    """
    closed = closed_stage_ids(client)
    listed = set(deal_ids)
    deal_contacts = client.read_associations("deals", "contacts", sorted(listed))
    contacts = {c for ids in deal_contacts.values() for c in ids}
    contact_deals = client.read_associations("contacts", "deals", sorted(contacts))
    contacts_of: dict[str, set[str]] = defaultdict(set)
    for deal_id, ids in deal_contacts.items():
        contacts_of[deal_id] |= ids
    for contact, ids in contact_deals.items():
        for deal_id in ids:
            contacts_of[deal_id].add(contact)
    ids = listed | {deal_id for ids in contact_deals.values() for deal_id in ids}
    current = (
        read_by_ids(client, DEALS.api_type, ids, [*DEAL_READ_PROPERTIES, REASON_PROPERTY]) if ids else {}
    )
    return [
        _deal_record(deal_id, props, contacts_of.get(deal_id, ()), closed)
        for deal_id, props in sorted(current.items(), key=lambda item: int(item[0]))
    ]


# -- check outcomes -----------------------------------------------------------------------------------


def _limited(items: Sequence[Any]) -> list[Any]:
    return list(items[:METADATA_LIST_LIMIT])


def _limited_map(mapping: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    return {k: list(v) for k, v in list(mapping.items())[:METADATA_LIST_LIMIT]}


def duplicate_outcome(findings: DuplicateFindings) -> CheckOutcome:
    metadata: dict[str, Any] = {
        "deals_read": findings.deals_read,
        "pipeline_deals": findings.pipeline_deals,
        "keyless_deals": findings.keyless_deals,
        "remediated_deals": len(findings.remediated),
        "duplicate_keys": len(findings.duplicate_keys),
        "contacts_with_multiple_open_deals": len(findings.multi_open_contacts),
        "keyless_open_deals": len(findings.keyless_open),
        "duplicate_deal_ids": _limited(findings.duplicate_deal_ids),
        "duplicate_keys_detail": _limited_map(findings.duplicate_keys),
        "multiple_open_deals_by_contact": _limited_map(findings.multi_open_contacts),
        "keyless_open_deals_detail": _limited_map(findings.keyless_open),
    }
    if findings.has_errors:
        description = (
            f"{len(findings.duplicate_keys)} keys on more than one deal, "
            f"{len(findings.multi_open_contacts)} contacts with more than one open deal"
        )
        return CheckOutcome(False, Severity.ERROR, description, metadata)
    if findings.has_warnings:
        description = (
            f"{len(findings.keyless_open)} open deals without ivoris_deal_key next to pipeline deals"
        )
        return CheckOutcome(False, Severity.WARN, description, metadata)
    return CheckOutcome(True, Severity.ERROR, "no duplicate deals", metadata)


def check_duplicates(
    client: HubSpotClient, warehouse: Warehouse, practice_id: str, run_id: str | None = None
) -> tuple[CheckOutcome, DuplicateFindings]:
    """`run_id` (intraday) limits the read to the deals that run wrote and their contacts' deals; without
    it every ledger deal is read. Fails when fewer of the ledger's deals answered than were asked for:
    a check that could not see the deals it judges has not checked them."""
    expected = ledger_deal_ids(warehouse, practice_id, run_id)
    deals = load_practice_deals(client, expected)
    findings = find_duplicates(deals, practice_id)
    outcome = duplicate_outcome(findings)
    answered = len(set(expected) & {d.deal_id for d in deals})
    outcome.metadata.update({"scope": "written" if run_id else "full", "ledger_deals": len(expected),
                             "ledger_deals_read": answered})
    if answered < len(expected) and outcome.passed:
        outcome = CheckOutcome(
            False, Severity.ERROR,
            f"read {answered} of the {len(expected)} deals the ledger says exist: the rest are gone from "
            "HubSpot (the nightly reconciliation re-creates them)",
            outcome.metadata,
        )
    outcome.metadata["calls"] = client.stats.as_metadata()
    return outcome, findings


# -- reconciliation -----------------------------------------------------------------------------------


def sample_rank(kind: str, key: str) -> str:
    """A stable pseudo-random order: the same keys are sampled every run until the set changes."""
    return hashlib.sha256(f"{kind}:{key}".encode()).hexdigest()


@dataclass
class KindReconciliation:
    ledger_objects: int = 0  # ledger rows with a HubSpot id (not suppressed): what exists, says the ledger
    asked: int = 0  # of those, read by id in this check (all of them nightly)
    hubspot_objects: int = 0  # of asked: answered by HubSpot
    missing: list[str] = field(default_factory=list)  # keys whose HubSpot object is gone
    key_mismatch: list[str] = field(default_factory=list)  # keys whose object now carries another key
    pending: int = 0  # ledger hash differs from the desired payload: the next sync writes them
    compared: int = 0
    drifted: dict[str, list[str]] = field(default_factory=dict)  # key → changed property names
    asked_keys: list[str] = field(default_factory=list)  # which records were read (not in metadata)

    @property
    def short_read(self) -> bool:
        """Fewer objects answered than were asked for: this check did not see what it judges."""
        return self.hubspot_objects < self.asked

    def as_metadata(self, name: str) -> dict[str, Any]:
        return {
            f"{name}_ledger_objects": self.ledger_objects,
            f"{name}_asked": self.asked,
            f"{name}_hubspot_objects": self.hubspot_objects,
            f"{name}_missing": len(self.missing),
            f"{name}_key_mismatch": len(self.key_mismatch),
            f"{name}_compared": self.compared,
            f"{name}_drifted": len(self.drifted),
            f"{name}_pending": self.pending,
        }

    def details(self) -> dict[str, Any]:
        return {
            "missing_keys": _limited(self.missing),
            "key_mismatch_keys": _limited(self.key_mismatch),
            "drifted": _limited_map(self.drifted),
        }


@dataclass
class Reconciliation:
    practice_id: str
    scope: str = "full"
    kinds: dict[str, KindReconciliation] = field(default_factory=dict)
    portal_planned: list[str] = field(default_factory=list)
    suppressed: list[str] = field(default_factory=list)

    @property
    def missing(self) -> int:
        return sum(len(k.missing) + len(k.key_mismatch) for k in self.kinds.values())

    @property
    def drifted(self) -> int:
        return sum(len(k.drifted) for k in self.kinds.values())

    @property
    def ledger_objects(self) -> int:
        return sum(k.ledger_objects for k in self.kinds.values())

    @property
    def read(self) -> int:
        return sum(k.hubspot_objects for k in self.kinds.values())

    def outcome(self) -> CheckOutcome:
        metadata: dict[str, Any] = {"scope": self.scope, "ledger_objects": self.ledger_objects,
                                    "objects_read": self.read, "suppressed_patients": len(self.suppressed)}
        for name, kind in self.kinds.items():
            metadata.update(kind.as_metadata(name))
        metadata["details"] = {name: kind.details() for name, kind in self.kinds.items()}
        if self.portal_planned:
            metadata["portal_not_set_up"] = list(self.portal_planned)
        if self.missing or any(k.short_read for k in self.kinds.values()):
            description = (
                f"{self.missing} records of the ledger are gone from HubSpot (or carry another key); read "
                f"{self.read} of the {sum(k.asked for k in self.kinds.values())} objects asked for. The "
                "nightly reconciliation re-creates deals and appointments and suppresses deleted contacts"
            )
            return CheckOutcome(False, Severity.ERROR, description, metadata)
        if self.ledger_objects and not self.read:
            return CheckOutcome(False, Severity.ERROR, "the ledger has objects but none was read", metadata)
        if self.drifted:
            description = f"{self.drifted} records whose pipeline-owned values differ from what the sync sent"
            return CheckOutcome(False, Severity.WARN, description, metadata)
        return CheckOutcome(True, Severity.ERROR,
                            f"ledger and HubSpot agree ({self.read} of {self.ledger_objects} objects read)",
                            metadata)


ROTATING_SLICE = 100  # ledger ids per object type an intraday check reads besides its run's writes


def _scope(
    kind: str,
    entries: Mapping[str, LedgerEntry],
    run_id: str | None,
    written: Mapping[str, str],
) -> list[str]:
    keys = sorted(entries)
    if run_id is None:
        return keys
    ranked = sorted(keys, key=lambda k: sample_rank(kind, k))
    if not ranked:
        return []
    offset = int(hashlib.sha256(run_id.encode()).hexdigest(), 16) % len(ranked)
    rotating = (ranked[offset:] + ranked[:offset])[:ROTATING_SLICE]
    return sorted({*written, *rotating} & set(entries))


def reconcile(
    client: HubSpotClient,
    warehouse: Warehouse,
    practice_id: str,
    mapping: SyncMapping | None = None,
    *,
    run_id: str | None = None,
    kinds: Sequence[ObjectKind] = OBJECT_KINDS,
) -> Reconciliation:
    """The ledger against HubSpot by record id (see the module docstring). `run_id` given: the
    intraday scope (that run's writes plus a rotating slice); None: every ledger object."""
    mapping = mapping or SyncMapping()
    snapshot = read_snapshot(warehouse, practice_id)
    spec = portal_spec(mapping, snapshot.buckets, snapshot.categories)
    # dry run: reads only; gives the pipeline and stage ids the desired payloads carry
    portal: PortalState = ensure_portal(client, spec, dry_run=True)
    ledger_store = Ledger(warehouse)
    ledger = ledger_store.load(practice_id, [k.name for k in kinds])
    suppressed = sorted(k for k, e in ledger.get(CONTACTS.name, {}).items() if e.status == STATUS_SUPPRESSED)
    desired = desired_state(snapshot, mapping, portal.pipeline_id, portal.stage_ids, suppressed)
    types = property_types(spec.properties)
    report = Reconciliation(practice_id, "written" if run_id else "full",
                            portal_planned=list(portal.planned), suppressed=suppressed)

    for kind in kinds:
        result = report.kinds[kind.name] = KindReconciliation()
        entries = {
            key: entry for key, entry in ledger.get(kind.name, {}).items()
            if entry.hubspot_id and entry.status != STATUS_SUPPRESSED
        }
        result.ledger_objects = len(entries)
        written = ledger_store.written_by_run(practice_id, kind.name, run_id) if run_id else {}
        keys = _scope(kind.name, entries, run_id, written)
        result.asked = len(keys)
        result.asked_keys = keys
        if not keys:
            continue
        wanted = desired.records.get(kind.name, {})
        names = sorted({n for k in keys if k in wanted for n in wanted[k].properties} | {kind.id_property})
        current = read_by_ids(client, kind.api_type, [str(entries[k].hubspot_id) for k in keys], names)
        result.hubspot_objects = sum(1 for k in keys if str(entries[k].hubspot_id) in current)
        for key in keys:
            entry = entries[key]
            theirs = current.get(str(entry.hubspot_id))
            if theirs is None:
                result.missing.append(key)
                continue
            if (theirs.get(kind.id_property) or key) != key:
                result.key_mismatch.append(key)
                continue
            record = wanted.get(key)
            if record is None:
                continue  # stale: no longer wanted, left alone
            if entry.status not in CONFIRMED_STATUSES or record.content_hash != entry.content_hash:
                result.pending += 1  # HubSpot is meant to differ until the next sync writes it
                continue
            ours = dict(record.properties)
            if kind is CONTACTS and FLAG_EMAIL_CONFLICT in (entry.flags or ""):
                ours.pop("email", None)  # HubSpot refused the address; the sync sent none
            result.compared += 1
            changed = changed_properties(ours, theirs, types)
            if changed:
                result.drifted[key] = changed
    return report


def check_reconciliation(
    client: HubSpotClient,
    warehouse: Warehouse,
    practice_id: str,
    mapping: SyncMapping | None = None,
    *,
    run_id: str | None = None,
) -> tuple[CheckOutcome, Reconciliation]:
    report = reconcile(client, warehouse, practice_id, mapping, run_id=run_id)
    outcome = report.outcome()
    outcome.metadata["calls"] = client.stats.as_metadata()
    return outcome, report


def suppressed_outcome(warehouse: Warehouse, practice_id: str) -> CheckOutcome:
    """SPEC §8: the patients whose contact was deleted in HubSpot, so nothing of theirs is sent. WARN
    while any exist (a person decides: erasure request, or a mistake to lift with the command)."""
    keys = Ledger(warehouse).suppressed(practice_id)
    metadata: dict[str, Any] = {"suppressed_patients": len(keys), "patient_keys": _limited(keys),
                                "lift_with": "biss-pipeline hubspot unsuppress --practice "
                                             f"{practice_id} --patient <key>"}
    if keys:
        return CheckOutcome(False, Severity.WARN,
                            f"{len(keys)} patients suppressed: their HubSpot contact was deleted", metadata)
    return CheckOutcome(True, Severity.WARN, "no suppressed patients", metadata)
