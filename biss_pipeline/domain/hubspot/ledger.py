"""The HubSpot sync ledger (`hubspot_ledger`): what HubSpot confirmed, per record and per association.

Conventions
-----------
Records (object_type `contacts`, `deals`, `appointments`):

| column          | meaning                                                                      |
| --------------- | ---------------------------------------------------------------------------- |
| record_key      | the unique Ivoris key (`MB_10423`)                                           |
| content_hash    | sha256 of the desired payload the last confirmed write was made from (kept   |
|                 | when a later attempt fails)                                                  |
| hubspot_id      | the object id from the upsert result                                        |
| status          | `synced`; `flagged` (confirmed, something withheld, see flags); `error`      |
| attempts        | failed attempts since the last confirmed write                               |
| last_error      | code summary (no values, no personal data)                                   |
| flags           | comma-separated, e.g. `email_withheld_shared`                                |
| last_attempt_at | UTC time of the last attempt; synced_at: of the last confirmed write         |
| last_run_id     | the Dagster run that last wrote the row (what an intraday check verifies)    |

A contact row with status `suppressed` is a patient whose HubSpot contact was deleted there (SPEC §8,
possibly an erasure request): nothing of the patient is sent again until `biss-pipeline hubspot
unsuppress` deletes that row.

Associations (object_type `association:<from>:<to>`, e.g. `association:contacts:deals`): record_key
`<from key>><to key>` (`MB_1>MB_A1`), hubspot_id `<from id>><to id>`, content_hash sha256 of
`<from id>><to id>:<type id>` (so a re-created end re-sends the pair), status `synced` or `error`.

Only the sync engine writes it, one transaction per batch, so a run that stops midway keeps every
batch HubSpot confirmed and the next run resumes with the rest.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from biss_pipeline.domain.hubspot.diff import STATUS_ERROR, STATUS_SUPPRESSED, LedgerEntry
from biss_pipeline.domain.warehouse.schema import hubspot_ledger, hubspot_sync_log

if TYPE_CHECKING:  # the resource module imports Dagster; the ledger only needs the Warehouse's methods
    from biss_pipeline.domain.warehouse.store import Warehouse

_MAX_ERROR_LENGTH = 500


@dataclass(frozen=True)
class LedgerUpdate:
    """One outcome to record. A failure keeps the previous content hash and HubSpot id."""

    object_type: str
    record_key: str
    status: str
    content_hash: str | None = None
    hubspot_id: str | None = None
    flags: str | None = None
    error: str | None = None

    @property
    def failed(self) -> bool:
        return self.status == STATUS_ERROR


@dataclass(frozen=True)
class SyncLogEntry:
    """One repair, for `hubspot_sync_log`: never values or personal data, only keys, names and codes."""

    action: str
    object_type: str
    record_key: str
    reason: str = ""


class Ledger:
    def __init__(self, warehouse: Warehouse, run_id: str | None = None) -> None:
        self.warehouse = warehouse
        self.run_id = run_id

    # -- the sync log ----------------------------------------------------------------------------

    def log(self, practice_id: str, entries: Sequence[SyncLogEntry], now: datetime | None = None) -> None:
        if not entries:
            return
        now = now or datetime.now(UTC)
        rows = [
            {
                "practice_id": practice_id,
                "run_id": self.run_id,
                "logged_at": now,
                "action": e.action,
                "object_type": e.object_type,
                "record_key": e.record_key,
                "reason": (e.reason or "")[:_MAX_ERROR_LENGTH] or None,
            }
            for e in entries
        ]
        with self.warehouse.transaction() as connection:
            for start in range(0, len(rows), 1000):
                connection.execute(hubspot_sync_log.insert(), rows[start : start + 1000])

    def read_log(self, practice_id: str) -> list[dict[str, Any]]:
        table = hubspot_sync_log
        return self.warehouse.read_rows(
            sa.select(table).where(table.c.practice_id == practice_id).order_by(table.c.id)
        )

    # -- suppression (SPEC §8: a contact deleted in HubSpot) -----------------------------------

    def suppressed(self, practice_id: str) -> list[str]:
        table = hubspot_ledger
        rows = self.warehouse.read_rows(
            sa.select(table.c.record_key).where(
                table.c.practice_id == practice_id,
                table.c.object_type == "contacts",
                table.c.status == STATUS_SUPPRESSED,
            )
        )
        return sorted(str(r["record_key"]) for r in rows)

    def suppress(self, practice_id: str, keys: Sequence[str], reason: str,
                 now: datetime | None = None) -> None:
        """Mark contacts suppressed; their HubSpot id is dropped (the object is gone)."""
        self._mark_gone(practice_id, "contacts", keys, STATUS_SUPPRESSED, reason, now)

    def unsuppress(self, practice_id: str, key: str) -> bool:
        """Lift a suppression: the contact row goes, so the next sync creates the contact again and
        with it the patient's deals, appointments and associations. False when it was not suppressed."""
        table = hubspot_ledger
        with self.warehouse.transaction() as connection:
            result = connection.execute(
                table.delete().where(
                    table.c.practice_id == practice_id,
                    table.c.object_type == "contacts",
                    table.c.record_key == key,
                    table.c.status == STATUS_SUPPRESSED,
                )
            )
        return bool(result.rowcount)

    def forget_ids(self, practice_id: str, object_type: str, keys: Sequence[str], reason: str,
                   now: datetime | None = None) -> None:
        """The HubSpot objects of these keys are gone: drop id and hash, so the next plan creates them
        (an upsert on the unique key) and every association pair with them is sent again (new ids)."""
        self._mark_gone(practice_id, object_type, keys, STATUS_ERROR, reason, now)

    def _mark_gone(self, practice_id: str, object_type: str, keys: Sequence[str], status: str,
                   reason: str, now: datetime | None) -> None:
        """The objects of these keys are gone from HubSpot: drop id and hash, record why and when."""
        if not keys:
            return
        now = now or datetime.now(UTC)
        table = hubspot_ledger
        with self.warehouse.transaction() as connection:
            for start in range(0, len(keys), 500):
                connection.execute(
                    table.update()
                    .where(table.c.practice_id == practice_id, table.c.object_type == object_type,
                           table.c.record_key.in_(list(keys[start : start + 500])))
                    .values(status=status, hubspot_id=None, content_hash=None,
                            last_error=reason[:_MAX_ERROR_LENGTH], last_attempt_at=now,
                            last_run_id=self.run_id)
                )

    def delete_practice_associations(self, practice_id: str) -> int:
        table = hubspot_ledger
        with self.warehouse.transaction() as connection:
            result = connection.execute(
                table.delete().where(table.c.practice_id == practice_id,
                                     table.c.object_type.like("association:%"))
            )
        return int(result.rowcount or 0)

    def written_by_run(self, practice_id: str, object_type: str, run_id: str) -> dict[str, str]:
        """key → HubSpot id of the rows `run_id` confirmed (the intraday check's scope)."""
        table = hubspot_ledger
        rows = self.warehouse.read_rows(
            sa.select(table.c.record_key, table.c.hubspot_id).where(
                table.c.practice_id == practice_id,
                table.c.object_type == object_type,
                table.c.last_run_id == run_id,
                table.c.hubspot_id.is_not(None),
            )
        )
        return {str(r["record_key"]): str(r["hubspot_id"]) for r in rows}

    def load(
        self, practice_id: str, object_types: Iterable[str] | None = None
    ) -> dict[str, dict[str, LedgerEntry]]:
        """object_type → record_key → entry, for one practice."""
        table = hubspot_ledger
        statement = sa.select(table).where(table.c.practice_id == practice_id)
        if object_types is not None:
            statement = statement.where(table.c.object_type.in_(list(object_types)))
        result: dict[str, dict[str, LedgerEntry]] = defaultdict(dict)
        for row in self.warehouse.read_rows(statement):
            result[row["object_type"]][row["record_key"]] = LedgerEntry(
                object_type=row["object_type"],
                record_key=row["record_key"],
                content_hash=row["content_hash"],
                hubspot_id=row["hubspot_id"],
                status=row["status"],
                attempts=int(row["attempts"] or 0),
                flags=row["flags"],
                last_error=row["last_error"],
                last_attempt_at=row["last_attempt_at"],
                synced_at=row["synced_at"],
            )
        return dict(result)

    def record(self, practice_id: str, updates: Sequence[LedgerUpdate], now: datetime | None = None) -> None:
        if not updates:
            return
        now = now or datetime.now(UTC)
        successes = [u for u in updates if not u.failed]
        failures = [u for u in updates if u.failed]
        with self.warehouse.transaction() as connection:
            if successes:
                self._upsert(connection, practice_id, successes, now, failed=False)
            if failures:
                self._upsert(connection, practice_id, failures, now, failed=True)

    def delete(self, object_type: str, keys: Sequence[str]) -> None:
        if not keys:
            return
        table = hubspot_ledger
        with self.warehouse.transaction() as connection:
            for start in range(0, len(keys), 500):
                connection.execute(
                    table.delete().where(
                        table.c.object_type == object_type,
                        table.c.record_key.in_(list(keys[start : start + 500])),
                    )
                )

    def _upsert(
        self,
        connection: sa.Connection,
        practice_id: str,
        updates: Sequence[LedgerUpdate],
        now: datetime,
        *,
        failed: bool,
    ) -> None:
        table = hubspot_ledger
        dialect = connection.dialect.name
        insert: postgresql.Insert | sqlite.Insert
        if dialect == "postgresql":
            insert = postgresql.insert(table)
        elif dialect == "sqlite":
            insert = sqlite.insert(table)
        else:  # pragma: no cover - the warehouse runs on SQLite or PostgreSQL only
            raise NotImplementedError(f"ledger upsert for {dialect}")
        excluded = insert.excluded
        if failed:
            # a failure never overwrites what HubSpot last confirmed
            set_: dict[str, Any] = {
                "status": excluded.status,
                "attempts": table.c.attempts + 1,
                "last_error": excluded.last_error,
                "last_attempt_at": excluded.last_attempt_at,
                "practice_id": excluded.practice_id,
                "last_run_id": excluded.last_run_id,
            }
        else:
            set_ = {
                "status": excluded.status,
                "content_hash": excluded.content_hash,
                "hubspot_id": excluded.hubspot_id,
                "attempts": 0,
                "last_error": None,
                "flags": excluded.flags,
                "last_attempt_at": excluded.last_attempt_at,
                "synced_at": excluded.synced_at,
                "practice_id": excluded.practice_id,
                "last_run_id": excluded.last_run_id,
            }
        statement = insert.on_conflict_do_update(index_elements=["object_type", "record_key"], set_=set_)
        rows = [
            {
                "object_type": u.object_type,
                "record_key": u.record_key,
                "practice_id": practice_id,
                "content_hash": None if failed else u.content_hash,
                "hubspot_id": u.hubspot_id,
                "status": u.status,
                "attempts": 1 if failed else 0,
                "last_error": (u.error or "")[:_MAX_ERROR_LENGTH] or None,
                "flags": u.flags,
                "last_attempt_at": now,
                "synced_at": None if failed else now,
                "last_run_id": self.run_id,
            }
            for u in updates
        ]
        for start in range(0, len(rows), 1000):
            connection.execute(statement, rows[start : start + 1000])
