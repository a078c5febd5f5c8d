"""One practice's Ivoris server as a Dagster resource (resource key `ivoris_<practice>`).

The client itself (`biss_pipeline.domain.ivoris.client`) knows nothing of Dagster; this resource
holds what a deployment configures: the site's URL, its API key (an `EnvVar`, never a literal) and
where the site differs from the contract's routes, parameter names, paging and retry budget.
"""

from __future__ import annotations

from typing import Any

from dagster import ConfigurableResource
from pydantic import Field

from biss_pipeline.domain.ivoris.client import (
    IvorisClient,
    IvorisClientSettings,
    IvorisParams,
    IvorisRoutes,
    with_overrides,
)

_DEFAULTS = IvorisClientSettings()


class IvorisResource(ConfigurableResource):
    """One practice's Ivoris server. The API key comes from an environment variable (`EnvVar`)."""

    practice_id: str = Field(description="Practice id from the mapping config (e.g. 'mb').")
    base_url: str = Field(description="Base URL of the practice's on-premise Ivoris server.")
    api_key: str = Field(description="API key; set it with EnvVar, never in code or config files.")
    auth_header: str = _DEFAULTS.auth_header
    routes: dict[str, str] = Field(
        default_factory=dict, description="Route templates that differ from the contract's, by name "
        f"({', '.join(vars(IvorisRoutes()))}).")
    params: dict[str, str] = Field(
        default_factory=dict, description="Query parameter names that differ from the contract's, by "
        f"name ({', '.join(vars(IvorisParams()))}).")
    page_size: int = Field(default=_DEFAULTS.page_size, description="Records per page request.")
    max_concurrency: int = Field(default=_DEFAULTS.max_concurrency,
                                 description="Requests in flight at once against this site.")
    timeout_s: float = _DEFAULTS.timeout_s
    max_attempts: int = Field(default=_DEFAULTS.max_attempts,
                              description="Attempts per request before the run fails.")
    max_retry_seconds: float = Field(default=_DEFAULTS.max_retry_seconds,
                                     description="Give up on one request after this long.")
    backoff_initial_s: float = _DEFAULTS.backoff_initial_s
    backoff_max_s: float = _DEFAULTS.backoff_max_s
    verify_tls: bool = _DEFAULTS.verify_tls
    chunk_days: int = Field(default=_DEFAULTS.chunk_days,
                            description="Days fetched and written per step of a ranged run.")
    page_rereads: int = Field(default=_DEFAULTS.page_rereads,
                              description="Re-reads of a page short of its total before narrowing.")
    narrow_page_size: int = Field(default=_DEFAULTS.narrow_page_size,
                                  description="Page size of the narrowest re-read (paging lies).")
    repair_period_days: int = Field(default=_DEFAULTS.repair_period_days,
                                    description="The entry repair asks every patient once within this "
                                    "many days (plus changed and flagged patients every run).")

    @property
    def settings(self) -> IvorisClientSettings:
        return IvorisClientSettings(
            auth_header=self.auth_header,
            routes=with_overrides(IvorisRoutes(), self.routes, "Ivoris route"),
            params=with_overrides(IvorisParams(), self.params, "Ivoris query parameter"),
            page_size=self.page_size, max_concurrency=self.max_concurrency, timeout_s=self.timeout_s,
            max_attempts=self.max_attempts, max_retry_seconds=self.max_retry_seconds,
            backoff_initial_s=self.backoff_initial_s, backoff_max_s=self.backoff_max_s,
            verify_tls=self.verify_tls, chunk_days=self.chunk_days, page_rereads=self.page_rereads,
            narrow_page_size=self.narrow_page_size, repair_period_days=self.repair_period_days)

    def client(self, **overrides: Any) -> IvorisClient:
        """A client with this resource's settings; keyword overrides for special callers (a probe)."""
        return IvorisClient(site=self.practice_id, base_url=self.base_url, api_key=self.api_key,
                            settings=self.settings, **overrides)
