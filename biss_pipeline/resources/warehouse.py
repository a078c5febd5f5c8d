"""The warehouse as a Dagster resource (resource key `warehouse`)."""

from __future__ import annotations

from dagster import ConfigurableResource, InitResourceContext
from pydantic import Field

from biss_pipeline.domain.warehouse.store import Warehouse, default_warehouse_url, open_warehouse


class ProductionConfigError(RuntimeError):
    """A production deployment lacks a setting it cannot run without."""


def _server_storage(instance: object) -> bool:
    storage = getattr(instance, "run_storage", None)
    return type(storage).__module__.split(".")[0] in {"dagster_postgres", "dagster_mysql"}


class WarehouseResource(ConfigurableResource):
    """The warehouse database. Leave `url` unset for the embedded SQLite file."""

    url: str | None = Field(
        default=None,
        description="SQLAlchemy URL (set with EnvVar('BISS_WAREHOUSE_URL')); empty means the "
                    "SQLite file in the project data directory.",
    )

    def setup_for_execution(self, context: InitResourceContext) -> None:
        # The embedded SQLite file is a development default. On an instance whose storage is a
        # server (dagster.prod.yaml's PostgreSQL) it would be a throwaway file in each run's pod:
        # refuse it before the run writes anything there.
        instance = context.instance
        if self.url is None and instance is not None and _server_storage(instance):
            raise ProductionConfigError(
                "BISS_WAREHOUSE_URL is not set, but this Dagster instance keeps its storage on a "
                "server (a production instance): set BISS_WAREHOUSE_URL to the warehouse database "
                "instead of falling back to a local SQLite file")

    def resolved_url(self) -> str:
        return self.url or default_warehouse_url()

    def get(self) -> Warehouse:
        return open_warehouse(self.resolved_url())
