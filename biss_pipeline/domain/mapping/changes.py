"""What a change of the mapping means for the practices loaded in the definitions: which tabs changed,
which practices must be re-processed, whether the HubSpot portal setup must be redone, and which
practices need a definitions reload. The sensor `mapping_config_change` acts on it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from biss_pipeline.domain.mapping.config import (
    APPOINTMENT_TYPES,
    PRACTICE_SHARED_TABS,
    PRACTICES,
    MappingConfig,
)


@dataclass(frozen=True)
class MappingFingerprint:
    content_hash: str
    tabs: Mapping[str, str]
    # Only for active practices: their key prefix and appointment type rows. None when not known
    # (a baseline taken from the asset's metadata).
    practices: Mapping[str, str] | None

    @classmethod
    def of(cls, config: MappingConfig) -> MappingFingerprint:
        practices = {p.practice_id: config.practice_hash(p.practice_id) for p in config.active_practices}
        return cls(config.content_hash, dict(config.tab_hashes), practices)


@dataclass(frozen=True)
class MappingChange:
    tabs: tuple[str, ...]  # tabs whose content changed
    practices: tuple[str, ...]  # loaded practices whose deals and sync must be redone
    portal: bool  # the HubSpot portal setup must be redone
    to_load: tuple[str, ...] = ()  # active in the mapping, not in the loaded definitions
    to_unload: tuple[str, ...] = ()  # loaded, no longer active in the mapping
    notes: tuple[str, ...] = ()

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
    return old is not None and old != "" and new.startswith(old)


def mapping_change(old: MappingFingerprint, new: MappingFingerprint, loaded: Sequence[str]) -> MappingChange:
    """What a change from `old` to `new` means for the practices `loaded` in the definitions."""
    active = new.practices or {}
    tabs = tuple(tab for tab in new.tabs if not _same(old.tabs.get(tab), new.tabs[tab]))
    live = [pid for pid in loaded if pid in active]
    shared = any(tab in PRACTICE_SHARED_TABS for tab in tabs)
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
