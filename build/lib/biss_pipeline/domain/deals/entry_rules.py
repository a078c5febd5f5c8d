"""Classification of Ivoris document entries (billing lines) by the `entry_rules` tab of the mapping sheet.

Rule table, as implemented (SPEC §4):

| rule              | behaviour                                                                          |
| ----------------- | ---------------------------------------------------------------------------------- |
| match             | same `entry_type` (exact) and `code` matches `code_pattern` (shell glob, fnmatch,  |
|                   | case-sensitive; a missing code matches as the empty string)                        |
| precedence        | the first matching rule in list order wins, so specific patterns go above `*`      |
| no match          | not billable, no bucket, no category, `rule_matched` False, `rule_index` NA — the  |
|                   | pipeline quarantines or flags these rows; they never count as revenue              |
| non-billable rule | matched (`rule_matched` True) but `billable` False: known, deliberately not        |
|                   | revenue                                                                            |
| `pabg`            | has its own rule row(s) and its own revenue bucket; no other entry type may use a  |
|                   | bucket of a billable `pabg` rule (checked, `ValueError`); since every entry gets   |
|                   | exactly one rule, it lands in exactly one bucket and is never counted twice        |
| categories        | one of `TREATMENT_CATEGORIES` (checked when the rule is built)                     |
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase

import pandas as pd

ENTRY_TYPES: tuple[str, ...] = ("bema", "goz", "mat", "lab", "pabg", "text")

TREATMENT_CATEGORIES: tuple[str, ...] = (
    "Prophylaxe",
    "Füllung",
    "Endodontie",
    "Parodontologie",
    "Prothetik",
    "Implantologie",
    "Chirurgie",
    "KFO",
    "Sonstiges",
)

CLASSIFICATION_COLUMNS: tuple[str, ...] = (
    "rule_matched",
    "rule_index",
    "billable",
    "revenue_bucket",
    "treatment_category",
)


@dataclass(frozen=True)
class EntryRule:
    """One row of the `entry_rules` tab."""

    entry_type: str
    code_pattern: str
    billable: bool
    revenue_bucket: str
    treatment_category: str

    def __post_init__(self) -> None:
        # A typo in the sheet would otherwise silently turn a whole entry type into unmatched rows.
        if self.entry_type not in ENTRY_TYPES:
            raise ValueError(f"entry rule has unknown entry_type {self.entry_type!r}; expected {ENTRY_TYPES}")
        if self.treatment_category not in TREATMENT_CATEGORIES:
            raise ValueError(
                f"entry rule {self.entry_type}/{self.code_pattern} has unknown treatment_category "
                f"{self.treatment_category!r}; expected one of {TREATMENT_CATEGORIES}"
            )
        if not self.revenue_bucket:
            raise ValueError(f"entry rule {self.entry_type}/{self.code_pattern} has no revenue_bucket")

    def matches(self, entry_type: str, code: str) -> bool:
        return entry_type == self.entry_type and fnmatchcase(code, self.code_pattern)


def entry_rule_problems(rules: Sequence[EntryRule]) -> list[str]:
    """Problems with a rule table as a whole (the single rules check themselves)."""
    problems: list[str] = []
    pabg_buckets = {rule.revenue_bucket for rule in rules if rule.entry_type == "pabg" and rule.billable}
    for index, rule in enumerate(rules):
        if rule.entry_type != "pabg" and rule.billable and rule.revenue_bucket in pabg_buckets:
            problems.append(
                f"rule {index} ({rule.entry_type}/{rule.code_pattern}) uses revenue bucket "
                f"{rule.revenue_bucket!r}, which belongs to pabg entries"
            )
    return problems


def match_entry_rule(entry_type: str, code: str, rules: Sequence[EntryRule]) -> int | None:
    """Index of the first rule that matches, or None."""
    for index, rule in enumerate(rules):
        if rule.matches(entry_type, code):
            return index
    return None


def classify_entries(entries: pd.DataFrame, rules: Sequence[EntryRule]) -> pd.DataFrame:
    """Copy of `entries` with the classification columns added.

    Added columns: `rule_matched` (bool), `rule_index` (Int64, NA when unmatched), `billable` (bool),
    `revenue_bucket` and `treatment_category` (str, NA when unmatched).
    """
    problems = entry_rule_problems(rules)
    if problems:
        raise ValueError("invalid entry rules: " + "; ".join(problems))

    # A chain has hundreds of thousands of entries but only a few hundred distinct codes.
    rule_by_type_and_code: dict[tuple[str, str], int | None] = {}
    rule_indexes: list[int | None] = []
    for entry_type, code in zip(entries["entry_type"], entries["code"], strict=True):
        code_text = "" if pd.isna(code) else str(code)
        lookup = (str(entry_type), code_text)
        if lookup not in rule_by_type_and_code:
            rule_by_type_and_code[lookup] = match_entry_rule(lookup[0], code_text, rules)
        rule_indexes.append(rule_by_type_and_code[lookup])

    matched_rules = [None if index is None else rules[index] for index in rule_indexes]
    classified = entries.copy()
    classified["rule_matched"] = pd.Series(
        [rule is not None for rule in matched_rules], index=entries.index, dtype=bool
    )
    classified["rule_index"] = pd.Series(rule_indexes, index=entries.index, dtype="Int64")
    classified["billable"] = pd.Series(
        [rule is not None and rule.billable for rule in matched_rules], index=entries.index, dtype=bool
    )
    classified["revenue_bucket"] = pd.Series(
        [None if rule is None else rule.revenue_bucket for rule in matched_rules],
        index=entries.index,
        dtype="str",
    )
    classified["treatment_category"] = pd.Series(
        [None if rule is None else rule.treatment_category for rule in matched_rules],
        index=entries.index,
        dtype="str",
    )
    return classified


def unmatched_entries(classified_entries: pd.DataFrame) -> pd.DataFrame:
    """The entries no rule matched: candidates for quarantine or a data-quality flag."""
    return classified_entries.loc[~classified_entries["rule_matched"]]
