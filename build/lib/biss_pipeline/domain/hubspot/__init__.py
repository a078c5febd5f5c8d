"""HubSpot sync layer: portal setup, diff-based batched upserts with a ledger, dry run.

| module     | contents                                                                       |
| ---------- | ------------------------------------------------------------------------------ |
| `model`    | object kinds, property catalog, pipeline spec, `SyncMapping` (pure)            |
| `payloads` | warehouse rows → HubSpot payloads and content hashes (pure)                    |
| `diff`     | desired state vs. ledger → plans; batching helpers (pure)                      |
| `api`      | plain types, errors and the client Protocol the engine talks to (pure)         |
| `desired`  | reads one practice's desired state from the warehouse                          |
| `ledger`   | `hubspot_ledger` access (conventions in its docstring)                         |
| `portal`   | idempotent portal setup: groups, properties, deal pipeline                     |
| `engine`   | `SyncEngine` / `sync_practice`: the run itself                                 |

The HubSpot client with rate limiter and retries is `biss_pipeline.resources.hubspot`; the Dagster
assets are `biss_pipeline.assets.hubspot`.
"""

from biss_pipeline.domain.hubspot.engine import SyncAborted, SyncEngine, SyncReport, sync_practice
from biss_pipeline.domain.hubspot.model import (
    ASSOCIATION_KINDS,
    DEFAULT_ALLOWED_CONTACT_FIELDS,
    OBJECT_KINDS,
    PipelineSpec,
    StageSpec,
    SyncMapping,
    default_pipeline_spec,
)
from biss_pipeline.domain.hubspot.portal import PortalSetupError, PortalState, ensure_portal, portal_spec

__all__ = [
    "ASSOCIATION_KINDS",
    "DEFAULT_ALLOWED_CONTACT_FIELDS",
    "OBJECT_KINDS",
    "PipelineSpec",
    "PortalSetupError",
    "PortalState",
    "StageSpec",
    "SyncAborted",
    "SyncEngine",
    "SyncMapping",
    "SyncReport",
    "default_pipeline_spec",
    "ensure_portal",
    "portal_spec",
    "sync_practice",
]
