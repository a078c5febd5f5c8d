"""Contact roll-ups: what HubSpot shows on a patient's contact record (SPEC §5, last bullet).

| column                   | as implemented                                                              |
| ------------------------ | --------------------------------------------------------------------------- |
| rows                     | one per (`practice_id`, `patient_key`) seen in the appointments (any role)  |
|                          | or the deals, sorted by those keys                                          |
| `num_deals`              | all of the patient's deals                                                  |
| `num_open_deals`         | deals in stages 1–3 (0 or 1 by construction)                                |
| `last_appointment_date`  | latest date ≤ `as_of` of a non-`ignore` appointment that took place:        |
|                          | `completed` or `arrived` (the patient was there even if the chair never     |
|                          | closed it); None if there is none                                           |
| `next_appointment_date`  | earliest date ≥ `as_of` of a non-`ignore` appointment still                 |
|                          | `booked`/`confirmed`. Choice: the as-of day itself counts, because an       |
|                          | appointment still booked on that day has not taken place yet and would      |
|                          | otherwise be neither last nor next                                          |
| `lifetime_revenue_cents` | sum of the revenue of all the patient's deals (open, won, lost), so it      |
|                          | agrees with the deal amounts in HubSpot; entries that count for no deal are |
|                          | not in it                                                                   |

`ignore`-type appointments are left out of both dates: the mapping sheet marks them as irrelevant for
the CRM, the same reason they belong to no deal.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

import pandas as pd

CONTACT_ROLLUPS_SCHEMA: Mapping[str, str] = {
    "practice_id": "str",
    "patient_key": "str",
    "num_deals": "int64",
    "num_open_deals": "int64",
    "last_appointment_date": "object",
    "next_appointment_date": "object",
    "lifetime_revenue_cents": "int64",
}

TOOK_PLACE_STATUSES: frozenset[str] = frozenset({"completed", "arrived"})
UPCOMING_STATUSES: frozenset[str] = frozenset({"booked", "confirmed"})


def _as_day(value: Any) -> date:
    return value.date() if isinstance(value, datetime) else value


def contact_rollups(
    appointments: pd.DataFrame, deals: pd.DataFrame, deal_revenue: pd.DataFrame, as_of: date
) -> pd.DataFrame:
    """One row per patient with deal counts, last/next appointment date and lifetime revenue."""
    as_of = _as_day(as_of)
    rollups: dict[tuple[str, str], dict[str, Any]] = {}

    def rollup(practice_id: str, patient_key: str) -> dict[str, Any]:
        group = (str(practice_id), str(patient_key))
        if group not in rollups:
            rollups[group] = {
                "practice_id": group[0],
                "patient_key": group[1],
                "num_deals": 0,
                "num_open_deals": 0,
                "last_appointment_date": None,
                "next_appointment_date": None,
                "lifetime_revenue_cents": 0,
            }
        return rollups[group]

    for practice_id, patient_key, role, start, status in zip(
        appointments["practice_id"],
        appointments["patient_key"],
        appointments["deal_role"],
        appointments["start"],
        appointments["status"],
        strict=True,
    ):
        row = rollup(practice_id, patient_key)
        if role == "ignore":
            continue
        day = pd.Timestamp(start).date()
        if status in TOOK_PLACE_STATUSES and day <= as_of:
            last = row["last_appointment_date"]
            row["last_appointment_date"] = day if last is None else max(last, day)
        elif status in UPCOMING_STATUSES and day >= as_of:
            upcoming = row["next_appointment_date"]
            row["next_appointment_date"] = day if upcoming is None else min(upcoming, day)

    group_by_deal: dict[str, tuple[str, str]] = {}
    for deal_key, practice_id, patient_key, is_open in zip(
        deals["deal_key"], deals["practice_id"], deals["patient_key"], deals["is_open"], strict=True
    ):
        row = rollup(practice_id, patient_key)
        row["num_deals"] += 1
        row["num_open_deals"] += int(bool(is_open))
        group_by_deal[str(deal_key)] = (row["practice_id"], row["patient_key"])

    revenue_by_group: dict[tuple[str, str], int] = defaultdict(int)
    for deal_key, amount in zip(deal_revenue["deal_key"], deal_revenue["amount_cents"], strict=True):
        if str(deal_key) not in group_by_deal:
            raise ValueError(f"deal_revenue names deal {deal_key!r}, which is not in deals")
        revenue_by_group[group_by_deal[str(deal_key)]] += int(amount)
    for group, amount in revenue_by_group.items():
        rollups[group]["lifetime_revenue_cents"] = amount

    rows = [rollups[group] for group in sorted(rollups)]
    return pd.DataFrame(
        {
            column: pd.Series([row[column] for row in rows], dtype=dtype)
            for column, dtype in CONTACT_ROLLUPS_SCHEMA.items()
        }
    )
