"""The warehouse as a Dagster resource (resource key `warehouse`)."""

from __future__ import annotations

from dagster import ConfigurableResource
from pydantic import Field

from biss_pipeline.domain.warehouse.store import Warehouse, default_warehouse_url, open_warehouse


class WarehouseResource(ConfigurableResource):
    """The warehouse database. Leave `url` unset for the embedded SQLite file."""

    url: str | None = Field(
        default=None,
        description="SQLAlchemy URL (set with EnvVar('BISS_WAREHOUSE_URL')); empty means the "
                    "SQLite file in the project data directory.",
    )

    def resolved_url(self) -> str:
        return self.url or default_warehouse_url()

    def get(self) -> Warehouse:
        return open_warehouse(self.resolved_url())
