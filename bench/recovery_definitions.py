"""The code location bench/recovery_time.py runs under the daemon: the project's definitions with
short client retry budgets, so a run during an outage fails in about a minute instead of after the
production budgets (Ivoris: 12 attempts or 600 s per request; HubSpot: 6 retries with backoff), and
the measurement is about the catch-up, not about how long a doomed run retries."""

from __future__ import annotations

import os

from dagster import Definitions, EnvVar

from biss_pipeline.definitions import build_definitions
from biss_pipeline.resources import mapping_resource
from biss_pipeline.resources.hubspot import HubSpotResource
from biss_pipeline.resources.ivoris import IvorisResource


def _short_retry_definitions() -> Definitions:
    # A function, not module globals: Dagster refuses a module holding two Definitions objects.
    base = build_definitions()
    resources = dict(base.resources or {})
    for practice in mapping_resource().load().active_practices:
        resources[practice.resource_key] = IvorisResource(
            practice_id=practice.practice_id, base_url=practice.ivoris_base_url,
            api_key=EnvVar(practice.api_key_env), max_attempts=2, max_retry_seconds=5.0,
            backoff_initial_s=0.5, backoff_max_s=1.0)
    resources["hubspot"] = HubSpotResource.from_env(host=os.environ["BISS_HUBSPOT_HOST"], max_retries=1,
                                                    backoff_base_s=0.5, backoff_max_s=1.0)
    return Definitions(assets=base.assets, asset_checks=base.asset_checks, jobs=base.jobs,
                       schedules=base.schedules, sensors=base.sensors, resources=resources,
                       executor=base.executor)


defs = _short_retry_definitions()
