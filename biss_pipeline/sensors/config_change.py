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
depend on, see `deal_rules_for`).

The cursor is JSON: `{"content_hash", "tabs": {tab: sha256}, "practices": {practice: sha256 of its
part}, "seq"}`; `seq` counts the changes seen, so a mapping edited back and forth (A → B → A → B) gets
a fresh run key each time. Without a cursor (first tick) the sensor compares with the last
materialization of `mapping_config` (data version and the `tab_hashes` metadata, which name tabs but
not practices: an `appointment_types` change then counts for every practice); if that is the same or
there is none, it records the current mapping as its baseline and requests nothing.
"""

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

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

from biss_pipeline.assets.deals import deals_asset_key
from biss_pipeline.assets.hubspot import PORTAL_SETUP_KEY, sync_asset_key
from biss_pipeline.assets.mapping import MAPPING_ASSET_KEY
from biss_pipeline.config.mapping import (
    APPOINTMENT_TYPES,
    ENTRY_RULES,
    PRACTICES,
    SETTINGS,
    STAGES,
    MappingConfig,
)
from biss_pipeline.config.practices import PracticeConfig
from biss_pipeline.resources.mapping import MappingResource

SENSOR_NAME = "mapping_config_change"
# Tabs every practice's deals or HubSpot sync read.
SHARED_TABS: tuple[str, ...] = (ENTRY_RULES, STAGES, SETTINGS)
DATA_VERSION_TAG = "dagster/data_version"
TRIGGER_TAG = "biss/trigger"
RELOAD_TAG = "biss/reload_definitions_for"


@dataclass(frozen=True)
class MappingFingerprint:
    content_hash: str
    tabs: Mapping[str, str]
    # Only for active practices: their key prefix and appointment type rows. None when not known
    # (a baseline taken from the asset's metadata).
    practices: Mapping[str, str] | None

    @classmethod
    def of(cls, config: MappingConfig) -> "MappingFingerprint":
        tabs = config.canonical_tabs()
        practices = {}
        for practice in config.active_practices:
            rows = [row for row in tabs[APPOINTMENT_TYPES] if row["practice"] == practice.practice_id]
            text = json.dumps([practice.key_prefix, rows], sort_keys=True, ensure_ascii=False)
            practices[practice.practice_id] = hashlib.sha256(text.encode()).hexdigest()
        return cls(config.content_hash, dict(config.tab_hashes), practices)


@dataclass(frozen=True)
class MappingChange:
    tabs: tuple[str, ...]  # tabs whose content changed
    practices: tuple[str, ...]  # loaded practices whose deals and sync must be redone
    portal: bool  # the HubSpot portal setup must be redone
    to_load: tuple[str, ...] = ()  # active in the mapping, not in the loaded definitions
    to_unload: tuple[str, ...] = ()  # loaded, no longer active in the mapping
    notes: tuple[str, ...] = ()

    def asset_keys(self, practices: Sequence[PracticeConfig],
                   extra_keys: Sequence[AssetKey] = ()) -> list[AssetKey]:
        keys = [MAPPING_ASSET_KEY, *([PORTAL_SETUP_KEY] if self.portal else [])]
        for practice in practices:
            if practice.practice_id in self.practices:
                keys += [deals_asset_key(practice), deals_asset_key(practice, "contact_rollups"),
                         sync_asset_key(practice.practice_id)]
        if self.practices:
            keys += [key for key in extra_keys if key not in keys]
        return keys

    def describe(self) -> str:
        parts = [f"tabs changed: {', '.join(self.tabs) or 'none'}",
                 f"practices re-processed: {', '.join(self.practices) or 'none'}"]
        if self.portal:
            parts.append("HubSpot portal setup re-run")
        if self.to_load:
            parts.append(f"active in the mapping but not loaded: {', '.join(self.to_load)} → reload the "
                         "definitions (Dagster UI: Deployment → Reload) to add their assets, jobs, "
                         "schedules and sensors")
        if self.to_unload:
            parts.append(f"no longer active: {', '.join(self.to_unload)} → reload the definitions to remove "
                         "their assets")
        return "; ".join([*parts, *self.notes])


def _same(old: str | None, new: str) -> bool:
    # A baseline from the asset's metadata keeps 12 characters of each tab hash.
    return bool(old) and new.startswith(old)


def mapping_change(old: MappingFingerprint, new: MappingFingerprint, loaded: Sequence[str]) -> MappingChange:
    """What a change from `old` to `new` means for the practices `loaded` in the definitions."""
    active = new.practices or {}
    tabs = tuple(tab for tab in new.tabs if not _same(old.tabs.get(tab), new.tabs[tab]))
    live = [pid for pid in loaded if pid in active]
    shared = any(tab in SHARED_TABS for tab in tabs)
    notes: tuple[str, ...] = ()
    if shared:
        practices = live
    elif old.practices is None:
        # Tab-level baseline: which practice's rows changed is unknown, so every one counts.
        changed = APPOINTMENT_TYPES in tabs or PRACTICES in tabs
        practices = live if changed else []
        if changed:
            notes = ("compared with the last materialization of mapping_config (tab level only)",)
    else:
        practices = [pid for pid in live if old.practices.get(pid) != active[pid]]
    return MappingChange(
        tabs=tabs, practices=tuple(practices), portal=shared,
        to_load=tuple(pid for pid in active if pid not in loaded),
        to_unload=tuple(pid for pid in loaded if pid not in active), notes=notes)


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
        value = json.loads(text) if text else None
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
    every_key = MappingChange(tabs=(), practices=tuple(loaded), portal=True).asset_keys(practices, extra_keys)

    @sensor(name=name, target=AssetSelection.assets(*every_key), default_status=default_status,
            minimum_interval_seconds=minimum_interval_seconds,
            description="Polls the mapping sheet; on a change re-runs mapping_config and the deals, "
                        "contact roll-ups and HubSpot sync of exactly the practices whose part of the "
                        "mapping changed.")
    def mapping_config_change(context: SensorEvaluationContext, mapping: MappingResource) -> SensorResult:
        try:
            config = mapping.load()
        except Exception as exc:  # an unreadable sheet must not crash the tick: say why instead
            # ConfigError names tab, row and column; no patient data is in the mapping.
            return SensorResult(skip_reason=SkipReason(f"mapping not readable, nothing requested: "
                                                       f"{type(exc).__name__}: {exc}"))
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
                             asset_selection=change.asset_keys(practices, extra_keys), tags=tags)
        return SensorResult(run_requests=[request], cursor=_dump(new, seq))

    return mapping_config_change
