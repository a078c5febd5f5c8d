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

import hashlib
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from biss_pipeline.domain.hubspot.api import (
    ErrorInfo,
    HubSpotApi,
    HubSpotApiError,
    HubSpotError,
    HubSpotTransientError,
    UpsertInput,
    UpsertResult,
)
from biss_pipeline.domain.hubspot.desired import DesiredState, desired_state, read_snapshot
from biss_pipeline.domain.hubspot.diff import (
    STATUS_ERROR,
    STATUS_FLAGGED,
    STATUS_SUPPRESSED,
    STATUS_SYNCED,
    AssociationPlan,
    LedgerEntry,
    PairWrite,
    PlannedWrite,
    RecordPlan,
    changed_properties,
    chunks,
    dedupe_writes,
    plan_associations,
    plan_records,
)
from biss_pipeline.domain.hubspot.ledger import Ledger, LedgerUpdate, SyncLogEntry
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
DELETED_IN_HUBSPOT = "deleted in HubSpot"
REBUILD_COMMAND = "biss-pipeline hubspot rebuild-ledger --practice {practice_id}"
Verify = Literal["written", "full"]
T = TypeVar("T")
R = TypeVar("R")


class MassDisappearance(RuntimeError):
    """Most of a practice's objects vanished from HubSpot at once (SPEC §8): a portal reset or restore,
    not a person deleting records. Repairing record by record would suppress every patient, so the
    practice's sync stops and names the command that rebuilds the ledger from HubSpot."""


def mass_disappearance_message(practice_id: str, missing: int, read: int) -> str:
    return (
        f"{practice_id}: {missing} of {read} HubSpot objects the ledger knows are gone at once "
        "(a portal reset or restore?). The sync of this practice stopped before writing anything. "
        "When the portal is the one it should be, rebuild the ledger from HubSpot and re-send what is "
        f"missing with: {REBUILD_COMMAND.format(practice_id=practice_id)}"
    )


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
    read: int = 0  # objects the reconciliation asked HubSpot for, by id
    missing: int = 0  # of read: gone from HubSpot
    drifted: int = 0  # of read: a pipeline-owned value differs from the ledger's (set back)
    recreated: int = 0  # of missing: re-created (deals, appointments)
    suppressed: int = 0  # of missing: contacts, the patient is sent no more
    verified: int = 0  # written this run and read back by id
    verify_failed: int = 0  # of verified: gone or different right after the write (retried next run)


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
    verify: str = "written"
    suppressed_patients: int = 0

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
            "verify": self.verify,
            "suppressed_patients": self.suppressed_patients,
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
        verify: Verify = "written",
        run_id: str | None = None,
        max_concurrency: int = 8,
        mass_missing_share: float = 0.5,
        mass_missing_min: int = 10,
    ) -> None:
        if not 1 <= batch_size <= 100:
            raise ValueError("batch_size must be within 1..100")
        if verify not in ("written", "full"):
            raise ValueError("verify must be 'written' (intraday) or 'full' (nightly)")
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        self.client = client
        self.warehouse = warehouse
        self.ledger = Ledger(warehouse, run_id)
        self.verify = verify
        self.max_concurrency = max_concurrency
        self.mass_missing_share = mass_missing_share
        self.mass_missing_min = mass_missing_min
        self._lock = threading.Lock()
        self._written: dict[str, dict[str, PlannedWrite]] = {}
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
        report.verify = self.verify
        snapshot = read_snapshot(self.warehouse, practice_id)
        spec = portal_spec(self.mapping, snapshot.buckets, snapshot.categories)
        try:
            portal = ensure_portal(self.client, spec, dry_run=self.dry_run)
        except HubSpotError as exc:
            raise SyncAborted(f"portal setup: {exc}") from None
        report.portal = portal
        ledger = self.ledger.load(practice_id)
        types = property_types(spec.properties)

        def desired_now(entries: Mapping[str, Mapping[str, LedgerEntry]]) -> DesiredState:
            contacts = entries.get(CONTACTS.name, {})
            suppressed = {k for k, e in contacts.items() if e.status == STATUS_SUPPRESSED}
            report.suppressed_patients = len(suppressed)
            return desired_state(snapshot, self.mapping, portal.pipeline_id, portal.stage_ids, suppressed)

        desired = desired_now(ledger)
        force: dict[str, set[str]] = {}
        if not self.dry_run:
            force = self._reconcile(practice_id, desired, ledger, types, report)
            ledger = self.ledger.load(practice_id)
            desired = desired_now(ledger)

        for kind in OBJECT_KINDS:
            plan = plan_records(
                desired.records[kind.name], ledger.get(kind.name, {}), force.get(kind.name, ())
            )
            counts = report.objects.setdefault(kind.name, ObjectReport())
            counts.create = plan.count("create")
            counts.update = plan.count("update")
            counts.unchanged = len(plan.unchanged)
            counts.retrying = plan.retries
            counts.stale = len(plan.stale)
            if self.dry_run:
                report.samples[kind.name] = self._samples(kind, plan, types)
            else:
                self._write_records(practice_id, kind, plan, counts)

        if not self.dry_run:
            self._verify_written(practice_id, report, types)
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

    def _parallel(self, work: Callable[[T], R], items: Sequence[T]) -> list[R]:
        """Run `work` over `items` with at most `max_concurrency` calls in flight: at 0.2–1 s per HubSpot
        call one call at a time cannot keep the rate bound busy (the limiter still paces the starts)."""
        if self.max_concurrency == 1 or len(items) <= 1:
            return [work(item) for item in items]
        with ThreadPoolExecutor(max_workers=min(self.max_concurrency, len(items))) as pool:
            return list(pool.map(work, items))

    def _write_records(
        self, practice_id: str, kind: ObjectKind, plan: RecordPlan, counts: ObjectReport
    ) -> None:
        writes = dedupe_writes(plan.writes)
        # A family email moving owner: the old owner's clear must land before the new owner sets the
        # address, or HubSpot refuses the new owner's write (one contact per email). Clears go first.
        waves = [writes]
        if kind is CONTACTS:
            clears = [w for w in writes if w.properties.get("email", None) == ""]
            waves = [clears, [w for w in writes if w.properties.get("email", None) != ""]]

        def one_batch(batch: list[PlannedWrite]) -> None:
            updates: list[LedgerUpdate] = []
            local = ObjectReport()
            try:
                withheld: list[PlannedWrite] = []
                self._upsert(kind, batch, updates, local, withheld)
                for retry in chunks(withheld, self.batch_size):
                    self._upsert(kind, retry, updates, local, None)
            finally:
                self.ledger.record(practice_id, updates)
                with self._lock:
                    for name in ("hubspot_new", "hubspot_updated", "failed", "flagged", "email_withheld"):
                        setattr(counts, name, getattr(counts, name) + getattr(local, name))

        for wave in waves:
            self._parallel(one_batch, list(chunks(wave, self.batch_size)))

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
        with self._lock:
            self._written.setdefault(kind.name, {})[result.hubspot_id] = write
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
        with self._lock:
            self._failed_batches += 1
        logger.warning(
            "HubSpot %s batch of %d failed after retries: %s", kind.name, len(writes), info.summary
        )
        if self._failed_batches >= self.max_failed_batches:
            raise SyncAborted(f"{self._failed_batches} batches in a row failed after retries: {info.summary}")

    # ------------------------------------------------------------------ reconciliation (SPEC §8)

    def _reconcile(
        self,
        practice_id: str,
        desired: DesiredState,
        ledger: Mapping[str, Mapping[str, LedgerEntry]],
        types: Mapping[str, str],
        report: SyncReport,
    ) -> dict[str, set[str]]:
        """Read the ledger's objects by HubSpot id and repair what HubSpot lost or changed.

        `full` (nightly) reads every object the ledger has an id for, with its pipeline-owned
        properties, and sets back drifted values. `written` (intraday) reads only the objects this run is
        about to update (one call per 100, no property compare: an update of a deleted contact would
        otherwise be an upsert that re-creates it) plus a rotating slice of 100 ids per object type, so
        a portal reset is noticed by a tick that has nothing to update.

        Missing contacts → the patient is suppressed; missing deals/appointments → id forgotten, so
        the plan re-creates them (and their associations, whose ids changed). Returns the drifted keys
        to force. Raises `SyncAborted` on a mass disappearance, before anything is written."""
        force: dict[str, set[str]] = {}
        gone: dict[str, list[str]] = {}
        drift_reasons: dict[str, dict[str, list[str]]] = {}
        read_total = missing_total = 0
        for kind in OBJECT_KINDS:
            entries = ledger.get(kind.name, {})
            wanted = desired.records[kind.name]
            with_id = {k: e for k, e in entries.items() if e.hubspot_id and e.status != STATUS_SUPPRESSED}
            if self.verify == "full":
                scope = dict(with_id)
                names = sorted({n for r in wanted.values() for n in r.properties} | {kind.id_property})
            else:
                scope = {
                    k: e for k, e in with_id.items()
                    if k in wanted and (not e.confirmed or e.content_hash != wanted[k].content_hash)
                }
                # plus a rotating slice of one batch: a tick that updates nothing still notices a
                # portal reset, and every object is looked at again within ledger size / 100 ticks
                scope.update({k: with_id[k] for k in self._slice(kind.name, with_id)})
                names = [kind.id_property]
            if not scope:
                continue
            found = self._read(kind, scope, names)
            missing = self._missing(kind, scope, found)
            counts = report.objects.setdefault(kind.name, ObjectReport())
            counts.read += len(scope)
            counts.missing += len(missing)
            read_total += len(scope)
            missing_total += len(missing)
            gone[kind.name] = missing
            if self.verify == "full":
                for key, entry in scope.items():
                    record = wanted.get(key)
                    theirs = found.get(str(entry.hubspot_id))
                    if record is None or theirs is None or key in missing:
                        continue
                    if not entry.confirmed or entry.content_hash != record.content_hash:
                        continue  # the plan sends it anyway
                    ours = dict(record.properties)
                    if kind is CONTACTS and FLAG_EMAIL_CONFLICT in (entry.flags or ""):
                        ours.pop("email", None)  # HubSpot refused it; the sync sent none
                    changed = changed_properties(ours, theirs, types)
                    if changed:
                        force.setdefault(kind.name, set()).add(key)
                        drift_reasons.setdefault(kind.name, {})[key] = changed
                counts.drifted += len(drift_reasons.get(kind.name, {}))

        if missing_total >= self.mass_missing_min and missing_total >= self.mass_missing_share * read_total:
            raise SyncAborted(mass_disappearance_message(practice_id, missing_total, read_total))

        log: list[SyncLogEntry] = []
        for kind in OBJECT_KINDS:
            keys = sorted(gone.get(kind.name, []))
            if not keys:
                continue
            counts = report.objects[kind.name]
            if kind is CONTACTS:
                self.ledger.suppress(practice_id, keys, DELETED_IN_HUBSPOT)
                counts.suppressed += len(keys)
                log += [SyncLogEntry("suppress", kind.name, k, "contact deleted in HubSpot") for k in keys]
            else:
                self.ledger.forget_ids(practice_id, kind.name, keys, DELETED_IN_HUBSPOT)
                counts.recreated += len(keys)
                log += [SyncLogEntry("recreate", kind.name, k, "deleted in HubSpot") for k in keys]
        for kind_name, reasons in drift_reasons.items():
            log += [
                SyncLogEntry("set_back", kind_name, key, "edited in HubSpot: " + ",".join(props))
                for key, props in sorted(reasons.items())
            ]
        self.ledger.log(practice_id, log)
        if log:
            logger.info("HubSpot %s reconciliation: %d repairs (see hubspot_sync_log)", practice_id, len(log))
        return force

    def _slice(self, kind: str, entries: Mapping[str, LedgerEntry]) -> list[str]:
        ranked = sorted(entries, key=lambda k: _rank(kind, k))
        if not ranked:
            return []
        seed = self.ledger.run_id or ""
        offset = int(hashlib.sha256(seed.encode()).hexdigest(), 16) % len(ranked) if seed else 0
        return (ranked[offset:] + ranked[:offset])[: self.batch_size]

    def _read(
        self, kind: ObjectKind, scope: Mapping[str, LedgerEntry], names: Sequence[str]
    ) -> dict[str, dict[str, str | None]]:
        try:
            return self._read_ids(kind, [str(e.hubspot_id) for e in scope.values()], names)
        except HubSpotError as exc:
            raise SyncAborted(f"reconciliation read of {kind.name}: {exc.info.summary}") from None

    def _read_ids(
        self, kind: ObjectKind, ids: Sequence[str], names: Sequence[str]
    ) -> dict[str, dict[str, str | None]]:
        """Batch reads by record id, 100 per call, `max_concurrency` in flight."""
        ordered = sorted(set(ids), key=lambda i: (len(i), i))

        def read(part: list[str]) -> dict[str, dict[str, str | None]]:
            return self.client.read_by_ids(kind.api_type, part, names)

        found: dict[str, dict[str, str | None]] = {}
        for answer in self._parallel(read, list(chunks(ordered, MAX_READ))):
            found.update(answer)
        return found

    @staticmethod
    def _missing(
        kind: ObjectKind, scope: Mapping[str, LedgerEntry], found: Mapping[str, Mapping[str, str | None]]
    ) -> list[str]:
        """Keys whose object is gone, or whose id now carries another key (treated as gone)."""
        missing = []
        for key, entry in scope.items():
            theirs = found.get(str(entry.hubspot_id))
            if theirs is None or (theirs.get(kind.id_property) or key) != key:
                missing.append(key)
        return missing

    def _verify_written(self, practice_id: str, report: SyncReport, types: Mapping[str, str]) -> None:
        """Read back, by id, what this run wrote (one call per 100 objects) and compare the values sent.
        A record that is gone or different right after the write goes to the ledger as an error, so the
        next run sends it again; the report counts it."""
        for kind in OBJECT_KINDS:
            written = self._written.get(kind.name, {})
            if not written:
                continue
            names = sorted({n for w in written.values() for n in w.properties} | {kind.id_property})
            try:
                found = self._read_ids(kind, list(written), names)
            except HubSpotError as exc:
                logger.warning(
                    "HubSpot %s: reading back %s failed: %s", practice_id, kind.name, exc.info.summary
                )
                continue
            counts = report.objects.setdefault(kind.name, ObjectReport())
            counts.verified += len(written)
            failed: list[LedgerUpdate] = []
            for hubspot_id, write in written.items():
                theirs = found.get(hubspot_id)
                changed = (
                    ["(gone)"] if theirs is None else changed_properties(write.properties, theirs, types)
                )
                if changed:
                    failed.append(LedgerUpdate(kind.name, write.key, STATUS_ERROR,
                                               error="read back after write differs: " + ",".join(changed)))
            counts.verify_failed += len(failed)
            self.ledger.record(practice_id, failed)
            if failed:
                logger.warning(
                    "HubSpot %s %s: %d records differ when read back", practice_id, kind.name, len(failed)
                )

    # ------------------------------------------------------------------ associations

    def _write_associations(
        self, practice_id: str, association: AssociationKind, plan: AssociationPlan, counts: AssociationReport
    ) -> None:
        source, target = association.source, association.target

        def one_batch(batch: list[PairWrite]) -> None:
            updates: list[LedgerUpdate] = []
            local = AssociationReport()
            try:
                self._associate(association, batch, updates, local)
            finally:
                self.ledger.record(practice_id, updates)
                with self._lock:
                    counts.added += local.added
                    counts.failed += local.failed

        self._parallel(one_batch, list(chunks(plan.add, self.batch_size)))
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
                with self._lock:
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


MAX_READ = 100  # HubSpot batch read: at most 100 ids per call


def _rank(kind: str, key: str) -> str:
    """A stable pseudo-random order for the probe (the same keys every run until the set changes)."""
    return hashlib.sha256(f"{kind}:{key}".encode()).hexdigest()


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
    **options: Any,
) -> SyncReport:
    """Sync one practice (see the module docstring); the convenience entry point. `options` go to
    `SyncEngine` (verify, run_id, max_concurrency, …)."""
    engine = SyncEngine(client, warehouse, mapping, batch_size=batch_size, dry_run=dry_run, **options)
    return engine.sync_practice(practice_id)
