"""Duplicate HubSpot deals: which deals are the same treatment journey, which one stays, which are
closed as lost and why. Pure functions over plain records (no Dagster, no network); the HubSpot reads
and writes around them live in `biss_pipeline.checks.hubspot` and `biss_pipeline.jobs.remediation`.

Terms (one practice at a time)
------------------------------
- *Pipeline deal*: a deal with an `ivoris_deal_key` and the practice's `biss_practice_id`.
- *Keyless deal*: a deal without `ivoris_deal_key` (left over from the old automation) that carries no
  other practice's id. It belongs to the practice through its contacts.
- *Open*: the deal's stage is not a closed stage (won or lost) of its pipeline.
- *Remediated*: closed and carrying `biss_remediation_reason` — this job closed it before. Remediated
  deals are history: they count as duplicates nowhere, so a second run finds nothing to do.

What the duplicate check reports (`find_duplicates`)
-----------------------------------------------------
| finding              | meaning                                                                  | severity |
| -------------------- | ------------------------------------------------------------------------ | -------- |
| `duplicate_keys`     | more than one (non-remediated) deal carries the same `ivoris_deal_key`,  | ERROR    |
|                      | whatever their stages                                                    |          |
| `multi_open_contacts`| a practice contact has more than one open deal (pipeline or keyless)     | ERROR    |
| `keyless_open`       | an open keyless deal shares a contact with a pipeline deal               | WARN     |

What the remediation does (`plan_remediation`) — only *confirmed* duplicates
-----------------------------------------------------------------------------
| group            | members                                          | kept                        |
| ---------------- | ------------------------------------------------ | --------------------------- |
| `same_key`       | the deals sharing one `ivoris_deal_key`          | the one the ledger knows,   |
|                  |                                                  | else the oldest             |
| `old_automation` | the open keyless deals of a contact that has an  | that open pipeline deal     |
|                  | open pipeline deal (after the same-key closures) | (ledger's, else the oldest) |

Every other member is moved to the pipeline's closed-lost stage with a reason naming the kept deal.
Not confirmed, so left for a person (`needs_review`): two open pipeline deals of one contact with
different keys (a stale journey the sync no longer writes, or a rules problem), and open keyless
deals whose contact's pipeline deals are all closed (maybe a new journey the old automation opened).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

REASON_PROPERTY = "biss_remediation_reason"
SAME_KEY = "same_key"
OLD_AUTOMATION = "old_automation"
_REASON_TEXT = {
    SAME_KEY: "same ivoris_deal_key",
    OLD_AUTOMATION: "old automation deal without ivoris_deal_key, same contact",
}


@dataclass(frozen=True)
class DealRecord:
    """A HubSpot deal reduced to what duplicate detection needs (ids and keys, no names)."""

    deal_id: str
    key: str | None = None  # ivoris_deal_key
    practice_id: str | None = None  # biss_practice_id
    pipeline_id: str | None = None
    stage_id: str | None = None
    is_open: bool = True
    created_at: str | None = None  # HubSpot `createdate` (ISO) — for "keep the oldest"
    contact_ids: frozenset[str] = frozenset()
    remediation_reason: str | None = None

    @property
    def remediated(self) -> bool:
        return bool(self.remediation_reason) and not self.is_open


@dataclass(frozen=True)
class LostStage:
    """Where a closed duplicate goes: the sync pipeline's closed-lost stage."""

    pipeline_id: str
    stage_id: str


def _pipeline_deal(deal: DealRecord, practice_id: str) -> bool:
    return bool(deal.key) and deal.practice_id == practice_id


def _keyless_deal(deal: DealRecord, practice_id: str) -> bool:
    # a keyless deal tagged with another practice is that practice's business, not ours
    return not deal.key and deal.practice_id in (None, "", practice_id)


def _instant(text: str | None) -> datetime:
    if not text:
        return datetime.max.replace(tzinfo=UTC)  # unknown age sorts last: never preferred as "oldest"
    try:
        if text.isdigit():
            return datetime.fromtimestamp(int(text) / 1000, tz=UTC)
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return datetime.max.replace(tzinfo=UTC)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _id_order(deal_id: str) -> tuple[int, int | str]:
    return (0, int(deal_id)) if deal_id.isdigit() else (1, deal_id)


def age_order(deal: DealRecord) -> tuple[datetime, tuple[int, int | str]]:
    """Oldest first; HubSpot ids grow with creation, so they break ties (and stand in for a missing date)."""
    return (_instant(deal.created_at), _id_order(deal.deal_id))


def _sorted_ids(ids: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(ids, key=_id_order))


def _ids(deals: Iterable[DealRecord]) -> tuple[str, ...]:
    return _sorted_ids(d.deal_id for d in deals)


# -- the check ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DuplicateFindings:
    practice_id: str
    deals_read: int
    pipeline_deals: int
    keyless_deals: int  # keyless deals attached to a practice contact
    remediated: tuple[str, ...]
    duplicate_keys: Mapping[str, tuple[str, ...]]  # ivoris_deal_key → deal ids
    multi_open_contacts: Mapping[str, tuple[str, ...]]  # contact id → open deal ids
    keyless_open: Mapping[str, tuple[str, ...]]  # keyless open deal → contacts shared with pipeline deals

    @property
    def has_errors(self) -> bool:
        return bool(self.duplicate_keys or self.multi_open_contacts)

    @property
    def has_warnings(self) -> bool:
        return bool(self.keyless_open)

    @property
    def duplicate_deal_ids(self) -> tuple[str, ...]:
        """Every deal id taking part in a finding."""
        found = {i for ids in self.duplicate_keys.values() for i in ids}
        found |= {i for ids in self.multi_open_contacts.values() for i in ids}
        found |= set(self.keyless_open)
        return tuple(sorted(found, key=_id_order))


def _practice_contacts(deals: Sequence[DealRecord], practice_id: str) -> set[str]:
    return {c for d in deals if _pipeline_deal(d, practice_id) for c in d.contact_ids}


def find_duplicates(deals: Iterable[DealRecord], practice_id: str) -> DuplicateFindings:
    deals = list({d.deal_id: d for d in deals}.values())  # a deal read twice is still one deal
    pipeline = [d for d in deals if _pipeline_deal(d, practice_id)]
    contacts = _practice_contacts(deals, practice_id)
    keyless = [d for d in deals if _keyless_deal(d, practice_id) and d.contact_ids & contacts]

    by_key: dict[str, list[DealRecord]] = defaultdict(list)
    for deal in pipeline:
        if not deal.remediated:
            by_key[str(deal.key)].append(deal)
    duplicate_keys = {key: _ids(group) for key, group in sorted(by_key.items()) if len(group) > 1}

    open_by_contact: dict[str, list[DealRecord]] = defaultdict(list)
    for deal in (*pipeline, *keyless):
        if deal.is_open:
            for contact in deal.contact_ids & contacts:
                open_by_contact[contact].append(deal)
    multi_open = {
        contact: _ids(group)
        for contact, group in sorted(open_by_contact.items(), key=lambda item: _id_order(item[0]))
        if len(group) > 1
    }
    keyless_open = {
        deal.deal_id: tuple(sorted(deal.contact_ids & contacts, key=_id_order))
        for deal in sorted(keyless, key=lambda d: _id_order(d.deal_id))
        if deal.is_open
    }
    return DuplicateFindings(
        practice_id=practice_id,
        deals_read=len(deals),
        pipeline_deals=len(pipeline),
        keyless_deals=len(keyless),
        remediated=_ids(d for d in (*pipeline, *keyless) if d.remediated),
        duplicate_keys=duplicate_keys,
        multi_open_contacts=multi_open,
        keyless_open=keyless_open,
    )


# -- the remediation ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Closure:
    """One deal to move to closed lost."""

    deal_id: str
    kind: str  # SAME_KEY | OLD_AUTOMATION
    kept_deal_id: str
    key: str | None  # the shared key (same_key) or the kept deal's key (old_automation)

    @property
    def reason(self) -> str:
        # ids and codes only: the reason shows on the deal in HubSpot and in logs
        return f"duplicate of deal {self.kept_deal_id}: {_REASON_TEXT[self.kind]}"

    def properties(self, lost: LostStage) -> dict[str, str]:
        # the pipeline too: an old-automation deal may sit in another pipeline, whose stages ours lack
        return {"pipeline": lost.pipeline_id, "dealstage": lost.stage_id, REASON_PROPERTY: self.reason}


@dataclass(frozen=True)
class RemediationPlan:
    practice_id: str
    closures: tuple[Closure, ...]
    kept: tuple[str, ...]
    already_remediated: tuple[str, ...]
    remaining: DuplicateFindings  # what the check would still report after the closures
    needs_review: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # contact → open deal ids

    @property
    def closed_ids(self) -> tuple[str, ...]:
        return tuple(c.deal_id for c in self.closures)

    def counts(self) -> dict[str, int]:
        return {
            "to_close": len(self.closures),
            "to_close_same_key": sum(1 for c in self.closures if c.kind == SAME_KEY),
            "to_close_old_automation": sum(1 for c in self.closures if c.kind == OLD_AUTOMATION),
            "kept": len(self.kept),
            "already_remediated": len(self.already_remediated),
            "needs_review": len(self.needs_review),
        }


def _keeper(candidates: Sequence[DealRecord], ledger_ids: Mapping[str, str]) -> DealRecord:
    """The deal the ledger knows (the sync keeps writing to it), else the oldest."""
    known = {ledger_ids.get(str(d.key)) for d in candidates if d.key}
    for deal in sorted(candidates, key=age_order):
        if deal.deal_id in known:
            return deal
    return min(candidates, key=age_order)


def apply_closures(
    deals: Iterable[DealRecord], closures: Iterable[Closure], lost: LostStage
) -> list[DealRecord]:
    """The deals as they are once the closures are written (for `remaining` and for tests)."""
    by_id = {c.deal_id: c for c in closures}
    return [
        replace(
            d,
            pipeline_id=lost.pipeline_id,
            stage_id=lost.stage_id,
            is_open=False,
            remediation_reason=by_id[d.deal_id].reason,
        )
        if d.deal_id in by_id
        else d
        for d in deals
    ]


def plan_remediation(
    deals: Iterable[DealRecord],
    practice_id: str,
    ledger_ids: Mapping[str, str],
    lost: LostStage,
) -> RemediationPlan:
    """`ledger_ids`: ivoris_deal_key → HubSpot id from the sync ledger."""
    deals = list({d.deal_id: d for d in deals}.values())
    pipeline = [d for d in deals if _pipeline_deal(d, practice_id)]
    contacts = _practice_contacts(deals, practice_id)
    keyless = [d for d in deals if _keyless_deal(d, practice_id) and d.contact_ids & contacts]
    closures: dict[str, Closure] = {}
    kept: set[str] = set()

    by_key: dict[str, list[DealRecord]] = defaultdict(list)
    for deal in pipeline:
        if not deal.remediated:
            by_key[str(deal.key)].append(deal)
    for key, group in sorted(by_key.items()):
        if len(group) < 2:
            continue
        keeper = _keeper(group, ledger_ids)
        kept.add(keeper.deal_id)
        for deal in sorted(group, key=age_order):
            if deal.deal_id != keeper.deal_id:
                closures[deal.deal_id] = Closure(deal.deal_id, SAME_KEY, keeper.deal_id, key)

    open_pipeline: dict[str, list[DealRecord]] = defaultdict(list)
    for deal in pipeline:
        if deal.is_open and deal.deal_id not in closures:
            for contact in deal.contact_ids:
                open_pipeline[contact].append(deal)
    for deal in sorted(keyless, key=age_order):
        if not deal.is_open or deal.deal_id in closures:
            continue
        # the contact's open journey, if any: with several contacts, the first one (by id) decides
        partners = [c for c in sorted(deal.contact_ids & contacts, key=_id_order) if open_pipeline.get(c)]
        if not partners:
            continue
        keeper = _keeper(open_pipeline[partners[0]], ledger_ids)
        kept.add(keeper.deal_id)
        closures[deal.deal_id] = Closure(deal.deal_id, OLD_AUTOMATION, keeper.deal_id, keeper.key)

    ordered = tuple(sorted(closures.values(), key=lambda c: _id_order(c.deal_id)))
    remaining = find_duplicates(apply_closures(deals, ordered, lost), practice_id)
    review: dict[str, set[str]] = defaultdict(set)
    for contact, ids in remaining.multi_open_contacts.items():
        review[contact].update(ids)
    for deal_id, shared in remaining.keyless_open.items():
        for contact in shared:
            review[contact].add(deal_id)
    return RemediationPlan(
        practice_id=practice_id,
        closures=ordered,
        kept=tuple(sorted(kept, key=_id_order)),
        already_remediated=_ids(d for d in (*pipeline, *keyless) if d.remediated),
        remaining=remaining,
        needs_review={c: _sorted_ids(review[c]) for c in sorted(review, key=_id_order)},
    )
