"""Desired state vs. ledger: what to send, what is unchanged, what to remove (pure functions).

A record is sent when the ledger has no HubSpot id for it (create), when its content hash differs
from the last one HubSpot confirmed, or when its last attempt failed (update/retry). Everything
else is unchanged and costs no call. Ledger rows whose key is no longer desired are *stale*: the
sync reports them and leaves the HubSpot object alone (closing duplicates is a separate job).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Literal, TypeVar

from biss_pipeline.domain.hubspot.payloads import DesiredRecord, association_hash, association_key

STATUS_SYNCED = "synced"
STATUS_FLAGGED = "flagged"  # confirmed by HubSpot, but something was withheld (see `flags`)
STATUS_ERROR = "error"
STATUS_SUPPRESSED = "suppressed"  # a contact deleted in HubSpot: the patient is sent no more (SPEC §8)
CONFIRMED_STATUSES = frozenset({STATUS_SYNCED, STATUS_FLAGGED})

Action = Literal["create", "update"]
T = TypeVar("T")


@dataclass(frozen=True)
class LedgerEntry:
    object_type: str
    record_key: str
    content_hash: str | None
    hubspot_id: str | None
    status: str
    attempts: int = 0
    flags: str | None = None
    last_error: str | None = None
    last_attempt_at: datetime | None = None
    synced_at: datetime | None = None

    @property
    def confirmed(self) -> bool:
        return self.status in CONFIRMED_STATUSES


@dataclass(frozen=True)
class PlannedWrite:
    record: DesiredRecord
    action: Action
    retry: bool  # the previous attempt failed
    previous_hash: str | None = None
    extra_flags: tuple[str, ...] = ()
    withheld: tuple[str, ...] = ()  # properties dropped from this attempt

    @property
    def key(self) -> str:
        return self.record.key

    @property
    def flags(self) -> tuple[str, ...]:
        return tuple(sorted({*self.record.flags, *self.extra_flags}))

    @property
    def properties(self) -> dict[str, str]:
        return {k: v for k, v in self.record.properties.items() if k not in self.withheld}

    def without(self, prop: str, flag: str) -> PlannedWrite:
        """The same write minus one property; the ledger keeps the desired hash, so the record is
        not re-sent every run while its data stays the same."""
        return replace(self, withheld=(*self.withheld, prop), extra_flags=(*self.extra_flags, flag))


@dataclass
class RecordPlan:
    writes: list[PlannedWrite] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)

    def count(self, action: Action) -> int:
        return sum(1 for w in self.writes if w.action == action)

    @property
    def retries(self) -> int:
        return sum(1 for w in self.writes if w.retry)


def plan_records(
    desired: Mapping[str, DesiredRecord],
    ledger: Mapping[str, LedgerEntry],
    force: Collection[str] = (),
) -> RecordPlan:
    """`force`: keys the reconciliation found drifted in HubSpot; they are sent although their hash is
    the ledger's (the value is set back)."""
    plan = RecordPlan()
    for key in sorted(desired):
        record = desired[key]
        entry = ledger.get(key)
        if entry is None or entry.hubspot_id is None:
            plan.writes.append(PlannedWrite(record, "create", retry=entry is not None))
        elif not entry.confirmed or entry.content_hash != record.content_hash or key in force:
            plan.writes.append(
                PlannedWrite(record, "update", retry=not entry.confirmed, previous_hash=entry.content_hash)
            )
        else:
            plan.unchanged.append(key)
    plan.stale = sorted(set(ledger) - set(desired))
    return plan


@dataclass(frozen=True)
class PairWrite:
    key: str  # association_key(source key, target key)
    source_key: str
    target_key: str
    source_id: str
    target_id: str
    content_hash: str

    @property
    def ids(self) -> tuple[str, str]:
        return (self.source_id, self.target_id)

    @property
    def hubspot_id(self) -> str:
        return f"{self.source_id}>{self.target_id}"


@dataclass
class AssociationPlan:
    add: list[PairWrite] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)  # an end has no HubSpot id (yet)
    unchanged: list[str] = field(default_factory=list)
    remove: list[tuple[str, str, str]] = field(default_factory=list)  # (ledger key, from id, to id)


def plan_associations(
    desired_pairs: Iterable[tuple[str, str]],
    source_ids: Mapping[str, str],
    target_ids: Mapping[str, str],
    ledger: Mapping[str, LedgerEntry],
    type_id: int,
    live_keys: tuple[Collection[str], Collection[str]] | None = None,
) -> AssociationPlan:
    """`live_keys` (desired source keys, desired target keys) limits removals to pairs whose ends are both
    still wanted: then the relationship itself changed (an appointment moved to another deal). A pair
    with a stale end is left alone, like the stale object."""
    plan = AssociationPlan()
    wanted: set[str] = set()
    for source_key, target_key in sorted(set(desired_pairs)):
        key = association_key(source_key, target_key)
        wanted.add(key)
        source_id, target_id = source_ids.get(source_key), target_ids.get(target_key)
        if source_id is None or target_id is None:
            plan.waiting.append(key)
            continue
        digest = association_hash(source_id, target_id, type_id)
        entry = ledger.get(key)
        if entry is not None and entry.confirmed and entry.content_hash == digest:
            plan.unchanged.append(key)
        else:
            plan.add.append(PairWrite(key, source_key, target_key, source_id, target_id, digest))
    for key in sorted(set(ledger) - wanted):
        entry = ledger[key]
        if live_keys is not None:
            source_key, target_key = key.split(">", 1)
            if source_key not in live_keys[0] or target_key not in live_keys[1]:
                continue
        # only pairs HubSpot confirmed exist there; a failed pair was never made
        if entry.confirmed and entry.hubspot_id and ">" in entry.hubspot_id:
            source_id, target_id = entry.hubspot_id.split(">", 1)
            plan.remove.append((key, source_id, target_id))
    return plan


def chunks(items: Sequence[T], size: int) -> Iterator[list[T]]:
    if size < 1:
        raise ValueError("chunk size must be at least 1")
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def dedupe_writes(writes: Sequence[PlannedWrite]) -> list[PlannedWrite]:
    """One input per unique key (HubSpot rejects a batch naming an id twice); the last one wins."""
    by_key: dict[str, PlannedWrite] = {}
    for write in writes:
        by_key.pop(write.key, None)
        by_key[write.key] = write
    return list(by_key.values())


def changed_properties(
    ours: Mapping[str, str],
    theirs: Mapping[str, str | None],
    types: Mapping[str, str],
) -> list[str]:
    """Names of the properties whose HubSpot value differs from ours (values never leave this function)."""
    return sorted(
        name
        for name, value in ours.items()
        # HubSpot stores emails lower-case, so only there does case not count
        if not same_value("email" if name == "email" else types.get(name, "string"), value, theirs.get(name))
    )


def same_value(prop_type: str, ours: str | None, theirs: str | None) -> bool:
    a, b = (ours or "").strip(), (theirs or "").strip()
    if a == b:
        return True
    if not a or not b:
        return False
    try:
        if prop_type == "number":
            return Decimal(a) == Decimal(b)
        if prop_type == "datetime":
            return _instant(a) == _instant(b)
        if prop_type == "date":
            return a[:10] == b[:10]
    except (ValueError, ArithmeticError):
        return False
    return a.casefold() == b.casefold() if prop_type == "email" else False


def _instant(text: str) -> datetime:
    if text.isdigit():
        return datetime.fromtimestamp(int(text) / 1000, tz=UTC)
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
