"""What the checks on `hubspot/<practice_id>/sync` verify: duplicate deals, and the ledger against
HubSpot (the checks themselves are wired in `biss_pipeline.checks.hubspot`):

| check                   | fails                                                                      |
| ----------------------- | -------------------------------------------------------------------------- |
| `duplicate_deals`       | ERROR: one `ivoris_deal_key` on several deals, or a contact with several   |
|                         | open deals; WARN: an open deal without key (the old automation's leftover) |
|                         | sharing a contact with a pipeline deal. Reads the practice's deals *in     |
|                         | HubSpot*, their contacts and those contacts' other deals; the rules are    |
|                         | `domain.hubspot.remediation.find_duplicates`                            |
| `ledger_reconciliation` | ERROR: a ledger row HubSpot confirmed whose object is gone (archived or    |
|                         | deleted) or now carries another key; WARN: objects with a key of the       |
|                         | practice the ledger does not know, or sampled records whose values differ  |
|                         | from the payload the ledger says was sent                                  |

Both run in the `hubspot` pool (one HubSpot client at a time: the rate limit is per app). A check that
cannot read HubSpot raises (the check errored) rather than reporting a pass or a fail it does not know.
Metadata holds counts, HubSpot ids, Ivoris keys and property names — never values or names.

HubSpot reads
-------------
Everything goes through `HubSpotClient` (limiter, retries, statistics):

- Listing a practice's objects: `search` on `biss_practice_id`, keyset-paged on `hs_object_id` (200 a
  page) so the 10,000-results cap of one query never applies. Search is eventually consistent, so a
  listing is only ever used to *find* things; "is this object gone?" is confirmed by a read by id.
- Reads by id: `batch_read` with `idProperty=hs_object_id` (immediately consistent).
- Associations: the client's `read_associations` (v4 batch read); updates by id (remediation):
  the client's `batch_update`.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from biss_pipeline.domain.hubspot.client import HubSpotClient
from biss_pipeline.domain.hubspot.desired import desired_state, read_snapshot
from biss_pipeline.domain.hubspot.diff import CONFIRMED_STATUSES, changed_properties
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
DEFAULT_DRIFT_SAMPLE = 200  # records per object type compared property by property
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
    return client.batch_read(api_type, "hs_object_id", sorted(set(ids)), properties)


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


def load_practice_deals(client: HubSpotClient, practice_id: str) -> list[DealRecord]:
    """The practice's deals as HubSpot has them, plus every other deal of their contacts.

    Old-automation deals carry neither key nor practice id, so they are found through the contacts:
    practice deals → their contacts → all deals of those contacts. That second hop also catches a deal
    the eventually consistent search has not indexed yet, as long as its contact is known. Search only
    finds ids; stage, key and reason come from a read by id, so a deal closed a moment ago (by the
    remediation job, say) is not judged by the search index's older copy.
    """
    closed = closed_stage_ids(client)
    listed = {obj["id"] for obj in search_practice_objects(client, DEALS.api_type, practice_id, [])}
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
    # a listed deal missing from the read was archived in between: it is no duplicate any more
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


def check_duplicates(client: HubSpotClient, practice_id: str) -> tuple[CheckOutcome, DuplicateFindings]:
    findings = find_duplicates(load_practice_deals(client, practice_id), practice_id)
    outcome = duplicate_outcome(findings)
    outcome.metadata["calls"] = client.stats.as_metadata()
    return outcome, findings


# -- reconciliation -----------------------------------------------------------------------------------


def sample_rank(kind: str, key: str) -> str:
    """A stable pseudo-random order: the same keys are sampled every run until the set changes."""
    return hashlib.sha256(f"{kind}:{key}".encode()).hexdigest()


@dataclass
class KindReconciliation:
    ledger_confirmed: int = 0
    hubspot_objects: int = 0
    missing: list[str] = field(default_factory=list)  # keys whose HubSpot object is gone
    key_mismatch: list[str] = field(default_factory=list)  # keys whose object now carries another key
    unknown: list[tuple[str, str]] = field(default_factory=list)  # (hubspot id, key) the ledger lacks
    remediated_skipped: int = 0  # duplicates the remediation closed: known leftovers, not unknown
    pending: int = 0  # ledger hash differs from the desired payload: the next sync writes them
    sampled: int = 0
    sample_keys: list[str] = field(default_factory=list)  # which records were compared (not in metadata)
    drifted: dict[str, list[str]] = field(default_factory=dict)  # key → changed property names

    def as_metadata(self, name: str) -> dict[str, Any]:
        return {
            f"{name}_ledger_confirmed": self.ledger_confirmed,
            f"{name}_hubspot_objects": self.hubspot_objects,
            f"{name}_missing": len(self.missing),
            f"{name}_key_mismatch": len(self.key_mismatch),
            f"{name}_unknown": len(self.unknown),
            f"{name}_sampled": self.sampled,
            f"{name}_drifted": len(self.drifted),
            f"{name}_pending": self.pending,
        }

    def details(self) -> dict[str, Any]:
        return {
            "missing_keys": _limited(self.missing),
            "key_mismatch_keys": _limited(self.key_mismatch),
            "unknown": [{"id": i, "key": k} for i, k in _limited(self.unknown)],
            "drifted": _limited_map(self.drifted),
            "remediated_skipped": self.remediated_skipped,
        }


@dataclass
class Reconciliation:
    practice_id: str
    kinds: dict[str, KindReconciliation] = field(default_factory=dict)
    portal_planned: list[str] = field(default_factory=list)

    @property
    def missing(self) -> int:
        return sum(len(k.missing) + len(k.key_mismatch) for k in self.kinds.values())

    @property
    def unknown(self) -> int:
        return sum(len(k.unknown) for k in self.kinds.values())

    @property
    def drifted(self) -> int:
        return sum(len(k.drifted) for k in self.kinds.values())

    def outcome(self) -> CheckOutcome:
        metadata: dict[str, Any] = {}
        for name, kind in self.kinds.items():
            metadata.update(kind.as_metadata(name))
        metadata["details"] = {name: kind.details() for name, kind in self.kinds.items()}
        if self.portal_planned:
            metadata["portal_not_set_up"] = list(self.portal_planned)
        if self.missing:
            description = (
                f"{self.missing} records the ledger confirmed are gone from HubSpot (or carry another key); "
                "the sync will not re-create them while their content is unchanged"
            )
            return CheckOutcome(False, Severity.ERROR, description, metadata)
        if self.unknown or self.drifted:
            description = (
                f"{self.unknown} HubSpot objects with a practice key unknown to the ledger, "
                f"{self.drifted} sampled records whose values differ from what the sync sent"
            )
            return CheckOutcome(False, Severity.WARN, description, metadata)
        return CheckOutcome(True, Severity.ERROR, "ledger and HubSpot agree", metadata)


def reconcile(
    client: HubSpotClient,
    warehouse: Warehouse,
    practice_id: str,
    mapping: SyncMapping | None = None,
    *,
    sample_size: int = DEFAULT_DRIFT_SAMPLE,
    kinds: Sequence[ObjectKind] = OBJECT_KINDS,
) -> Reconciliation:
    """The ledger against HubSpot, per object kind (see the module docstring)."""
    mapping = mapping or SyncMapping()
    snapshot = read_snapshot(warehouse, practice_id)
    spec = portal_spec(mapping, snapshot.buckets, snapshot.categories)
    # dry run: reads only; gives the pipeline and stage ids the desired payloads carry
    portal: PortalState = ensure_portal(client, spec, dry_run=True)
    desired = desired_state(snapshot, mapping, portal.pipeline_id, portal.stage_ids)
    types = property_types(spec.properties)
    ledger = Ledger(warehouse).load(practice_id, [k.name for k in kinds])
    report = Reconciliation(practice_id, portal_planned=list(portal.planned))

    for kind in kinds:
        result = report.kinds[kind.name] = KindReconciliation()
        entries = ledger.get(kind.name, {})
        known_ids = {e.hubspot_id for e in entries.values() if e.hubspot_id}
        confirmed = {
            key: entry
            for key, entry in entries.items()
            if entry.status in CONFIRMED_STATUSES and entry.hubspot_id
        }
        result.ledger_confirmed = len(confirmed)

        extra = [REASON_PROPERTY] if kind is DEALS else []
        listed = search_practice_objects(client, kind.api_type, practice_id, [kind.id_property, *extra])
        result.hubspot_objects = len(listed)
        listed_keys = {obj["id"]: obj["properties"].get(kind.id_property) for obj in listed}
        for obj in listed:
            key = obj["properties"].get(kind.id_property)
            if not key or obj["id"] in known_ids:
                continue
            if kind is DEALS and obj["properties"].get(REASON_PROPERTY):
                result.remediated_skipped += 1
                continue
            result.unknown.append((obj["id"], str(key)))

        # not in the listing: gone, or just not indexed yet (search lags) — a read by id decides
        unlisted = {e.hubspot_id: key for key, e in confirmed.items()
                    if e.hubspot_id is not None and e.hubspot_id not in listed_keys}
        found = read_by_ids(client, kind.api_type, unlisted, [kind.id_property]) if unlisted else {}
        current_keys = dict(listed_keys)
        current_keys.update({i: props.get(kind.id_property) for i, props in found.items()})
        for key, entry in sorted(confirmed.items()):
            if entry.hubspot_id not in current_keys:
                result.missing.append(key)
            elif current_keys[entry.hubspot_id] != key:
                result.key_mismatch.append(key)

        gone = set(result.missing) | set(result.key_mismatch)
        wanted = desired.records.get(kind.name, {})
        comparable = []
        for key, entry in confirmed.items():
            record = wanted.get(key)
            if key in gone or record is None:
                continue
            if record.content_hash != entry.content_hash:
                result.pending += 1  # HubSpot is meant to differ until the next sync writes it
                continue
            comparable.append((key, entry, record))
        comparable.sort(key=lambda item: sample_rank(kind.name, item[0]))
        sample = comparable[:sample_size]
        result.sampled = len(sample)
        result.sample_keys = [key for key, _, _ in sample]
        if not sample:
            continue
        names = sorted({name for _, _, record in sample for name in record.properties})
        current = read_by_ids(client, kind.api_type,
                              [entry.hubspot_id for _, entry, _ in sample if entry.hubspot_id], names)
        for key, entry, record in sample:
            theirs = current.get(str(entry.hubspot_id))
            if theirs is None:  # archived between the two reads: the next run reports it missing
                continue
            ours = dict(record.properties)
            if kind is CONTACTS and "email_withheld" in (entry.flags or ""):
                ours.pop("email", None)  # the sync deliberately sent no email for this contact
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
    sample_size: int = DEFAULT_DRIFT_SAMPLE,
) -> tuple[CheckOutcome, Reconciliation]:
    report = reconcile(client, warehouse, practice_id, mapping, sample_size=sample_size)
    outcome = report.outcome()
    outcome.metadata["calls"] = client.stats.as_metadata()
    return outcome, report
