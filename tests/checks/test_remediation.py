"""The duplicate rules and the remediation decisions, table-tested on plain records (no HubSpot)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from biss_pipeline.domain.hubspot.remediation import (
    OLD_AUTOMATION,
    REASON_PROPERTY,
    SAME_KEY,
    Closure,
    DealRecord,
    LostStage,
    apply_closures,
    find_duplicates,
    plan_remediation,
)

PID = "mb"
LOST = LostStage("p1", "lost")


def deal(
    deal_id: str,
    key: str | None = None,
    contacts: tuple[str, ...] = ("c1",),
    *,
    open_: bool = True,
    created: str | None = None,
    practice: str | None = PID,
    reason: str | None = None,
    stage: str | None = None,
) -> DealRecord:
    """A pipeline deal when `key` is given, else an old-automation deal (no key, no practice id)."""
    return DealRecord(
        deal_id=deal_id,
        key=key,
        practice_id=practice if key else (practice if practice != PID else None),
        pipeline_id="p1" if key else "default",
        stage_id=stage or ("open" if open_ else "won"),
        is_open=open_,
        created_at=created or f"2026-03-01T10:00:{int(deal_id) % 60:02d}.000Z",
        contact_ids=frozenset(contacts),
        remediation_reason=reason,
    )


@dataclass(frozen=True)
class Case:
    name: str
    deals: list[DealRecord]
    ledger: dict[str, str] = field(default_factory=dict)
    # the check
    errors: bool = False
    warnings: bool = False
    duplicate_keys: dict[str, tuple[str, ...]] = field(default_factory=dict)
    multi_open: dict[str, tuple[str, ...]] = field(default_factory=dict)
    keyless_open: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # the remediation: (closed deal, kind, kept deal)
    closures: list[tuple[str, str, str]] = field(default_factory=list)
    needs_review: dict[str, tuple[str, ...]] = field(default_factory=dict)


CASES = [
    Case(
        "clean: one deal per key, one open deal per contact",
        [
            deal("10", "MB_A1", ("c1",)),
            deal("11", "MB_A2", ("c1",), open_=False),
            deal("12", "MB_A3", ("c2",)),
        ],
    ),
    Case(
        "same key twice, the ledger knows the newer one: keep it",
        [
            deal("10", "MB_A1", created="2026-03-01T09:00:00Z"),
            deal("20", "MB_A1", created="2026-03-02T09:00:00Z"),
        ],
        ledger={"MB_A1": "20"},
        errors=True,
        duplicate_keys={"MB_A1": ("10", "20")},
        multi_open={"c1": ("10", "20")},
        closures=[("10", SAME_KEY, "20")],
    ),
    Case(
        "same key twice, unknown to the ledger: keep the oldest by createdate",
        [
            deal("30", "MB_A1", created="2026-03-01T09:00:00Z"),
            deal("20", "MB_A1", created="2026-03-05T09:00:00Z"),
        ],
        ledger={"MB_A1": "999"},
        errors=True,
        duplicate_keys={"MB_A1": ("20", "30")},
        multi_open={"c1": ("20", "30")},
        closures=[("20", SAME_KEY, "30")],
    ),
    Case(
        "same createdate: the lower id is the older",
        [
            deal("21", "MB_A1", created="2026-03-01T09:00:00Z"),
            deal("20", "MB_A1", created="2026-03-01T09:00:00Z"),
        ],
        errors=True,
        duplicate_keys={"MB_A1": ("20", "21")},
        multi_open={"c1": ("20", "21")},
        closures=[("21", SAME_KEY, "20")],
    ),
    Case(
        "same key three times, one of them closed won: every copy but the ledger's closes",
        [deal("10", "MB_A1"), deal("11", "MB_A1", open_=False), deal("12", "MB_A1")],
        ledger={"MB_A1": "10"},
        errors=True,
        duplicate_keys={"MB_A1": ("10", "11", "12")},
        multi_open={"c1": ("10", "12")},
        closures=[("11", SAME_KEY, "10"), ("12", SAME_KEY, "10")],
    ),
    Case(
        "old automation deal next to the contact's open pipeline deal",
        [deal("10", "MB_A1", ("c1",)), deal("40", None, ("c1",))],
        ledger={"MB_A1": "10"},
        errors=True,
        multi_open={"c1": ("10", "40")},
        keyless_open={"40": ("c1",)},
        closures=[("40", OLD_AUTOMATION, "10")],
    ),
    Case(
        "old automation deal, the contact's pipeline deal is closed: flagged, not confirmed",
        [deal("10", "MB_A1", ("c1",), open_=False), deal("40", None, ("c1",))],
        warnings=True,
        keyless_open={"40": ("c1",)},
        needs_review={"c1": ("40",)},
    ),
    Case(
        "closed old automation deal: history, left alone",
        [deal("10", "MB_A1", ("c1",)), deal("40", None, ("c1",), open_=False)],
    ),
    Case(
        "keyless deal of a contact the practice does not know: not ours",
        [deal("10", "MB_A1", ("c1",)), deal("40", None, ("c9",))],
    ),
    Case(
        "keyless deal tagged with another practice: not ours",
        [deal("10", "MB_A1", ("c1",)), deal("40", None, ("c1",), practice="rb")],
    ),
    Case(
        "another practice's keyed deal on a shared contact: not ours",
        [deal("10", "MB_A1", ("c1",)), deal("41", "RB_A1", ("c1",), practice="rb")],
    ),
    Case(
        "two open pipeline deals with different keys: an error, but not a confirmed duplicate",
        [deal("10", "MB_A1", ("c1",)), deal("11", "MB_A2", ("c1",))],
        errors=True,
        multi_open={"c1": ("10", "11")},
        needs_review={"c1": ("10", "11")},
    ),
    Case(
        "already remediated copies count nowhere: a re-run has nothing to do",
        [
            deal("10", "MB_A1", ("c1",)),
            deal("20", "MB_A1", ("c1",), open_=False, stage="lost", reason="duplicate of deal 10: same key"),
            deal(
                "40", None, ("c1",), open_=False, stage="lost", reason="duplicate of deal 10: old automation"
            ),
        ],
    ),
    Case(
        "the contact's only other open deal is a copy being closed, the kept one is closed: keyless waits",
        [deal("10", "MB_A1", ("c1",), open_=False), deal("20", "MB_A1", ("c1",)), deal("40", None, ("c1",))],
        ledger={"MB_A1": "10"},
        errors=True,
        duplicate_keys={"MB_A1": ("10", "20")},
        multi_open={"c1": ("20", "40")},
        keyless_open={"40": ("c1",)},
        closures=[("20", SAME_KEY, "10")],
        needs_review={"c1": ("40",)},
    ),
    Case(
        "a keyless deal on two contacts is closed once",
        [deal("10", "MB_A1", ("c1",)), deal("11", "MB_A2", ("c2",)), deal("40", None, ("c1", "c2"))],
        ledger={"MB_A1": "10", "MB_A2": "11"},
        errors=True,
        multi_open={"c1": ("10", "40"), "c2": ("11", "40")},
        keyless_open={"40": ("c1", "c2")},
        closures=[("40", OLD_AUTOMATION, "10")],
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_findings(case: Case) -> None:
    findings = find_duplicates(case.deals, PID)

    assert findings.has_errors is case.errors
    assert findings.has_warnings is (case.warnings or bool(case.keyless_open))
    assert dict(findings.duplicate_keys) == case.duplicate_keys
    assert dict(findings.multi_open_contacts) == case.multi_open
    assert dict(findings.keyless_open) == case.keyless_open


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_plan(case: Case) -> None:
    plan = plan_remediation(case.deals, PID, case.ledger, LOST)

    assert [(c.deal_id, c.kind, c.kept_deal_id) for c in plan.closures] == case.closures
    assert dict(plan.needs_review) == case.needs_review
    # what stays: nothing the plan could have closed, and the check agrees with the plan's forecast
    after = apply_closures(case.deals, plan.closures, LOST)
    remaining = find_duplicates(after, PID)
    assert remaining == plan.remaining
    assert not remaining.duplicate_keys
    # idempotent: planning again on the result closes nothing more
    again = plan_remediation(after, PID, case.ledger, LOST)
    assert again.closures == ()
    assert set(again.already_remediated) >= {c.deal_id for c in plan.closures}


def test_a_closure_moves_the_deal_into_the_lost_stage_of_the_sync_pipeline_with_a_reason() -> None:
    closure = Closure("40", OLD_AUTOMATION, "10", "MB_A1")

    properties = closure.properties(LostStage("pipeline-7", "stage-lost"))

    assert properties == {
        "pipeline": "pipeline-7",
        "dealstage": "stage-lost",
        REASON_PROPERTY: "duplicate of deal 10: old automation deal without ivoris_deal_key, same contact",
    }
    assert Closure("20", SAME_KEY, "10", "MB_A1").reason == "duplicate of deal 10: same ivoris_deal_key"


def test_plan_counts_and_kept_ids() -> None:
    deals = [
        deal("10", "MB_A1"),
        deal("20", "MB_A1"),
        deal("11", "MB_A2", ("c2",)),
        deal("40", None, ("c2",)),
    ]

    plan = plan_remediation(deals, PID, {"MB_A1": "10", "MB_A2": "11"}, LOST)

    assert plan.kept == ("10", "11")
    assert plan.closed_ids == ("20", "40")
    assert plan.counts() == {
        "to_close": 2,
        "to_close_same_key": 1,
        "to_close_old_automation": 1,
        "kept": 2,
        "already_remediated": 0,
        "needs_review": 0,
    }


def test_a_deal_read_twice_is_one_deal() -> None:
    record = deal("10", "MB_A1")

    assert find_duplicates([record, record], PID).duplicate_keys == {}
