"""HubSpot CRM as a Dagster resource (resource key `hubspot`).

The client (`biss_pipeline.domain.hubspot.client`) knows nothing of Dagster; this resource holds what
a deployment configures: the token (an `EnvVar`), the host, the account tier and the retry budget.
"""

from __future__ import annotations

from typing import Any

from dagster import ConfigurableResource, EnvVar
from pydantic import Field

from biss_pipeline.domain.hubspot.client import (
    ACCESS_TOKEN_ENV,
    HUBSPOT_API_HOST,
    MAX_BATCH,
    HubSpotClient,
    RetrySettings,
)


class HubSpotResource(ConfigurableResource):
    """HubSpot CRM. Build it with `HubSpotResource.from_env()` so the token comes from the environment."""

    access_token: str = Field(
        description="Private-app / service-key token; set it with EnvVar, never inline."
    )
    host: str = Field(
        default=HUBSPOT_API_HOST, description="API base URL (the emulator's in tests and demos)."
    )
    tier: str = Field(
        default="professional",
        description="starter | professional | enterprise: sizes the client-side rate limiter.",
    )
    dry_run: bool = Field(default=False, description="Report what would change; write nothing.")
    batch_size: int = Field(default=MAX_BATCH, description="Inputs per batch call (1–100).")
    max_retries: int = Field(
        default=6, description="Retries per call for 429, 5xx, 423 and connection errors."
    )
    backoff_base_s: float = Field(
        default=1.0, description="First backoff for 5xx/connection errors; doubles."
    )
    backoff_max_s: float = Field(default=30.0, description="Longest single backoff.")
    rate_limit_safety: float = Field(
        default=1.0, description="Share of the tier's 10-s limit this client may use at most."
    )
    rate_limit_reserve: float = Field(
        default=0.05,
        description="Share of the 10-s limit HubSpot reports (X-HubSpot-RateLimit-Max) left to the "
                    "portal's other integrations.",
    )
    max_concurrency: int = Field(default=8, description="Batch calls in flight at once (latency).")
    verify: str = Field(
        default="auto",
        description="auto: nightly runs (tag sync=nightly) reconcile in full, others verify what they "
                    "wrote; full: every run reconciles in full.",
    )
    request_timeout_s: float = Field(default=60.0, description="Read timeout per request.")

    @classmethod
    def from_env(cls, env_var: str = ACCESS_TOKEN_ENV, **kwargs: Any) -> HubSpotResource:
        return cls(access_token=EnvVar(env_var), **kwargs)

    def get_client(self, max_retries: int | None = None) -> HubSpotClient:
        """`max_retries` overrides the configured retries (a probe that must not wait makes one try)."""
        if not 1 <= self.batch_size <= MAX_BATCH:
            raise ValueError(f"batch_size must be within 1..{MAX_BATCH}, got {self.batch_size}")
        return HubSpotClient(
            self.access_token,
            self.host,
            tier=self.tier,
            retry=RetrySettings(self.max_retries if max_retries is None else max_retries,
                                self.backoff_base_s, self.backoff_max_s),
            rate_limit_safety=self.rate_limit_safety,
            rate_limit_reserve=self.rate_limit_reserve,
            request_timeout_s=self.request_timeout_s,
        )
