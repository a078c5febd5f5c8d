"""The warehouse database: SQLite file by default, PostgreSQL when `BISS_WAREHOUSE_URL` is set.

The schema is owned by Alembic migrations (`biss_pipeline/domain/warehouse/migrations`); opening it
upgrades to the newest revision before its first use in a process, so a fresh database and an
old one both end up on the current schema without a manual step. On PostgreSQL an advisory
lock serialises concurrent upgrades from parallel runs.

Every write of partitioned data is "replace the partition": one transaction deletes the
partition's rows and inserts the new ones, so re-running a partition is idempotent and a
failed run leaves the previous rows in place.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig

from biss_pipeline.domain.paths import data_dir
from biss_pipeline.domain.warehouse import schema

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
INSERT_CHUNK = 5_000
_MIGRATION_LOCK_ID = 0x5B155  # arbitrary constant shared by every process of this project

_engines: dict[str, sa.Engine] = {}
_migrated: set[str] = set()
_engines_lock = threading.Lock()


def default_warehouse_url() -> str:
    return f"sqlite:///{data_dir() / 'warehouse.sqlite'}"


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers work while a run writes; the busy timeout rides out short write locks.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def get_engine(url: str) -> sa.Engine:
    with _engines_lock:
        engine = _engines.get(url)
        if engine is None:
            if url.startswith("sqlite"):
                engine = sa.create_engine(url, connect_args={"timeout": 30})
                sa.event.listen(engine, "connect", _configure_sqlite)
            else:
                engine = sa.create_engine(url, pool_pre_ping=True)
            _engines[url] = engine
        return engine


def dispose_engine(url: str) -> None:
    """Close an engine's connections and forget it (tests drop their databases afterwards)."""
    with _engines_lock:
        engine = _engines.pop(url, None)
        _migrated.discard(url)
    if engine is not None:
        engine.dispose()


def migrate(engine: sa.Engine) -> None:
    """Upgrade the database to the newest Alembic revision (no-op when already there)."""
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(sa.text("SELECT pg_advisory_xact_lock(:id)"), {"id": _MIGRATION_LOCK_ID})
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def current_revision(engine: sa.Engine) -> str | None:
    with engine.connect() as connection:
        if not sa.inspect(connection).has_table("alembic_version"):
            return None
        return connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()


class Warehouse:
    """Typed access to the warehouse tables over one engine (usable without Dagster)."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    @contextmanager
    def transaction(self) -> Iterator[sa.Connection]:
        with self.engine.begin() as connection:
            yield connection

    @staticmethod
    def _insert(connection: sa.Connection, table: sa.Table, rows: Sequence[dict[str, Any]]) -> None:
        for start in range(0, len(rows), INSERT_CHUNK):
            connection.execute(table.insert(), list(rows[start:start + INSERT_CHUNK]))

    def replace_partitions(
        self,
        table: sa.Table,
        practice_id: str,
        date_from: dt.date,
        date_to: dt.date,
        rows: Sequence[dict[str, Any]],
        connection: sa.Connection | None = None,
        extra_filter: sa.ColumnElement[bool] | None = None,
    ) -> int:
        """Replace one practice's rows for the inclusive date window, atomically."""
        condition = sa.and_(
            table.c.practice_id == practice_id,
            table.c.partition_date >= date_from,
            table.c.partition_date <= date_to,
        )
        if extra_filter is not None:
            condition = sa.and_(condition, extra_filter)
        outside = [r for r in rows if not date_from <= r["partition_date"] <= date_to]
        if outside:
            raise ValueError(f"{len(outside)} rows for {table.name} fall outside {date_from}..{date_to}")
        if connection is None:
            with self.transaction() as conn:
                conn.execute(table.delete().where(condition))
                self._insert(conn, table, rows)
        else:
            connection.execute(table.delete().where(condition))
            self._insert(connection, table, rows)
        return len(rows)

    def replace_practice_rows(self, table: sa.Table, practice_id: str,
                              rows: Sequence[dict[str, Any]]) -> int:
        """Replace an unpartitioned table's rows for one practice (reference data)."""
        with self.transaction() as connection:
            connection.execute(table.delete().where(table.c.practice_id == practice_id))
            self._insert(connection, table, rows)
        return len(rows)

    def read_rows(self, statement: sa.Executable) -> list[dict[str, Any]]:
        with self.engine.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(statement)]

    def count_rows(self, table: sa.Table, practice_id: str | None = None) -> int:
        statement = sa.select(sa.func.count()).select_from(table)
        if practice_id is not None:
            statement = statement.where(table.c.practice_id == practice_id)
        with self.engine.connect() as connection:
            return int(connection.execute(statement).scalar_one())

    def table_counts(self) -> dict[str, int]:
        return {name: self.count_rows(table) for name, table in schema.metadata.tables.items()}


def open_warehouse(url: str | None = None) -> Warehouse:
    """The warehouse at `url` (default: the embedded SQLite file), migrated to the newest schema
    once per process and URL."""
    url = url or default_warehouse_url()
    engine = get_engine(url)
    with _engines_lock:
        needs_migration = url not in _migrated
    if needs_migration:
        migrate(engine)
        with _engines_lock:
            _migrated.add(url)
    return Warehouse(engine)
