"""Entry classification by the `entry_rules` tab (SPEC §4)."""

from __future__ import annotations

import pandas as pd
import pytest

from biss_pipeline.domain.deals import EntryRule, classify_entries, entry_rule_problems, unmatched_entries
from tests.logic.factories import RULES, E, entries_frame


@pytest.mark.parametrize(
    ("entry_type", "code", "expected"),
    [
        ("goz", "1040", (True, 0, True, "goz", "Prophylaxe")),  # specific rule above the 1* pattern wins
        ("goz", "2060", (True, 1, True, "goz", "Füllung")),
        ("goz", "3010", (True, 2, True, "goz", "Chirurgie")),
        ("goz", "5000", (True, 4, True, "goz", "Sonstiges")),  # catch-all
        ("bema", "Ä1", (True, 5, False, "bema", "Sonstiges")),  # known, not billable
        ("bema", "13a", (True, 6, True, "bema", "Füllung")),
        ("lab", "L-0815", (True, 9, True, "labor", "Prothetik")),
        ("lab", "l-0815", (False, None, False, None, None)),  # case-sensitive: no rule
        ("lab", "X", (False, None, False, None, None)),
        ("pabg", "2060", (True, 10, True, "pabg", "Sonstiges")),  # never a GOZ rule, same code or not
        ("text", "Befund", (True, 11, False, "text", "Sonstiges")),
    ],
)
def test_first_matching_rule_wins(entry_type: str, code: str, expected: tuple[object, ...]) -> None:
    classified = classify_entries(entries_frame([E("MB_1", 100, entry_type=entry_type, code=code)]), RULES)
    row = classified.iloc[0]
    actual = tuple(
        None if pd.isna(row[column]) else row[column]
        for column in ("rule_matched", "rule_index", "billable", "revenue_bucket", "treatment_category")
    )
    assert actual == expected


def test_classification_keeps_rows_index_and_columns() -> None:
    entries = entries_frame([E("MB_1", 100), E("MB_2", 200, entry_type="lab", code="X")]).set_index(
        pd.Index([10, 20])
    )
    classified = classify_entries(entries, RULES)
    assert classified.index.tolist() == [10, 20]
    assert classified["entry_key"].tolist() == ["MB_1", "MB_2"]
    assert classified["billable"].dtype == bool
    assert str(classified["rule_index"].dtype) == "Int64"
    assert unmatched_entries(classified)["entry_key"].tolist() == ["MB_2"]
    assert "billable" not in entries.columns  # the input is not modified


def test_missing_code_matches_as_empty_string() -> None:
    rules = [EntryRule("text", "", False, "text", "Sonstiges")]
    entries = entries_frame([E("MB_1", 0, entry_type="text")]).assign(code=[None])
    assert classify_entries(entries, rules)["rule_matched"].tolist() == [True]


def test_empty_entries() -> None:
    classified = classify_entries(entries_frame([]), RULES)
    assert classified.empty
    assert {"billable", "revenue_bucket", "treatment_category", "rule_index", "rule_matched"} <= set(
        classified.columns
    )


def test_pabg_bucket_must_be_its_own() -> None:
    rules = [
        EntryRule("goz", "*", True, "pabg", "Sonstiges"),
        EntryRule("pabg", "*", True, "pabg", "Sonstiges"),
    ]
    assert entry_rule_problems(rules) == [
        "rule 0 (goz/*) uses revenue bucket 'pabg', which belongs to pabg entries"
    ]
    with pytest.raises(ValueError, match="belongs to pabg"):
        classify_entries(entries_frame([E("MB_1", 100)]), rules)
    assert entry_rule_problems(RULES) == []


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("privat", "*", True, "goz", "Sonstiges"), "entry_type"),
        (("goz", "*", True, "goz", "Kosmetik"), "treatment_category"),
        (("goz", "*", True, "", "Sonstiges"), "revenue_bucket"),
    ],
)
def test_rule_rows_are_checked(arguments: tuple[str, str, bool, str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        EntryRule(*arguments)


def test_rules_are_frozen() -> None:
    rule = RULES[0]
    with pytest.raises(AttributeError):
        rule.billable = False  # type: ignore[misc]
