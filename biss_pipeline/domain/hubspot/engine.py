"""The sync engine: one practice's warehouse state → HubSpot, diff-based, batched, idempotent.

Run order: portal check (idempotent setup), contacts, deals, appointments, then associations
(contact–deal, deal–appointment, contact–appointment) between objects that have HubSpot ids.

Writes
------
- Only records whose content hash differs from the ledger's, or whose last attempt failed, are
  sent; an unchanged practice costs read calls for the portal check and no write call at all.
- Every object write is a batch *upsert* on the unique Ivoris key (never a search, never a create),
  at most `batch_size` ≤ 100 distinct keys per call. HubSpot ids come from the upsert results; a
  record is marked synced only when HubSpot returned it.
- A lost response (HubSpot committed, the client saw a 502) is retried by the client; the repeat
  upsert finds the objects by key, so nothing is duplicated.

Errors
------
| what                                       | handling                                                  |
| ------------------------------------------ | --------------------------------------------------------- |
| 207 with per-row errors                    | those rows → ledger `error` (attempts+1, code summary);   |
|                                            | the rest are synced. Error rows are retried next run      |
| whole batch 409 (unique conflict) or a 400 | bisect the batch until the offending rows are alone;      |
| over one record's value                    | they become row errors, the others are synced             |
| contact email owned by another contact     | the contact is written without email, flagged             |
| (`Contact already exists`) or invalid      | `email_withheld_conflict` / `_invalid` (status `flagged`) |
| systemic 4xx (auth, missing property…)     | `SyncAborted`: every later record would fail the same way |
| transient errors after all retries         | the batch's rows → `error`; `max_failed_batches` such     |
|                                            | batches in a row abort the run (HubSpot is down)          |

The ledger is written after every batch, so an aborted run resumes where it stopped.

Dry run: the same plan, no write call and no ledger write; the report holds counts per object and
action and sample diffs (keys and changed property *names*, read from HubSpot; never values).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from biss_pipeline.domain.hubspot.api import (
    ErrorInfo,
    HubSpotApi,
    HubSpotApiError,
    HubSpotError,
    HubSpotTransientError,
    UpsertInput,
    UpsertResult,
)
from biss_pipeline.domain.hubspot.desired import desired_state, read_snapshot
from biss_pipeline.domain.hubspot.diff import (
    STATUS_ERROR,
    STATUS_FLAGGED,
    STATUS_SYNCED,
    AssociationPlan,
    PairWrite,
    PlannedWrite,
    RecordPlan,
    changed_properties,
    chunks,
    dedupe_writes,
    plan_associations,
    plan_records,
)
from biss_pipeline.domain.hubspot.ledger import Ledger, LedgerUpdate
from biss_pipeline.domain.hubspot.model import (
    ASSOCIATION_KINDS,
    CONTACTS,
    HUBSPOT_DEFINED_TYPES,
    OBJECT_KINDS,
    AssociationKind,
    ObjectKind,
    SyncMapping,
)
from biss_pipeline.domain.hubspot.payloads import FLAG_EMAIL_CONFLICT, FLAG_EMAIL_INVALID
from biss_pipeline.domain.hubspot.portal import PortalState, ensure_portal, portal_spec

if TYPE_CHECKING:
    from biss_pipeline.domain.warehouse.store import Warehouse

logger = logging.getLogger(__name__)

NOT_CONFIRMED = "not confirmed by HubSpot"
ASSOCIATION_END_MISSING = "association end missing in HubSpot"


class SyncAborted(RuntimeError):
    """The run stopped early; everything HubSpot confirmed before is in the ledger. `report` holds the
    counts up to the stop (set by `SyncEngine.sync_practice`)."""

    report: SyncReport | None = None


@dataclass
class ObjectReport:
    create: int = 0  # planned: not in HubSpot as far as the ledger knows
    update: int = 0  # planned: changed content or a failed last attempt
    unchanged: int = 0
    retrying: int = 0  # of create + update: the previous attempt failed
    stale: int = 0  # in the ledger, no longer in the warehouse (left alone)
    hubspot_new: int = 0  # confirmed, HubSpot created the object
    hubspot_updated: int = 0  # confirmed, HubSpot updated an existing object
    failed: int = 0
    flagged: int = 0  # confirmed with something withheld
    email_withheld: int = 0  # of flagged: email dropped after HubSpot refused it


@dataclass
class AssociationReport:
    add: int = 0
    unchanged: int = 0
    waiting: int = 0  # an end has no HubSpot id (its write failed, or dry run before creation)
    remove: int = 0
    added: int = 0
    removed: int = 0
    failed: int = 0


@dataclass
class SyncReport:
    practice_id: str
    dry_run: bool
    objects: dict[str, ObjectReport] = field(default_factory=dict)
    associations: dict[str, AssociationReport] = field(default_factory=dict)
    samples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    portal: PortalState | None = None
    calls: dict[str, Any] = field(default_factory=dict)

    @property
    def errors(self) -> int:
        return sum(o.failed for o in self.objects.values()) + sum(
            a.failed for a in self.associations.values()
        )

    def as_metadata(self) -> dict[str, Any]:
        """Flat counts (readable in the Dagster UI) plus the details as JSON-able values."""
        metadata: dict[str, Any] = {
            "practice_id": self.practice_id,
            "dry_run": self.dry_run,
            "errors": self.errors,
        }
        for name, counts in self.objects.items():
            for action, value in asdict(counts).items():
                metadata[f"{name}_{action}"] = value
        for name, pairs in self.associations.items():
            short = name.removeprefix("association:").replace(":", "_")
            for action, value in asdict(pairs).items():
                metadata[f"assoc_{short}_{action}"] = value
        metadata["write_calls"] = self.calls.get("write_calls", 0)
        metadata["calls"] = dict(self.calls)
        if self.portal is not None:
            metadata["portal"] = self.portal.as_metadata()
        if self.samples:
            metadata["samples"] = self.samples
        return metadata


class SyncEngine:
    def __init__(
        self,
        client: HubSpotApi,
        warehouse: Warehouse,
        mapping: SyncMapping | None = None,
        *,
        batch_size: int = 100,
        dry_run: bool = False,
        sample_size: int = 5,
        max_failed_batches: int = 3,
    ) -> None:
        if not 1 <= batch_size <= 100:
            raise ValueError("batch_size must be within 1..100")
        self.client = client
        self.warehouse = warehouse
        self.ledger = Ledger(warehouse)
        self.mapping = mapping or SyncMapping()
        self.batch_size = batch_size
        self.dry_run = dry_run
        self.sample_size = sample_size
        self.max_failed_batches = max_failed_batches
        self._failed_batches = 0

    # ------------------------------------------------------------------ run

    def sync_practice(self, practice_id: str) -> SyncReport:
        report = SyncReport(practice_id, self.dry_run)
        try:
            self._run(practice_id, report)
        except SyncAborted as exc:
            exc.report = report
            raise
        finally:
            stats = getattr(self.client, "stats", None)
            if stats is not None:
                report.calls = stats.as_metadata()
            self._log_summary(report)
        return report

    def _run(self, practice_id: str, report: SyncReport) -> None:
        snapshot = read_snapshot(self.warehouse, practice_id)
        spec = portal_spec(self.mapping, snapshot.buckets, snapshot.categories)
        try:
            portal = ensure_portal(self.client, spec, dry_run=self.dry_run)
        except HubSpotError as exc:
            raise SyncAborted(f"portal setup: {exc}") from None
        report.portal = portal
        desired = desired_state(snapshot, self.mapping, portal.pipeline_id, portal.stage_ids)
        ledger = self.ledger.load(practice_id)
        types = property_types(spec.properties)

        for kind in OBJECT_KINDS:
            plan = plan_records(desired.records[kind.name], ledger.get(kind.name, {}))
            counts = report.objects[kind.name] = ObjectReport(
                create=plan.count("create"),
                update=plan.count("update"),
                unchanged=len(plan.unchanged),
                retrying=plan.retries,
                stale=len(plan.stale),
            )
            if self.dry_run:
                report.samples[kind.name] = self._samples(kind, plan, types)
            else:
                self._write_records(practice_id, kind, plan, counts)

        if not self.dry_run:
            ledger = self.ledger.load(practice_id)
        ids = {
            kind.name: {
                key: entry.hubspot_id for key, entry in ledger.get(kind.name, {}).items() if entry.hubspot_id
            }
            for kind in OBJECT_KINDS
        }
        for pair_kind in ASSOCIATION_KINDS:
            association = portal.association(pair_kind)  # the type id read from the portal's labels
            plan_pairs = plan_associations(
                desired.pairs[association.name],
                ids[association.source.name],
                ids[association.target.name],
                ledger.get(association.name, {}),
                association.type_id,
                live_keys=(
                    desired.records[association.source.name].keys(),
                    desired.records[association.target.name].keys(),
                ),
            )
            counts_a = report.associations[association.name] = AssociationReport(
                add=len(plan_pairs.add),
                unchanged=len(plan_pairs.unchanged),
                waiting=len(plan_pairs.waiting),
                remove=len(plan_pairs.remove),
            )
            if self.dry_run:
                # pairs waiting for an object the run would create are added by a real run
                counts_a.add += counts_a.waiting
            else:
                self._write_associations(practice_id, association, plan_pairs, counts_a)

    # ------------------------------------------------------------------ records

    def _write_records(
        self, practice_id: str, kind: ObjectKind, plan: RecordPlan, counts: ObjectReport
    ) -> None:
        for batch in chunks(dedupe_writes(plan.writes), self.batch_size):
            updates: list[LedgerUpdate] = []
            try:
                withheld: list[PlannedWrite] = []
                self._upsert(kind, batch, updates, counts, withheld)
                for retry in chunks(withheld, self.batch_size):
                    self._upsert(kind, retry, updates, counts, None)
            finally:
                self.ledger.record(practice_id, updates)

    def _upsert(
        self,
        kind: ObjectKind,
        writes: Sequence[PlannedWrite],
        updates: list[LedgerUpdate],
        counts: ObjectReport,
        withheld: list[PlannedWrite] | None,
    ) -> None:
        """Send one batch; bisect it when HubSpot rejects it as a whole over one record."""
        inputs = [UpsertInput(w.key, w.properties) for w in writes]
        try:
            outcome = self.client.batch_upsert(kind.api_type, kind.id_property, inputs)
        except HubSpotTransientError as exc:
            self._batch_failed(kind, writes, exc.info, updates, counts)
            return
        except HubSpotApiError as exc:
            info = exc.info
            if info.is_systemic:
                raise SyncAborted(f"{kind.name}: {info.summary}") from None
            if len(writes) > 1 and (info.is_per_record or info.status == 400):
                middle = len(writes) // 2
                self._upsert(kind, writes[:middle], updates, counts, withheld)
                self._upsert(kind, writes[middle:], updates, counts, withheld)
                return
            for write in writes:
                self._row_failed(kind, write, info, updates, counts, withheld)
            return
        self._failed_batches = 0

        confirmed = {result.key: result for result in outcome.results}
        keys = {w.key for w in writes}
        errors = {e.key: e.info for e in outcome.errors if e.key in keys}
        unmapped = [e.info for e in outcome.errors if e.key not in keys]
        unconfirmed: list[PlannedWrite] = []
        for write in writes:
            if write.key in confirmed:
                self._row_confirmed(kind, write, confirmed[write.key], updates, counts)
            elif write.key in errors:
                self._row_failed(kind, write, errors[write.key], updates, counts, withheld)
            else:
                unconfirmed.append(write)
        if not unconfirmed:
            return
        if len(unconfirmed) == 1 and len(unmapped) == 1:
            self._row_failed(kind, unconfirmed[0], unmapped[0], updates, counts, withheld)
        elif unmapped and len(unconfirmed) > 1:
            # errors HubSpot did not attribute: re-send the unconfirmed rows in halves to pin them down
            middle = len(unconfirmed) // 2
            self._upsert(kind, unconfirmed[:middle], updates, counts, withheld)
            self._upsert(kind, unconfirmed[middle:], updates, counts, withheld)
        else:
            info = unmapped[0] if unmapped else ErrorInfo(status=0, category=NOT_CONFIRMED)
            for write in unconfirmed:
                self._row_failed(kind, write, info, updates, counts, withheld)

    def _row_confirmed(
        self,
        kind: ObjectKind,
        write: PlannedWrite,
        result: UpsertResult,
        updates: list[LedgerUpdate],
        counts: ObjectReport,
    ) -> None:
        flags = write.flags
        updates.append(
            LedgerUpdate(
                kind.name,
                write.key,
                STATUS_FLAGGED if flags else STATUS_SYNCED,
                content_hash=write.record.content_hash,
                hubspot_id=result.hubspot_id,
                flags=",".join(flags) or None,
            )
        )
        if result.new:
            counts.hubspot_new += 1
        else:
            counts.hubspot_updated += 1
        if flags:
            counts.flagged += 1

    def _row_failed(
        self,
        kind: ObjectKind,
        write: PlannedWrite,
        info: ErrorInfo,
        updates: list[LedgerUpdate],
        counts: ObjectReport,
        withheld: list[PlannedWrite] | None,
    ) -> None:
        if (
            kind is CONTACTS
            and withheld is not None
            and "email" in write.properties
            and (info.email_conflict or "email" in info.problem_properties)
        ):
            # a family's shared address, or one HubSpot rejects: the contact matters more than its email
            flag = FLAG_EMAIL_CONFLICT if info.email_conflict else FLAG_EMAIL_INVALID
            withheld.append(write.without("email", flag))
            counts.email_withheld += 1
            logger.info("HubSpot %s %s: email withheld (%s)", kind.name, write.key, info.summary)
            return
        updates.append(LedgerUpdate(kind.name, write.key, STATUS_ERROR, error=info.summary))
        counts.failed += 1
        logger.warning("HubSpot %s %s failed: %s", kind.name, write.key, info.summary)

    def _batch_failed(
        self,
        kind: ObjectKind,
        writes: Sequence[PlannedWrite],
        info: ErrorInfo,
        updates: list[LedgerUpdate],
        counts: ObjectReport,
    ) -> None:
        for write in writes:
            updates.append(LedgerUpdate(kind.name, write.key, STATUS_ERROR, error=info.summary))
        counts.failed += len(writes)
        self._failed_batches += 1
        logger.warning(
            "HubSpot %s batch of %d failed after retries: %s", kind.name, len(writes), info.summary
        )
        if self._failed_batches >= self.max_failed_batches:
            raise SyncAborted(f"{self._failed_batches} batches in a row failed after retries: {info.summary}")

    # ------------------------------------------------------------------ associations

    def _write_associations(
        self, practice_id: str, association: AssociationKind, plan: AssociationPlan, counts: AssociationReport
    ) -> None:
        source, target = association.source, association.target
        for batch in chunks(plan.add, self.batch_size):
            updates: list[LedgerUpdate] = []
            try:
                self._associate(association, batch, updates, counts)
            finally:
                self.ledger.record(practice_id, updates)
        for batch_remove in chunks(plan.remove, self.batch_size):
            try:
                self.client.archive_associations(
                    source.api_type, target.api_type, [(s, t) for _, s, t in batch_remove]
                )
            except (HubSpotTransientError, HubSpotApiError) as exc:
                if isinstance(exc, HubSpotApiError) and exc.info.is_systemic:
                    raise SyncAborted(f"{association.name}: {exc.info.summary}") from None
                logger.warning(
                    "HubSpot %s: removing %d pairs failed: %s",
                    association.name,
                    len(batch_remove),
                    exc.info.summary,
                )
                continue
            self.ledger.delete(association.name, [key for key, _, _ in batch_remove])
            counts.removed += len(batch_remove)

    def _associate(
        self,
        association: AssociationKind,
        batch: Sequence[PairWrite],
        updates: list[LedgerUpdate],
        counts: AssociationReport,
    ) -> None:
        source, target = association.source, association.target
        try:
            outcome = self.client.create_associations(
                source.api_type, target.api_type, association.type_id, [pair.ids for pair in batch]
            )
        except HubSpotError as exc:
            if exc.info.is_systemic or not isinstance(exc, HubSpotTransientError | HubSpotApiError):
                raise SyncAborted(f"{association.name}: {exc.info.summary}") from None
            for pair in batch:
                updates.append(LedgerUpdate(association.name, pair.key, STATUS_ERROR, error=exc.info.summary))
            counts.failed += len(batch)
            if isinstance(exc, HubSpotTransientError):
                self._failed_batches += 1
                if self._failed_batches >= self.max_failed_batches:
                    raise SyncAborted(
                        f"{self._failed_batches} batches in a row failed after retries"
                    ) from None
            return
        self._failed_batches = 0
        errors = {e.pair: e for e in outcome.errors if e.pair is not None}
        for pair in batch:
            if pair.ids in outcome.created:
                updates.append(
                    LedgerUpdate(
                        association.name,
                        pair.key,
                        STATUS_SYNCED,
                        content_hash=pair.content_hash,
                        hubspot_id=pair.hubspot_id,
                    )
                )
                counts.added += 1
                continue
            error = errors.get(pair.ids)
            summary = error.info.summary if error is not None else NOT_CONFIRMED
            updates.append(LedgerUpdate(association.name, pair.key, STATUS_ERROR, error=summary))
            counts.failed += 1
            logger.warning("HubSpot %s %s failed: %s", association.name, pair.key, summary)
            if error is not None and error.missing_objects:
                # someone deleted an end in HubSpot: re-upsert both next run (it re-creates the missing one)
                updates.append(
                    LedgerUpdate(source.name, pair.source_key, STATUS_ERROR, error=ASSOCIATION_END_MISSING)
                )
                updates.append(
                    LedgerUpdate(target.name, pair.target_key, STATUS_ERROR, error=ASSOCIATION_END_MISSING)
                )

    # ------------------------------------------------------------------ dry run

    def _samples(self, kind: ObjectKind, plan: RecordPlan, types: Mapping[str, str]) -> list[dict[str, Any]]:
        creates = [w for w in plan.writes if w.action == "create"][: self.sample_size]
        updates = [w for w in plan.writes if w.action == "update"][: self.sample_size]
        samples: list[dict[str, Any]] = [
            {"key": w.key, "action": "create", "properties": sorted(w.properties), "flags": list(w.flags)}
            for w in creates
        ]
        current: dict[str, dict[str, str | None]] | None = None
        if updates:
            names = sorted({name for w in updates for name in w.properties})
            try:
                current = self.client.batch_read(
                    kind.api_type, kind.id_property, [w.key for w in updates], names
                )
            except HubSpotError as exc:  # a sample is a nice-to-have; the counts stand without it
                logger.warning(
                    "HubSpot dry run: reading %s for sample diffs failed: %s", kind.name, exc.info.summary
                )
        for write in updates:
            theirs = None if current is None else current.get(write.key)
            samples.append(
                {
                    "key": write.key,
                    "action": "update",
                    "retry": write.retry,
                    "changed_properties": (
                        changed_properties(write.properties, theirs, types)
                        if theirs is not None
                        else "unknown"
                    ),
                }
            )
        return samples

    # ------------------------------------------------------------------ logging

    def _log_summary(self, report: SyncReport) -> None:
        for name, counts in report.objects.items():
            logger.info(
                "HubSpot %s %s%s: %s",
                report.practice_id,
                name,
                " (dry run)" if report.dry_run else "",
                asdict(counts),
            )
        for name, counts_a in report.associations.items():
            logger.info(
                "HubSpot %s %s%s: %s",
                report.practice_id,
                name,
                " (dry run)" if report.dry_run else "",
                asdict(counts_a),
            )


def property_types(portal_properties: Mapping[str, Sequence[Any]]) -> dict[str, str]:
    """Property name → HubSpot type, for HubSpot's own properties and the portal's custom ones."""
    types: dict[str, str] = dict(HUBSPOT_DEFINED_TYPES)
    for definitions in portal_properties.values():
        types.update({d.name: d.type for d in definitions})
    return types


def sync_practice(
    client: HubSpotApi,
    warehouse: Warehouse,
    practice_id: str,
    mapping: SyncMapping | None = None,
    *,
    dry_run: bool = False,
    batch_size: int = 100,
) -> SyncReport:
    """Sync one practice (see the module docstring); the convenience entry point."""
    engine = SyncEngine(client, warehouse, mapping, batch_size=batch_size, dry_run=dry_run)
    return engine.sync_practice(practice_id)
