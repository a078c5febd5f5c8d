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

_base = build_definitions()
_resources = dict(_base.resources or {})
for _practice in mapping_resource().load().active_practices:
    _resources[_practice.resource_key] = IvorisResource(
        practice_id=_practice.practice_id, base_url=_practice.ivoris_base_url,
        api_key=EnvVar(_practice.api_key_env), max_attempts=2, max_retry_seconds=5.0,
        backoff_initial_s=0.5, backoff_max_s=1.0)
_resources["hubspot"] = HubSpotResource.from_env(host=os.environ["BISS_HUBSPOT_HOST"], max_retries=1,
                                                 backoff_base_s=0.5, backoff_max_s=1.0)

defs = Definitions(assets=_base.assets, asset_checks=_base.asset_checks, jobs=_base.jobs,
                   schedules=_base.schedules, sensors=_base.sensors, resources=_resources,
                   executor=_base.executor)
