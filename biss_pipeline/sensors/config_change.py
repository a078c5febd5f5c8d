"""A changed mapping re-processes exactly the practices whose part of it changed.

The sensor `mapping_config_change` polls the mapping source (`MappingResource.load()`: a local file
read, or three Google API calls for the sheet) every `minimum_interval_seconds`, compares the content
hash with the one in its cursor, and on a change requests one run materializing

* `mapping_config` (new data version, so the UI shows the edit and what it made stale), and
* for every affected practice its deals + contact roll-ups and its HubSpot sync.

Which practices are affected:

* `entry_rules`, `stages` or `settings` changed → every loaded practice, plus `hubspot/portal_setup`
  (revenue buckets, pipeline stages and labels live in the portal);
* otherwise the practices whose own part changed: their `appointment_types` rows or their key prefix
  (type keys are prefix + type id);
* a practice row changed in anything else (name, URL, API key variable, history start) changes no deal;
  a practice that became active (or inactive) needs a definitions reload, which the sensor says.

The deals asset then limits the work further itself (its mapping hash covers only what its deals
depend on, see `MappingConfig.practice_hash`).

The cursor is JSON: `{"content_hash", "tabs": {tab: sha256}, "practices": {practice: sha256 of its
part}, "seq"}`; `seq` counts the changes seen, so a mapping edited back and forth (A → B → A → B) gets
a fresh run key each time. Without a cursor (first tick) the sensor compares with the last
materialization of `mapping_config` (data version and the `tab_hashes` metadata, which name tabs but
not practices: an `appointment_types` change then counts for every practice); if that is the same or
there is none, it records the current mapping as its baseline and requests nothing.
"""

import json
from collections.abc import Sequence

from dagster import (
    AssetKey,
    AssetSelection,
    DagsterInstance,
    DefaultSensorStatus,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from biss_pipeline.domain.mapping.changes import MappingChange, MappingFingerprint, mapping_change
from biss_pipeline.domain.mapping.practices import PracticeConfig
from biss_pipeline.keys import (
    DATA_VERSION_TAG,
    MAPPING_ASSET_KEY,
    PORTAL_SETUP_KEY,
    RELOAD_TAG,
    TRIGGER_TAG,
    practice_asset_key,
    sync_asset_key,
)
from biss_pipeline.resources.mapping import MappingResource

SENSOR_NAME = "mapping_config_change"


def change_asset_keys(change: MappingChange, practices: Sequence[PracticeConfig],
                      extra_keys: Sequence[AssetKey] = ()) -> list[AssetKey]:
    keys = [MAPPING_ASSET_KEY, *([PORTAL_SETUP_KEY] if change.portal else [])]
    for practice in practices:
        if practice.practice_id in change.practices:
            keys += [practice_asset_key(practice, "deals"), practice_asset_key(practice, "contact_rollups"),
                     sync_asset_key(practice)]
    if change.practices:
        keys += [key for key in extra_keys if key not in keys]
    return keys


def materialized_fingerprint(instance: DagsterInstance) -> MappingFingerprint | None:
    """Content hash and tab hashes of the last materialization of `mapping_config`, if any."""
    event = instance.get_latest_materialization_event(MAPPING_ASSET_KEY)
    materialization = event.asset_materialization if event else None
    if materialization is None:
        return None
    version = (materialization.tags or {}).get(DATA_VERSION_TAG)
    tab_hashes = materialization.metadata.get("tab_hashes")
    tabs = getattr(tab_hashes, "value", None)
    if not version or not isinstance(tabs, dict):
        return None
    return MappingFingerprint(version, {str(k): str(v) for k, v in tabs.items()}, None)


def _cursor(text: str | None) -> tuple[MappingFingerprint, int] | None:
    try:
        value = json.loads(text) if text else {}
        return MappingFingerprint(value["content_hash"], value["tabs"], value["practices"]), int(value["seq"])
    except (ValueError, TypeError, KeyError):
        return None


def _dump(fingerprint: MappingFingerprint, seq: int) -> str:
    return json.dumps({"content_hash": fingerprint.content_hash, "tabs": dict(fingerprint.tabs),
                       "practices": dict(fingerprint.practices or {}), "seq": seq}, sort_keys=True)


def build_config_change_sensor(
    practices: Sequence[PracticeConfig], *, minimum_interval_seconds: int = 300,
    default_status: DefaultSensorStatus = DefaultSensorStatus.STOPPED, extra_keys: Sequence[AssetKey] = (),
    name: str = SENSOR_NAME,
) -> SensorDefinition:
    """The sensor for the practices loaded in the definitions; it reads the mapping through the `mapping`
    resource. `extra_keys` (e.g. the KPI assets) join every run that re-processes a practice."""
    loaded = [p.practice_id for p in practices]
    every_key = change_asset_keys(MappingChange(tabs=(), practices=tuple(loaded), portal=True), practices,
                                  extra_keys)

    @sensor(name=name, target=AssetSelection.assets(*every_key), default_status=default_status,
            minimum_interval_seconds=minimum_interval_seconds,
            description="Polls the mapping sheet; on a change re-runs mapping_config and the deals, "
                        "contact roll-ups and HubSpot sync of exactly the practices whose part of the "
                        "mapping changed.")
    def mapping_config_change(context: SensorEvaluationContext, mapping: MappingResource) -> SensorResult:
        try:
            state = mapping.load_state()
        except Exception as exc:  # an unreadable sheet must not crash the tick: say why instead
            # ConfigError names tab, row and column; no patient data is in the mapping.
            return SensorResult(skip_reason=SkipReason(f"mapping not readable, nothing requested: "
                                                       f"{type(exc).__name__}: {exc}"))
        config = state.config
        # A practice disabled by its own rows gets no re-run (its runs would fail with that error).
        runnable = [p for p in practices if p.practice_id not in state.disabled]
        new = MappingFingerprint.of(config)
        stored = _cursor(context.cursor)
        if stored is None:
            old, seq = materialized_fingerprint(context.instance), 0
            if old is None or old.content_hash == new.content_hash:
                return SensorResult(cursor=_dump(new, seq), skip_reason=SkipReason(
                    f"baseline recorded: mapping {new.content_hash[:12]}"))
        else:
            old, seq = stored
            if old.content_hash == new.content_hash:
                return SensorResult(skip_reason=SkipReason(f"mapping {new.content_hash[:12]} unchanged"))
        change = mapping_change(old, new, loaded)
        seq += 1
        message = f"mapping {old.content_hash[:12]} → {new.content_hash[:12]}: {change.describe()}"
        context.log.info(message)
        tags = {TRIGGER_TAG: "mapping_change", "biss/mapping_hash": new.content_hash[:12],
                "biss/practices": ",".join(change.practices) or "none",
                "biss/tabs_changed": ",".join(change.tabs) or "none"}
        if change.to_load or change.to_unload:
            # Shown on the run in the UI: the one thing the sensor cannot do itself.
            tags[RELOAD_TAG] = ",".join((*change.to_load, *change.to_unload))
        request = RunRequest(run_key=f"mapping-{seq}-{new.content_hash[:16]}",
                             asset_selection=change_asset_keys(change, runnable, extra_keys), tags=tags)
        return SensorResult(run_requests=[request], cursor=_dump(new, seq))

    return mapping_config_change
