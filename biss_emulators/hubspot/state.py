"""The emulated portal: CRM objects, properties, pipelines and associations, with HubSpot's write
rules (property validation, unique values, batch semantics) and an eventually consistent search index.

Every public method takes the state lock, so the HTTP handlers (on uvicorn's thread) and a test's
Python handle can use it at the same time.
"""

from __future__ import annotations

import copy
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from biss_emulators.hubspot import schema
from biss_emulators.hubspot.errors import (
    HubSpotError,
    conflict,
    not_found,
    property_problem,
    property_validation_error,
    standard_error,
    validation_error,
)
from biss_emulators.hubspot.portal import PortalConfig
from biss_emulators.hubspot.schema import ObjectType, resolve_object_type
from biss_emulators.hubspot.search import matches, parse_request, sort_records
from biss_emulators.hubspot.values import normalise_value, now_iso

MAX_BATCH_INPUTS = 100
MAX_ASSOCIATION_READ_INPUTS = 1_000
MAX_UNIQUE_PROPERTIES = 10
BATCH_CONFLICT_MODES = ("reject_batch", "per_input")
_PROPERTY_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_PROPERTY_TYPES = {"string", "number", "date", "datetime", "enumeration", "bool"}
_FIELD_TYPES = {
    "textarea",
    "text",
    "date",
    "file",
    "number",
    "select",
    "radio",
    "checkbox",
    "booleancheckbox",
    "calculation_equation",
    "phonenumber",
    "html",
}
STATE_FORMAT_VERSION = 1


def object_type_or_400(ref: str) -> ObjectType:
    ot = resolve_object_type(ref)
    if ot is None:
        raise validation_error(f"Unable to infer object type from: {ref}")
    return ot


@dataclass
class _Op:
    """One staged write of a batch: applied only once the whole batch has been checked."""

    kind: str  # "create" | "update"
    object_id: str
    changes: dict[str, str | None]
    trace_id: str | None = None
    new: bool = False
    associations: list[tuple[ObjectType, str, int]] = field(default_factory=list)


class _UniqueView:
    """The unique-value index as it would be after the writes staged so far in this batch."""

    def __init__(self, index: dict[str, dict[str, str]]) -> None:
        self.index = index
        self.overlay: dict[tuple[str, str], str | None] = {}

    def owner(self, prop: str, value: str) -> str | None:
        key = (prop, value)
        if key in self.overlay:
            return self.overlay[key]
        return self.index.get(prop, {}).get(value)

    def move(self, prop: str, old: str | None, new: str | None, object_id: str) -> None:
        if old is not None and self.owner(prop, old) == object_id:
            self.overlay[(prop, old)] = None
        if new is not None:
            self.overlay[(prop, new)] = object_id


class HubSpotState:
    def __init__(self, search_index_delay_s: float = 2.0, portal: PortalConfig | None = None) -> None:
        self.lock = threading.RLock()
        self.search_index_delay_s = search_index_delay_s
        self.portal = portal or PortalConfig()
        # How a unique-value conflict inside a batch write is answered: HubSpot rejects a batch create
        # over an existing email with one 409 (its public behaviour); "per_input" answers 207 instead.
        self.batch_conflicts = "reject_batch"
        self._reset_to_defaults()

    # ----------------------------------------------------------------- lifecycle & persistence

    def _reset_to_defaults(self) -> None:
        now = now_iso()
        self._next_object_id = 1001
        self._next_meta_id = 100_000_001  # pipeline and stage ids
        self.objects: dict[str, dict[str, dict[str, Any]]] = {ot.name: {} for ot in schema.OBJECT_TYPES}
        self.properties: dict[str, dict[str, dict[str, Any]]] = {
            ot.name: schema.default_properties(ot.name, now) for ot in schema.OBJECT_TYPES
        }
        if self.portal.appointment_status_enumeration:
            status = self.properties["appointments"]["hs_appointment_status"]
            status.update(
                type="enumeration",
                fieldType="select",
                options=[
                    {"label": value.replace("_", " ").title(), "value": value, "displayOrder": i,
                     "hidden": False, "description": ""}
                    for i, value in enumerate(self.portal.appointment_status_options)
                ],
            )
        self.association_types = self.portal.association_types()
        self._type_pairs = {v: k for k, v in self.association_types.items()}
        self.groups: dict[str, dict[str, dict[str, Any]]] = {
            name: {
                g: {"name": g, "label": label, "displayOrder": i, "archived": False}
                for i, (g, label) in enumerate(groups)
            }
            for name, groups in schema.DEFAULT_GROUPS.items()
        }
        self.pipelines: dict[str, dict[str, dict[str, Any]]] = {
            "deals": {"default": schema.default_deal_pipeline(now)}
        }
        # (from type, to type) -> from id -> to id -> type ids; stored in both directions
        self._assoc: dict[tuple[str, str], dict[str, dict[str, set[int]]]] = {}
        self._unique: dict[str, dict[str, dict[str, str]]] = {ot.name: {} for ot in schema.OBJECT_TYPES}
        self._unique_cache: dict[str, set[str]] = {}
        self._index: dict[str, dict[str, list[tuple[float, dict[str, Any] | None]]]] = {
            ot.name: {} for ot in schema.OBJECT_TYPES
        }

    def reset(self) -> None:
        with self.lock:
            self._reset_to_defaults()

    def to_dict(self) -> dict[str, Any]:
        with self.lock:
            return {
                "version": STATE_FORMAT_VERSION,
                "next_object_id": self._next_object_id,
                "next_meta_id": self._next_meta_id,
                "objects": copy.deepcopy(self.objects),
                "properties": copy.deepcopy(self.properties),
                "groups": copy.deepcopy(self.groups),
                "pipelines": copy.deepcopy(self.pipelines),
                "associations": [list(a) for a in self.associations],
            }

    def load_dict(self, data: dict[str, Any]) -> None:
        if data.get("version") != STATE_FORMAT_VERSION:
            raise ValueError(f"unsupported HubSpot emulator state version {data.get('version')!r}")
        with self.lock:
            self._reset_to_defaults()
            self._next_object_id = int(data["next_object_id"])
            self._next_meta_id = int(data["next_meta_id"])
            for name in self.objects:
                self.objects[name] = data["objects"].get(name, {})
                defaults = self.properties[name]
                self.properties[name] = data["properties"].get(name, defaults)
                # HubSpot-defined definitions are the portal's (this emulator's `portal`), not the
                # file's: a file saved before a definition changed gets today's
                for prop_name, prop in defaults.items():
                    if prop.get("hubspotDefined"):
                        self.properties[name][prop_name] = prop
                self.groups[name] = data["groups"].get(name, self.groups[name])
            self._unique_cache.clear()
            self.pipelines = data["pipelines"]
            for from_type, from_id, to_type, to_id, type_id in data["associations"]:
                self._assoc.setdefault((from_type, to_type), {}).setdefault(from_id, {}).setdefault(
                    to_id, set()
                ).add(int(type_id))
            for name, objs in self.objects.items():
                ot = object_type_or_400(name)
                for obj in objs.values():
                    if not obj.get("archived"):
                        self._index_unique(ot, obj["id"], {}, obj["properties"])
                        # a loaded portal has long been indexed
                        self._index[name][obj["id"]] = [(0.0, self._snapshot(obj))]

    # ----------------------------------------------------------------- inspection helpers

    @property
    def associations(self) -> list[tuple[str, str, str, str, int]]:
        """Every association, both directions: (from type, from id, to type, to id, type id)."""
        with self.lock:
            return sorted(
                (f, fid, t, tid, type_id)
                for (f, t), by_from in self._assoc.items()
                for fid, by_to in by_from.items()
                for tid, type_ids in by_to.items()
                for type_id in type_ids
            )

    def live_objects(self, ref: str) -> list[dict[str, Any]]:
        ot = object_type_or_400(ref)
        with self.lock:
            objs = [copy.deepcopy(o) for o in self.objects[ot.name].values() if not o.get("archived")]
        return sorted(objs, key=lambda o: int(o["id"]))

    def association_pairs(self, from_ref: str, to_ref: str) -> list[tuple[str, str, int]]:
        f, t = object_type_or_400(from_ref), object_type_or_400(to_ref)
        with self.lock:
            by_from = self._assoc.get((f.name, t.name), {})
            return sorted(
                (
                    (fid, tid, type_id)
                    for fid, by_to in by_from.items()
                    for tid, type_ids in by_to.items()
                    for type_id in type_ids
                ),
                key=lambda x: (int(x[0]), int(x[1]), x[2]),
            )

    # ----------------------------------------------------------------- property validation

    def _unique_properties(self, ot: ObjectType) -> set[str]:
        # hot on every write; the cache is dropped whenever a property definition changes
        cached = self._unique_cache.get(ot.name)
        if cached is None:
            cached = {
                n
                for n, p in self.properties[ot.name].items()
                if p.get("hasUniqueValue") and not p.get("archived")
            }
            if ot is schema.CONTACTS:
                cached.add("email")
            self._unique_cache[ot.name] = cached
        return cached

    def _live_property(self, ot: ObjectType, name: str) -> dict[str, Any] | None:
        prop = self.properties[ot.name].get(name)
        return None if prop is None or prop.get("archived") else prop

    def _validate_properties(
        self, ot: ObjectType, raw: Any, existing: dict[str, str] | None
    ) -> dict[str, str | None]:
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise validation_error("properties must be an object of property names to values")
        problems: list[dict[str, Any]] = []
        changes: dict[str, str | None] = {}
        pipeline_ids = [p for p, pl in self.pipelines.get("deals", {}).items() if not pl.get("archived")]
        for name, value in raw.items():
            prop = self._live_property(ot, name)
            if prop is None:
                problems.append(
                    property_problem(name, "PROPERTY_DOESNT_EXIST", f'Property "{name}" does not exist')
                )
                continue
            if prop["modificationMetadata"].get("readOnlyValue"):
                problems.append(
                    property_problem(
                        name, "READ_ONLY_VALUE", f'"{name}" is a read only property; its value cannot be set.'
                    )
                )
                continue
            options: list[str] | None = None
            if ot is schema.DEALS and name == "pipeline":
                options = pipeline_ids
            elif ot is schema.DEALS and name == "dealstage":
                options = self._stage_options(raw, existing)
            normalised, problem = normalise_value(prop, value, object_type=ot.name, allowed_options=options)
            if problem is not None:
                problems.append(problem)
            else:
                changes[name] = normalised
        if problems:
            raise property_validation_error(problems)
        if (
            ot is schema.DEALS
            and changes.get("dealstage")
            and not (existing or {}).get("pipeline")
            and "pipeline" not in changes
        ):
            # HubSpot files a deal under the pipeline its stage belongs to
            changes["pipeline"] = self._pipeline_of_stage(changes["dealstage"] or "")
        return changes

    def _stage_options(self, raw: dict[str, Any], existing: dict[str, str] | None) -> list[str]:
        pipeline_id = raw.get("pipeline") or (existing or {}).get("pipeline")
        pipelines = self.pipelines.get("deals", {})
        chosen = [pipelines[pipeline_id]] if pipeline_id in pipelines else list(pipelines.values())
        return [s["id"] for pl in chosen for s in pl["stages"] if not s.get("archived")]

    def _pipeline_of_stage(self, stage_id: str) -> str | None:
        for pl in self.pipelines.get("deals", {}).values():
            if any(s["id"] == stage_id for s in pl["stages"]):
                return str(pl["id"])
        return None

    def _unique_conflict(
        self,
        ot: ObjectType,
        object_id: str,
        current: dict[str, str],
        changes: dict[str, str | None],
        view: _UniqueView,
    ) -> HubSpotError | None:
        for prop in sorted(self._unique_properties(ot)):
            if prop not in changes or changes[prop] is None or changes[prop] == current.get(prop):
                continue
            owner = view.owner(prop, changes[prop] or "")
            if owner is not None and owner != object_id:
                if ot is schema.CONTACTS and prop == "email":
                    return conflict(f"Contact already exists. Existing ID: {owner}")
                return conflict(
                    f"{ot.upper} with the same value for the unique property {prop} already exists. "
                    f"Existing ID: {owner}",
                    context={"propertyName": [prop], "existingId": [owner]},
                )
        return None

    def _stage_unique(
        self,
        ot: ObjectType,
        object_id: str,
        current: dict[str, str],
        changes: dict[str, str | None],
        view: _UniqueView,
    ) -> None:
        for prop in self._unique_properties(ot):
            if prop in changes:
                view.move(prop, current.get(prop), changes[prop], object_id)

    def _index_unique(
        self, ot: ObjectType, object_id: str, before: dict[str, str], after: dict[str, str]
    ) -> None:
        index = self._unique[ot.name]
        for prop in self._unique_properties(ot):
            old, new = before.get(prop), after.get(prop)
            if old == new:
                continue
            values = index.setdefault(prop, {})
            if old is not None and values.get(old) == object_id:
                del values[old]
            if new is not None:
                values[new] = object_id

    # ----------------------------------------------------------------- search index

    def _snapshot(self, obj: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": obj["id"],
            "properties": dict(obj["properties"]),
            "createdAt": obj["createdAt"],
            "updatedAt": obj["updatedAt"],
            "archived": False,
        }

    def _reindex(self, ot: ObjectType, obj: dict[str, Any]) -> None:
        visible_at = time.monotonic() + max(0.0, self.search_index_delay_s)
        snapshot = None if obj.get("archived") else self._snapshot(obj)
        self._index[ot.name].setdefault(obj["id"], []).append((visible_at, snapshot))

    def flush_search_index(self) -> None:
        """Make every write searchable now, as if the indexing delay had passed."""
        with self.lock:
            for index in self._index.values():
                for object_id in list(index):
                    snap = index[object_id][-1][1]
                    if snap is None:
                        del index[object_id]
                    else:
                        index[object_id] = [(0.0, snap)]

    def _searchable(self, ot: ObjectType) -> list[dict[str, Any]]:
        now = time.monotonic()
        out: list[dict[str, Any]] = []
        index = self._index[ot.name]
        for object_id in list(index):
            versions = index[object_id]
            newest = -1
            for i, (visible_at, _snap) in enumerate(versions):
                if visible_at <= now:
                    newest = i
            if newest < 0:
                continue
            if newest > 0:
                del versions[:newest]
            snap = versions[0][1]
            if snap is None:
                if len(versions) == 1:
                    del index[object_id]
                continue
            out.append(snap)
        return out

    # ----------------------------------------------------------------- rendering

    def render(
        self,
        ot: ObjectType,
        obj: dict[str, Any],
        requested: list[str] | None = None,
        *,
        everything: bool = False,
    ) -> dict[str, Any]:
        """An object as HubSpot answers it: all set properties after a write, the default or the
        requested ones (requested but unset ones as null) after a read."""
        stored = obj["properties"]
        if everything:
            props: dict[str, str | None] = dict(stored)
        else:
            names = list(requested) if requested else list(ot.default_properties)
            if requested:
                names += ["hs_object_id", ot.created_property, ot.modified_property]
            props = {n: stored.get(n) for n in dict.fromkeys(names)}
        out: dict[str, Any] = {
            "id": obj["id"],
            "properties": props,
            "createdAt": obj["createdAt"],
            "updatedAt": obj["updatedAt"],
            "archived": bool(obj.get("archived", False)),
        }
        if obj.get("archived"):
            out["archivedAt"] = obj.get("archivedAt", obj["updatedAt"])
        return out

    def _render_v3_associations(self, ot: ObjectType, object_id: str, to_refs: list[str]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for ref in to_refs:
            to_ot = resolve_object_type(ref)
            if to_ot is None:
                continue
            by_to = self._assoc.get((ot.name, to_ot.name), {}).get(object_id, {})
            if by_to:
                kind = schema.association_type_name(ot, to_ot)
                result[to_ot.name] = {
                    "results": [{"id": tid, "type": kind} for tid in sorted(by_to, key=int)]
                }
        return result

    # ----------------------------------------------------------------- single-object CRUD

    def _new_id(self) -> str:
        object_id = str(self._next_object_id)
        self._next_object_id += 1
        return object_id

    def _find(
        self, ot: ObjectType, ref: str, id_property: str | None, *, archived: bool = False
    ) -> dict[str, Any] | None:
        if id_property and id_property != "hs_object_id":
            if id_property not in self._unique_properties(ot):
                raise validation_error(
                    f"{id_property} is not a unique property; "
                    "idProperty must name a property with unique values"
                )
            prop = self.properties[ot.name][id_property]
            key, problem = normalise_value(prop, ref, object_type=ot.name, allowed_options=[ref])
            if problem is not None or key is None:
                return None
            object_id = self._unique[ot.name].get(id_property, {}).get(key)
            return self.objects[ot.name].get(object_id) if object_id else None
        obj = self.objects[ot.name].get(ref)
        if obj is None or bool(obj.get("archived")) != archived:
            return None
        return obj

    def _insert(
        self, ot: ObjectType, object_id: str, changes: dict[str, str | None], now: str
    ) -> dict[str, Any]:
        props: dict[str, str] = {
            "hs_object_id": object_id,
            ot.created_property: now,
            ot.modified_property: now,
        }
        for name, value in changes.items():
            if value is not None:
                props[name] = value
        obj = {"id": object_id, "properties": props, "createdAt": now, "updatedAt": now, "archived": False}
        self.objects[ot.name][object_id] = obj
        self._index_unique(ot, object_id, {}, props)
        self._reindex(ot, obj)
        return obj

    def _modify(self, ot: ObjectType, obj: dict[str, Any], changes: dict[str, str | None], now: str) -> None:
        before = dict(obj["properties"])
        props = obj["properties"]
        for name, value in changes.items():
            if value is None:
                props.pop(name, None)
            else:
                props[name] = value
        if props == before:
            return
        props[ot.modified_property] = now
        obj["updatedAt"] = now
        self._index_unique(ot, obj["id"], before, props)
        self._reindex(ot, obj)

    def _archive(self, ot: ObjectType, obj: dict[str, Any], now: str) -> None:
        if obj.get("archived"):
            return
        self._index_unique(ot, obj["id"], dict(obj["properties"]), {})
        obj["archived"] = True
        obj["archivedAt"] = now
        self._drop_associations(ot, obj["id"])
        self._reindex(ot, obj)

    def create(self, ref: str, body: dict[str, Any]) -> dict[str, Any]:
        ot = object_type_or_400(ref)
        with self.lock:
            changes = self._validate_properties(ot, body.get("properties"), None)
            assocs = self._validate_create_associations(ot, body.get("associations"))
            object_id = self._new_id()
            error = self._unique_conflict(ot, object_id, {}, changes, _UniqueView(self._unique[ot.name]))
            if error is not None:
                raise error
            now = now_iso()
            obj = self._insert(ot, object_id, changes, now)
            for to_ot, to_id, type_id in assocs:
                self._associate(ot, object_id, to_ot, to_id, type_id)
            return self.render(ot, obj, everything=True)

    def get(
        self,
        ref: str,
        object_id: str,
        *,
        properties: list[str] | None,
        id_property: str | None,
        archived: bool,
        associations: list[str],
    ) -> dict[str, Any]:
        ot = object_type_or_400(ref)
        with self.lock:
            obj = self._find(ot, object_id, id_property, archived=archived)
            if obj is None:
                raise _object_not_found(object_id)
            out = self.render(ot, obj, properties)
            if associations:
                rendered = self._render_v3_associations(ot, obj["id"], associations)
                if rendered:
                    out["associations"] = rendered
            return out

    def update(
        self, ref: str, object_id: str, body: dict[str, Any], id_property: str | None
    ) -> dict[str, Any]:
        ot = object_type_or_400(ref)
        with self.lock:
            obj = self._find(ot, object_id, id_property)
            if obj is None:
                raise _object_not_found(object_id)
            changes = self._validate_properties(ot, body.get("properties"), obj["properties"])
            if not body.get("properties"):
                raise validation_error("No properties found to update, please provide at least one.")
            error = self._unique_conflict(
                ot, obj["id"], obj["properties"], changes, _UniqueView(self._unique[ot.name])
            )
            if error is not None:
                raise error
            self._modify(ot, obj, changes, now_iso())
            return self.render(ot, obj, everything=True)

    def archive(self, ref: str, object_id: str) -> None:
        ot = object_type_or_400(ref)
        with self.lock:
            obj = self.objects[ot.name].get(object_id)
            if obj is not None:
                self._archive(ot, obj, now_iso())

    def list_page(
        self,
        ref: str,
        *,
        limit: int,
        after: str | None,
        properties: list[str] | None,
        archived: bool,
        associations: list[str],
    ) -> dict[str, Any]:
        ot = object_type_or_400(ref)
        if limit < 1 or limit > 100:
            raise validation_error(f"limit must be between 1 and 100, got {limit}")
        start = int(after) if after and after.isdigit() else 0
        with self.lock:
            candidates = sorted(
                (
                    o
                    for o in self.objects[ot.name].values()
                    if bool(o.get("archived")) == archived and int(o["id"]) >= start
                ),
                key=lambda o: int(o["id"]),
            )
            page = candidates[:limit]
            results = []
            for obj in page:
                item = self.render(ot, obj, properties)
                if associations:
                    rendered = self._render_v3_associations(ot, obj["id"], associations)
                    if rendered:
                        item["associations"] = rendered
                results.append(item)
            out: dict[str, Any] = {"results": results}
            if len(candidates) > limit:
                next_after = str(int(page[-1]["id"]) + 1)
                out["paging"] = {
                    "next": {"after": next_after, "link": f"/crm/v3/objects/{ot.name}?after={next_after}"}
                }
            return out

    # ----------------------------------------------------------------- batches

    def _check_batch(self, body: dict[str, Any], *, limit: int = MAX_BATCH_INPUTS) -> list[Any]:
        inputs = body.get("inputs")
        if not isinstance(inputs, list):
            raise validation_error("Invalid input JSON: inputs must be a list")
        if len(inputs) > limit:
            raise validation_error(
                f"Batch input of {len(inputs)} items exceeds the maximum of {limit} inputs per request.",
                context={"maxInputs": [str(limit)]},
            )
        for item in inputs:
            if not isinstance(item, dict):
                raise validation_error(f"Invalid input: {item!r}")
        return inputs

    def _require_properties(self, item: dict[str, Any], model: str) -> None:
        """`properties` is a required field of HubSpot's batch input models; HubSpot's JSON binding
        refuses the whole request when it is missing (its "Cannot build …" message)."""
        if self.portal.require_upsert_properties and "properties" not in item:
            raise validation_error(
                f"Invalid input JSON on line 1: Cannot build {model}, some of required attributes are not "
                "set [properties]"
            )

    @staticmethod
    def _reject_duplicate_ids(ids: list[str]) -> None:
        duplicates = sorted(i for i, n in Counter(ids).items() if n > 1)
        if duplicates:
            raise validation_error(
                f"Duplicate IDs found in batch input: [{', '.join(duplicates)}]. IDs must be unique"
            )

    def _run_batch(self, ot: ObjectType, ops: list[_Op]) -> tuple[list[_Op], list[dict[str, Any]]]:
        """Check every staged write against the unique index and the writes before it; then commit
        the accepted ones. In "reject_batch" mode the first conflict rejects everything."""
        view = _UniqueView(self._unique[ot.name])
        accepted: list[_Op] = []
        errors: list[dict[str, Any]] = []
        for op in ops:
            current = self.objects[ot.name][op.object_id]["properties"] if op.kind == "update" else {}
            error = self._unique_conflict(ot, op.object_id, current, op.changes, view)
            if error is not None:
                if self.batch_conflicts == "reject_batch":
                    raise error
                context = dict(error.context or {})
                if op.trace_id:
                    context["objectWriteTraceId"] = [op.trace_id]
                if op.kind == "update":
                    context["id"] = [op.object_id]
                errors.append(standard_error(error.category, error.message, context=context))
                continue
            self._stage_unique(ot, op.object_id, current, op.changes, view)
            accepted.append(op)
        now = now_iso()
        for op in accepted:
            if op.kind == "create":
                self._insert(ot, op.object_id, op.changes, now)
                for to_ot, to_id, type_id in op.associations:
                    self._associate(ot, op.object_id, to_ot, to_id, type_id)
            else:
                self._modify(ot, self.objects[ot.name][op.object_id], op.changes, now)
        return accepted, errors

    def _result(self, ot: ObjectType, op: _Op, *, upsert: bool = False) -> dict[str, Any]:
        out = self.render(ot, self.objects[ot.name][op.object_id], everything=True)
        if upsert:
            out["new"] = op.new
        if op.trace_id:
            out["objectWriteTraceId"] = op.trace_id
        return out

    def batch_create(
        self, ref: str, body: dict[str, Any]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        ot = object_type_or_400(ref)
        with self.lock:
            inputs = self._check_batch(body)
            ops = []
            for item in inputs:
                changes = self._validate_properties(ot, item.get("properties"), None)
                assocs = self._validate_create_associations(ot, item.get("associations"))
                ops.append(
                    _Op("create", self._new_id(), changes, item.get("objectWriteTraceId"), True, assocs)
                )
            accepted, errors = self._run_batch(ot, ops)
            return [self._result(ot, op) for op in accepted], errors

    def batch_update(
        self, ref: str, body: dict[str, Any]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        ot = object_type_or_400(ref)
        with self.lock:
            inputs = self._check_batch(body)
            self._reject_duplicate_ids([str(item.get("id")) for item in inputs])
            ops: list[_Op] = []
            missing: list[tuple[str, str | None]] = []
            for item in inputs:
                self._require_properties(item, "SimplePublicObjectBatchInput")
                ref_id = str(item.get("id", ""))
                obj = self._find(ot, ref_id, item.get("idProperty"))
                if obj is None:
                    # validate anyway: an unknown property fails the whole batch even next to a missing id
                    self._validate_properties(ot, item.get("properties"), None)
                    missing.append((ref_id, item.get("objectWriteTraceId")))
                    continue
                changes = self._validate_properties(ot, item.get("properties"), obj["properties"])
                ops.append(_Op("update", obj["id"], changes, item.get("objectWriteTraceId")))
            accepted, errors = self._run_batch(ot, ops)
            if missing:
                context = {"ids": [m[0] for m in missing]}
                traces = [t for _, t in missing if t]
                if traces:
                    context["objectWriteTraceId"] = traces
                errors.insert(
                    0,
                    standard_error(
                        "OBJECT_NOT_FOUND",
                        f"Could not update some {ot.upper} objects, they may be deleted or not exist. "
                        "Check that ids are valid.",
                        context=context,
                    ),
                )
            return [self._result(ot, op) for op in accepted], errors

    def batch_upsert(
        self, ref: str, body: dict[str, Any]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        ot = object_type_or_400(ref)
        with self.lock:
            inputs = self._check_batch(body)
            keys: list[tuple[str, str]] = []
            for item in inputs:
                self._require_properties(item, "SimplePublicObjectBatchInputUpsert")
                id_property = item.get("idProperty")
                if not id_property:
                    raise validation_error("idProperty is required for each upsert input")
                if id_property not in self._unique_properties(ot):
                    raise validation_error(
                        f"{id_property} is not a unique property; batch upsert needs an idProperty with "
                        "hasUniqueValue=true"
                    )
                raw_id = item.get("id")
                key, problem = normalise_value(
                    self.properties[ot.name][id_property],
                    raw_id,
                    object_type=ot.name,
                    allowed_options=[str(raw_id)],
                )
                if problem is not None:
                    raise property_validation_error([problem])
                if key is None:
                    raise validation_error("Each upsert input needs a non-empty id")
                keys.append((id_property, key))
            self._reject_duplicate_ids([f"{p}={k}" for p, k in keys])
            ops: list[_Op] = []
            for item, (id_property, key) in zip(inputs, keys, strict=True):
                raw_props = dict(item.get("properties") or {})
                raw_props[id_property] = key  # the input's id wins over a differing value in properties
                owner = self._unique[ot.name].get(id_property, {}).get(key)
                trace = item.get("objectWriteTraceId")
                if owner is not None:
                    obj = self.objects[ot.name][owner]
                    changes = self._validate_properties(ot, raw_props, obj["properties"])
                    ops.append(_Op("update", owner, changes, trace, False))
                else:
                    changes = self._validate_properties(ot, raw_props, None)
                    ops.append(_Op("create", self._new_id(), changes, trace, True))
            accepted, errors = self._run_batch(ot, ops)
            return [self._result(ot, op, upsert=True) for op in accepted], errors

    def batch_read(
        self, ref: str, body: dict[str, Any], *, archived: bool
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        ot = object_type_or_400(ref)
        with self.lock:
            inputs = self._check_batch(body)
            properties = body.get("properties") or None
            id_property = body.get("idProperty")
            if id_property == "hs_object_id" and self.portal.reject_hs_object_id_id_property:
                # public report: HubSpot answers 400 to reading by record id with this idProperty;
                # reading by record id means leaving idProperty out
                raise validation_error(
                    "hs_object_id is not a valid idProperty: it has no unique values to look up. "
                    "Leave idProperty out to read by record id."
                )
            results: list[dict[str, Any]] = []
            seen: set[str] = set()
            missing: list[str] = []
            for item in inputs:
                ref_id = str(item.get("id", ""))
                obj = self._find(ot, ref_id, id_property, archived=archived)
                if obj is None:
                    missing.append(ref_id)
                elif obj["id"] not in seen:
                    seen.add(obj["id"])
                    results.append(self.render(ot, obj, properties))
            errors = []
            if missing:
                errors.append(
                    standard_error(
                        "OBJECT_NOT_FOUND",
                        f"Could not get some {ot.upper} objects, they may be deleted or not exist. "
                        "Check that ids are valid.",
                        context={"ids": missing},
                    )
                )
            return results, errors

    def batch_archive(self, ref: str, body: dict[str, Any]) -> None:
        ot = object_type_or_400(ref)
        with self.lock:
            inputs = self._check_batch(body)
            now = now_iso()
            for item in inputs:
                obj = self.objects[ot.name].get(str(item.get("id", "")))
                if obj is not None:
                    self._archive(ot, obj, now)

    # ----------------------------------------------------------------- search

    def search(self, ref: str, body: dict[str, Any]) -> dict[str, Any]:
        ot = object_type_or_400(ref)
        groups, sorts, limit, offset = parse_request(body)
        requested = body.get("properties") or None
        with self.lock:
            schema_props = self.properties[ot.name]
            for group in groups:
                for f in group:
                    if f["propertyName"] not in schema_props and f["propertyName"] != "hs_object_id":
                        raise validation_error(
                            "There was a problem with the request: "
                            f"property {f['propertyName']} does not exist"
                        )
            found = [
                snap
                for snap in self._searchable(ot)
                if matches(snap["properties"], groups, body.get("query"), ot.searchable, schema_props)
            ]
            ordered = sort_records(found, sorts, schema_props)
            end = min(offset + limit, len(ordered))
            out: dict[str, Any] = {
                "total": len(ordered),
                "results": [self.render(ot, snap, requested) for snap in ordered[offset:end]],
            }
            if end < len(ordered):
                out["paging"] = {"next": {"after": str(end)}}
            return out

    # ----------------------------------------------------------------- associations

    def _associate(
        self, from_ot: ObjectType, from_id: str, to_ot: ObjectType, to_id: str, type_id: int
    ) -> None:
        from_name, to_name = self._type_pairs[type_id]
        inverse = self.association_types[(to_name, from_name)]
        self._assoc.setdefault((from_ot.name, to_ot.name), {}).setdefault(from_id, {}).setdefault(
            to_id, set()
        ).add(type_id)
        self._assoc.setdefault((to_ot.name, from_ot.name), {}).setdefault(to_id, {}).setdefault(
            from_id, set()
        ).add(inverse)

    def _disassociate(self, from_ot: ObjectType, from_id: str, to_ot: ObjectType, to_id: str) -> None:
        for (a, b), x, y in (
            ((from_ot.name, to_ot.name), from_id, to_id),
            ((to_ot.name, from_ot.name), to_id, from_id),
        ):
            by_to = self._assoc.get((a, b), {}).get(x)
            if by_to is not None:
                by_to.pop(y, None)
                if not by_to:
                    del self._assoc[(a, b)][x]

    def _drop_associations(self, ot: ObjectType, object_id: str) -> None:
        for (a, b), by_from in list(self._assoc.items()):
            if a == ot.name and object_id in by_from:
                to_ot = object_type_or_400(b)
                for to_id in list(by_from[object_id]):
                    self._disassociate(ot, object_id, to_ot, to_id)

    def _exists(self, ot: ObjectType, object_id: str) -> bool:
        obj = self.objects[ot.name].get(object_id)
        return obj is not None and not obj.get("archived")

    def _check_type(self, from_ot: ObjectType, to_ot: ObjectType, spec: Any) -> int:
        if not isinstance(spec, dict):
            raise validation_error(f"Invalid association type: {spec!r}")
        category = spec.get("associationCategory")
        try:
            type_id = int(spec.get("associationTypeId"))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise validation_error(f"Invalid associationTypeId: {spec.get('associationTypeId')!r}") from None
        if category != "HUBSPOT_DEFINED" or self._type_pairs.get(type_id) != (
            from_ot.name,
            to_ot.name,
        ):
            raise validation_error(
                f"{category} association type {type_id} is not valid "
                f"between {from_ot.type_id} and {to_ot.type_id}"
            )
        return type_id

    def _validate_create_associations(self, ot: ObjectType, raw: Any) -> list[tuple[ObjectType, str, int]]:
        """`associations` on an object create:
        [{to: {id}, types: [{associationCategory, associationTypeId}]}]."""
        plan: list[tuple[ObjectType, str, int]] = []
        for entry in raw or []:
            to_id = str(((entry or {}).get("to") or {}).get("id", ""))
            for spec in (entry or {}).get("types") or []:
                pair = self._type_pairs.get(int(spec.get("associationTypeId", -1)))
                if pair is None or pair[0] != ot.name:
                    raise validation_error(f"Invalid association type for {ot.name}: {spec!r}")
                to_ot = object_type_or_400(pair[1])
                self._check_type(ot, to_ot, spec)
                if not self._exists(to_ot, to_id):
                    raise validation_error(
                        f"One or more associations are invalid: {to_ot.upper} {to_id} does not exist",
                        sub_category="crm.associations.INVALID_OBJECT_IDS",
                    )
                plan.append((to_ot, to_id, int(spec["associationTypeId"])))
        return plan

    def _pair_input(self, item: dict[str, Any]) -> tuple[str, str]:
        return str((item.get("from") or {}).get("id", "")), str((item.get("to") or {}).get("id", ""))

    def associate_batch(
        self, from_ref: str, to_ref: str, body: dict[str, Any]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """v4 batch/create: explicit types; missing objects become per-input errors."""
        f, t = object_type_or_400(from_ref), object_type_or_400(to_ref)
        with self.lock:
            inputs = self._check_batch(body)
            plan = []
            for item in inputs:
                from_id, to_id = self._pair_input(item)
                types = item.get("types") or []
                if not types:
                    raise validation_error("Each input needs at least one association type")
                plan.append((from_id, to_id, [self._check_type(f, t, spec) for spec in types]))
            results, errors = [], []
            for from_id, to_id, type_ids in plan:
                missing = [
                    f"{ot.upper} {oid}" for ot, oid in ((f, from_id), (t, to_id)) if not self._exists(ot, oid)
                ]
                if missing:
                    errors.append(_association_error(missing, from_id, to_id))
                    continue
                for type_id in type_ids:
                    self._associate(f, from_id, t, to_id, type_id)
                results.append(
                    {
                        "fromObjectTypeId": f.type_id,
                        "fromObjectId": int(from_id),
                        "toObjectTypeId": t.type_id,
                        "toObjectId": int(to_id),
                        "labels": [],
                    }
                )
            return results, errors

    def associate_default_batch(
        self, from_ref: str, to_ref: str, body: dict[str, Any]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        f, t = object_type_or_400(from_ref), object_type_or_400(to_ref)
        type_id = self.association_types.get((f.name, t.name))
        if type_id is None:
            raise validation_error(f"No default association type between {f.type_id} and {t.type_id}")
        with self.lock:
            inputs = self._check_batch(body)
            results, errors = [], []
            for item in inputs:
                from_id, to_id = self._pair_input(item)
                missing = [
                    f"{ot.upper} {oid}" for ot, oid in ((f, from_id), (t, to_id)) if not self._exists(ot, oid)
                ]
                if missing:
                    errors.append(_association_error(missing, from_id, to_id))
                    continue
                self._associate(f, from_id, t, to_id, type_id)
                results.append(
                    {
                        "from": {"id": from_id},
                        "to": {"id": to_id},
                        "associationSpec": {
                            "associationCategory": "HUBSPOT_DEFINED",
                            "associationTypeId": type_id,
                        },
                    }
                )
            return results, errors

    def associate_one(
        self, from_ref: str, from_id: str, to_ref: str, to_id: str, specs: list[Any] | None
    ) -> tuple[ObjectType, ObjectType, list[int]]:
        """v4 basic PUT: `specs` None means the default type."""
        f, t = object_type_or_400(from_ref), object_type_or_400(to_ref)
        with self.lock:
            if specs is None:
                default = self.association_types.get((f.name, t.name))
                if default is None:
                    raise validation_error(f"No default association type between {f.type_id} and {t.type_id}")
                type_ids = [default]
            else:
                if not isinstance(specs, list) or not specs:
                    raise validation_error("Body must be a non-empty list of association types")
                type_ids = [self._check_type(f, t, s) for s in specs]
            missing = [
                f"{ot.upper} {oid}" for ot, oid in ((f, from_id), (t, to_id)) if not self._exists(ot, oid)
            ]
            if missing:
                raise validation_error(
                    f"Objects do not exist: {', '.join(missing)}",
                    sub_category="crm.associations.INVALID_OBJECT_IDS",
                )
            for type_id in type_ids:
                self._associate(f, from_id, t, to_id, type_id)
            return f, t, type_ids

    def disassociate_batch(self, from_ref: str, to_ref: str, body: dict[str, Any]) -> None:
        f, t = object_type_or_400(from_ref), object_type_or_400(to_ref)
        with self.lock:
            for item in self._check_batch(body, limit=MAX_BATCH_INPUTS):
                from_id = str((item.get("from") or {}).get("id", ""))
                for to in item.get("to") or []:
                    self._disassociate(f, from_id, t, str((to or {}).get("id", "")))

    def disassociate_one(self, from_ref: str, from_id: str, to_ref: str, to_id: str) -> None:
        f, t = object_type_or_400(from_ref), object_type_or_400(to_ref)
        with self.lock:
            self._disassociate(f, from_id, t, to_id)

    def _associated(self, f: ObjectType, t: ObjectType, from_id: str) -> list[dict[str, Any]]:
        by_to = self._assoc.get((f.name, t.name), {}).get(from_id, {})
        return [
            {
                "toObjectId": int(to_id),
                "associationTypes": [
                    {"category": "HUBSPOT_DEFINED", "typeId": type_id, "label": None}
                    for type_id in sorted(by_to[to_id])
                ],
            }
            for to_id in sorted(by_to, key=int)
        ]

    def read_associations_batch(
        self, from_ref: str, to_ref: str, body: dict[str, Any]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        f, t = object_type_or_400(from_ref), object_type_or_400(to_ref)
        with self.lock:
            inputs = self._check_batch(body, limit=MAX_ASSOCIATION_READ_INPUTS)
            results, errors = [], []
            size = self.portal.association_read_page_size
            for item in inputs:
                from_id = str(item.get("id", ""))
                associated = self._associated(f, t, from_id)
                if associated:
                    # per input, `after` continues where the previous answer's paging stopped
                    after = str(item.get("after") or "")
                    start = int(after) if after.isdigit() else 0
                    result: dict[str, Any] = {"from": {"id": from_id}, "to": associated[start : start + size]}
                    if start + size < len(associated):
                        result["paging"] = {"next": {"after": str(start + size)}}
                    results.append(result)
                else:
                    errors.append(
                        standard_error(
                            "OBJECT_NOT_FOUND",
                            f"No {t.name} is associated with {f.singular} {from_id}.",
                            context={"fromObjectId": [from_id]},
                            sub_category="crm.associations.NO_ASSOCIATIONS_FOUND",
                        )
                    )
            return results, errors

    def association_labels(self, from_ref: str, to_ref: str) -> list[dict[str, Any]]:
        """v4 schema: the association types (labels) defined from one object type to another. The
        unlabeled HubSpot-defined default carries `label: null`."""
        f, t = object_type_or_400(from_ref), object_type_or_400(to_ref)
        type_id = self.association_types.get((f.name, t.name))
        if type_id is None:
            return []
        return [{"category": "HUBSPOT_DEFINED", "typeId": type_id, "label": None}]

    def list_associations(
        self, from_ref: str, from_id: str, to_ref: str, *, limit: int, after: str | None
    ) -> dict[str, Any]:
        f, t = object_type_or_400(from_ref), object_type_or_400(to_ref)
        if limit < 1 or limit > 500:
            raise validation_error(f"limit must be between 1 and 500, got {limit}")
        with self.lock:
            associated = self._associated(f, t, from_id)
        start = int(after) if after and after.isdigit() else 0
        page = associated[start : start + limit]
        out: dict[str, Any] = {"results": page}
        if start + limit < len(associated):
            out["paging"] = {
                "next": {
                    "after": str(start + limit),
                    "link": f"/crm/v4/objects/{f.name}/{from_id}/associations/{t.name}?after={start + limit}",
                }
            }
        return out

    # ----------------------------------------------------------------- properties & groups

    def list_properties(self, ref: str, *, archived: bool) -> list[dict[str, Any]]:
        ot = object_type_or_400(ref)
        with self.lock:
            return [
                copy.deepcopy(p)
                for p in self.properties[ot.name].values()
                if bool(p.get("archived")) == archived
            ]

    def get_property(self, ref: str, name: str) -> dict[str, Any]:
        ot = object_type_or_400(ref)
        with self.lock:
            prop = self._live_property(ot, name)
            if prop is None:
                raise not_found(f"Unable to find property with name {name} for object type {ot.type_id}")
            return copy.deepcopy(prop)

    def _property_from_input(self, ot: ObjectType, body: dict[str, Any]) -> dict[str, Any]:
        missing = [k for k in ("name", "label", "type", "fieldType", "groupName") if not body.get(k)]
        if missing:
            raise validation_error(f"Some required fields were not set: [{', '.join(missing)}]")
        name = str(body["name"])
        if not _PROPERTY_NAME.match(name):
            raise validation_error(
                f"Invalid property name {name!r}: use lower-case letters, digits and underscores, starting "
                "with a letter"
            )
        if body["type"] not in _PROPERTY_TYPES:
            raise validation_error(f"Invalid property type {body['type']!r}")
        if body["fieldType"] not in _FIELD_TYPES:
            raise validation_error(f"Invalid field type {body['fieldType']!r}")
        if body["groupName"] not in self.groups[ot.name] or self.groups[ot.name][body["groupName"]].get(
            "archived"
        ):
            raise validation_error(f"Property group {body['groupName']} does not exist.")
        unique = bool(body.get("hasUniqueValue", False))
        if unique:
            if body["type"] not in ("string", "number"):
                raise validation_error(
                    "Only single-line text and number properties can require unique values."
                )
            custom_unique = [
                p
                for p in self.properties[ot.name].values()
                if p.get("hasUniqueValue") and not p.get("archived")
            ]
            if len(custom_unique) >= MAX_UNIQUE_PROPERTIES:
                raise validation_error(
                    f"The maximum of {MAX_UNIQUE_PROPERTIES} unique value properties "
                    f"for {ot.name} is reached."
                )
        now = now_iso()
        options = [_option(o, i) for i, o in enumerate(body.get("options") or [])]
        if body["type"] == "bool" and not options:
            options = [
                _option({"label": "Yes", "value": "true"}, 0),
                _option({"label": "No", "value": "false"}, 1),
            ]
        return {
            "name": name,
            "label": body["label"],
            "type": body["type"],
            "fieldType": body["fieldType"],
            "groupName": body["groupName"],
            "description": body.get("description") or "",
            "options": options,
            "displayOrder": int(body.get("displayOrder", -1)),
            "hasUniqueValue": unique,
            "hidden": bool(body.get("hidden", False)),
            "formField": bool(body.get("formField", False)),
            "calculated": False,
            "externalOptions": bool(body.get("externalOptions", False)),
            "showCurrencySymbol": False,
            "modificationMetadata": {"archivable": True, "readOnlyDefinition": False, "readOnlyValue": False},
            "createdAt": now,
            "updatedAt": now,
            "archived": False,
        }

    def _property_exists_error(self, ot: ObjectType, name: str) -> HubSpotError | None:
        existing = self.properties[ot.name].get(name)
        if existing is not None and not existing.get("archived"):
            return HubSpotError(
                409,
                "OBJECT_ALREADY_EXISTS",
                f"Property named '{name}' already exists.",
                context={"name": [name]},
            )
        return None

    def create_property(self, ref: str, body: dict[str, Any]) -> dict[str, Any]:
        ot = object_type_or_400(ref)
        with self.lock:
            prop = self._property_from_input(ot, body)
            error = self._property_exists_error(ot, prop["name"])
            if error is not None:
                raise error
            self.properties[ot.name][prop["name"]] = prop
            self._unique_cache.clear()
            return copy.deepcopy(prop)

    def batch_create_properties(
        self, ref: str, body: dict[str, Any]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        ot = object_type_or_400(ref)
        with self.lock:
            results, errors = [], []
            for item in self._check_batch(body):
                try:
                    prop = self._property_from_input(ot, item)
                    error = self._property_exists_error(ot, prop["name"])
                    if error is not None:
                        raise error
                except HubSpotError as exc:
                    errors.append(
                        standard_error(
                            exc.category, exc.message, context={"name": [str(item.get("name", ""))]}
                        )
                    )
                    continue
                self.properties[ot.name][prop["name"]] = prop
                self._unique_cache.clear()
                results.append(copy.deepcopy(prop))
            return results, errors

    def batch_read_properties(
        self, ref: str, body: dict[str, Any]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        ot = object_type_or_400(ref)
        with self.lock:
            results, errors = [], []
            for item in self._check_batch(body):
                name = str(item.get("name", ""))
                prop = self._live_property(ot, name)
                if prop is None:
                    errors.append(
                        standard_error(
                            "OBJECT_NOT_FOUND",
                            f"Unable to find property with name {name}",
                            context={"name": [name]},
                        )
                    )
                else:
                    results.append(copy.deepcopy(prop))
            return results, errors

    def update_property(self, ref: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        ot = object_type_or_400(ref)
        with self.lock:
            prop = self._live_property(ot, name)
            if prop is None:
                raise not_found(f"Unable to find property with name {name} for object type {ot.type_id}")
            if prop["modificationMetadata"].get("readOnlyDefinition"):
                raise validation_error(
                    f"Property {name} is a HubSpot-defined property and cannot be modified."
                )
            if "hasUniqueValue" in body and bool(body["hasUniqueValue"]) != bool(prop.get("hasUniqueValue")):
                raise validation_error("hasUniqueValue cannot be changed after a property has been created.")
            if "groupName" in body and body["groupName"] not in self.groups[ot.name]:
                raise validation_error(f"Property group {body['groupName']} does not exist.")
            for key in (
                "label",
                "description",
                "groupName",
                "type",
                "fieldType",
                "displayOrder",
                "hidden",
                "formField",
            ):
                if key in body and body[key] is not None:
                    prop[key] = body[key]
            if body.get("options") is not None:
                prop["options"] = [_option(o, i) for i, o in enumerate(body["options"])]
            prop["updatedAt"] = now_iso()
            return copy.deepcopy(prop)

    def archive_property(self, ref: str, name: str) -> None:
        ot = object_type_or_400(ref)
        with self.lock:
            prop = self._live_property(ot, name)
            if prop is None:
                raise not_found(f"Unable to find property with name {name} for object type {ot.type_id}")
            if prop.get("hubspotDefined"):
                raise validation_error(
                    f"Property {name} is a HubSpot-defined property and cannot be archived."
                )
            prop["archived"] = True
            self._unique_cache.clear()
            prop["archivedAt"] = now_iso()
            self._unique[ot.name].pop(name, None)

    def list_groups(self, ref: str) -> list[dict[str, Any]]:
        ot = object_type_or_400(ref)
        with self.lock:
            return [copy.deepcopy(g) for g in self.groups[ot.name].values() if not g.get("archived")]

    def get_group(self, ref: str, name: str) -> dict[str, Any]:
        ot = object_type_or_400(ref)
        with self.lock:
            group = self.groups[ot.name].get(name)
            if group is None or group.get("archived"):
                raise not_found(f"Unable to find property group {name}")
            return copy.deepcopy(group)

    def create_group(self, ref: str, body: dict[str, Any]) -> dict[str, Any]:
        ot = object_type_or_400(ref)
        with self.lock:
            if not body.get("name") or not body.get("label"):
                raise validation_error("Some required fields were not set: [name, label]")
            name = str(body["name"])
            existing = self.groups[ot.name].get(name)
            if existing is not None and not existing.get("archived"):
                raise HubSpotError(
                    409, "OBJECT_ALREADY_EXISTS", f"Property group named '{name}' already exists."
                )
            group = {
                "name": name,
                "label": body["label"],
                "displayOrder": int(body.get("displayOrder", -1)),
                "archived": False,
            }
            self.groups[ot.name][name] = group
            return copy.deepcopy(group)

    def update_group(self, ref: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        ot = object_type_or_400(ref)
        with self.lock:
            group = self.groups[ot.name].get(name)
            if group is None or group.get("archived"):
                raise not_found(f"Unable to find property group {name}")
            for key in ("label", "displayOrder"):
                if body.get(key) is not None:
                    group[key] = body[key]
            return copy.deepcopy(group)

    def archive_group(self, ref: str, name: str) -> None:
        ot = object_type_or_400(ref)
        with self.lock:
            group = self.groups[ot.name].get(name)
            if group is None or group.get("archived"):
                raise not_found(f"Unable to find property group {name}")
            if any(
                p["groupName"] == name and not p.get("archived") for p in self.properties[ot.name].values()
            ):
                raise validation_error(f"Property group {name} still contains properties.")
            group["archived"] = True

    # ----------------------------------------------------------------- pipelines

    def _pipelines_of(self, ref: str) -> dict[str, dict[str, Any]]:
        ot = object_type_or_400(ref)
        if ot is not schema.DEALS:
            raise validation_error(f"The emulator keeps pipelines for deals only, not for {ot.name}")
        return self.pipelines.setdefault("deals", {})

    def _pipeline(self, ref: str, pipeline_id: str) -> dict[str, Any]:
        pipeline = self._pipelines_of(ref).get(pipeline_id)
        if pipeline is None or pipeline.get("archived"):
            raise not_found(f"Unable to find pipeline {pipeline_id}", context={"pipelineId": [pipeline_id]})
        return pipeline

    def _meta_id(self) -> str:
        value = str(self._next_meta_id)
        self._next_meta_id += 1
        return value

    def _stage_from_input(self, body: Any, now: str, stage_id: str | None = None) -> dict[str, Any]:
        if not isinstance(body, dict) or not body.get("label") or body.get("displayOrder") is None:
            raise validation_error("A pipeline stage needs label and displayOrder.")
        metadata = {str(k): _metadata_text(v) for k, v in (body.get("metadata") or {}).items()}
        probability = metadata.get("probability")
        try:
            valid = probability is not None and 0.0 <= float(probability) <= 1.0
        except ValueError:
            valid = False
        if not valid:
            raise validation_error(
                "Deal stages require metadata.probability, a number between 0.0 and 1.0.",
                context={"label": [str(body["label"])]},
            )
        step = self.portal.probability_step
        if step is not None and probability is not None:
            steps = float(probability) / step
            if abs(steps - round(steps)) > 1e-9:
                raise validation_error(
                    f"metadata.probability must be a multiple of {step} between 0.0 and 1.0, "
                    f"got {probability}.",
                    context={"label": [str(body["label"])]},
                )
        metadata.setdefault("isClosed", "false")
        return {
            "id": stage_id or self._meta_id(),
            "label": body["label"],
            "displayOrder": int(body["displayOrder"]),
            "metadata": metadata,
            "archived": False,
            "writePermissions": "CRM_PERMISSIONS_ENFORCEMENT",
            "createdAt": now,
            "updatedAt": now,
        }

    def _check_pipeline_label(self, ref: str, label: str, own_id: str | None) -> None:
        for pid, pl in self._pipelines_of(ref).items():
            if pid != own_id and not pl.get("archived") and pl["label"] == label:
                raise conflict(f"A pipeline with label '{label}' already exists.")

    def list_pipelines(self, ref: str) -> list[dict[str, Any]]:
        with self.lock:
            return [
                _public_pipeline(pl)
                for pl in sorted(
                    self._pipelines_of(ref).values(), key=lambda p: (p["displayOrder"], str(p["id"]))
                )
                if not pl.get("archived")
            ]

    def get_pipeline(self, ref: str, pipeline_id: str) -> dict[str, Any]:
        with self.lock:
            return _public_pipeline(self._pipeline(ref, pipeline_id))

    def create_pipeline(self, ref: str, body: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            if not body.get("label") or body.get("displayOrder") is None:
                raise validation_error("A pipeline needs label and displayOrder.")
            stages_raw = body.get("stages")
            if not isinstance(stages_raw, list) or not stages_raw:
                raise validation_error("A pipeline needs at least one stage.")
            self._check_pipeline_label(ref, body["label"], None)
            now = now_iso()
            stages = [self._stage_from_input(s, now) for s in stages_raw]
            pipeline = {
                "id": self._meta_id(),
                "label": body["label"],
                "displayOrder": int(body["displayOrder"]),
                "archived": False,
                "createdAt": now,
                "updatedAt": now,
                "stages": stages,
            }
            self._pipelines_of(ref)[pipeline["id"]] = pipeline
            return _public_pipeline(pipeline)

    def update_pipeline(self, ref: str, pipeline_id: str, body: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            pipeline = self._pipelines_of(ref).get(pipeline_id)
            if pipeline is None:
                raise not_found(
                    f"Unable to find pipeline {pipeline_id}", context={"pipelineId": [pipeline_id]}
                )
            if body.get("label"):
                self._check_pipeline_label(ref, body["label"], pipeline_id)
                pipeline["label"] = body["label"]
            if body.get("displayOrder") is not None:
                pipeline["displayOrder"] = int(body["displayOrder"])
            if body.get("archived") is not None:
                pipeline["archived"] = bool(body["archived"])
            pipeline["updatedAt"] = now_iso()
            return _public_pipeline(pipeline)

    def replace_pipeline(self, ref: str, pipeline_id: str, body: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            pipeline = self._pipeline(ref, pipeline_id)
            if not body.get("label") or body.get("displayOrder") is None or not body.get("stages"):
                raise validation_error("A pipeline needs label, displayOrder and stages.")
            self._check_pipeline_label(ref, body["label"], pipeline_id)
            now = now_iso()
            # stages keep their ids when the label matches an existing stage
            by_label = {s["label"]: s["id"] for s in pipeline["stages"]}
            pipeline["stages"] = [
                self._stage_from_input(s, now, by_label.get(s.get("label")) if isinstance(s, dict) else None)
                for s in body["stages"]
            ]
            pipeline["label"] = body["label"]
            pipeline["displayOrder"] = int(body["displayOrder"])
            pipeline["updatedAt"] = now
            return _public_pipeline(pipeline)

    def archive_pipeline(self, ref: str, pipeline_id: str) -> None:
        with self.lock:
            pipeline = self._pipeline(ref, pipeline_id)
            if pipeline_id == "default":
                raise validation_error("The default pipeline cannot be deleted.")
            pipeline["archived"] = True
            pipeline["archivedAt"] = now_iso()

    def _stage(self, ref: str, pipeline_id: str, stage_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
        pipeline = self._pipeline(ref, pipeline_id)
        for stage in pipeline["stages"]:
            if stage["id"] == stage_id and not stage.get("archived"):
                return pipeline, stage
        raise not_found(
            f"Unable to find stage {stage_id} in pipeline {pipeline_id}", context={"stageId": [stage_id]}
        )

    def list_stages(self, ref: str, pipeline_id: str) -> list[dict[str, Any]]:
        with self.lock:
            return _public_pipeline(self._pipeline(ref, pipeline_id))["stages"]

    def get_stage(self, ref: str, pipeline_id: str, stage_id: str) -> dict[str, Any]:
        with self.lock:
            return copy.deepcopy(self._stage(ref, pipeline_id, stage_id)[1])

    def create_stage(self, ref: str, pipeline_id: str, body: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            pipeline = self._pipeline(ref, pipeline_id)
            stage = self._stage_from_input(body, now_iso())
            pipeline["stages"].append(stage)
            pipeline["updatedAt"] = stage["createdAt"]
            return copy.deepcopy(stage)

    def update_stage(
        self, ref: str, pipeline_id: str, stage_id: str, body: dict[str, Any], *, replace: bool
    ) -> dict[str, Any]:
        with self.lock:
            pipeline, stage = self._stage(ref, pipeline_id, stage_id)
            now = now_iso()
            if replace:
                fresh = self._stage_from_input(body, now, stage_id)
                fresh["createdAt"] = stage["createdAt"]
                stage.clear()
                stage.update(fresh)
            else:
                if body.get("label"):
                    stage["label"] = body["label"]
                if body.get("displayOrder") is not None:
                    stage["displayOrder"] = int(body["displayOrder"])
                if body.get("metadata") is not None:
                    merged = {
                        **stage["metadata"],
                        **{str(k): _metadata_text(v) for k, v in body["metadata"].items()},
                    }
                    self._stage_from_input(
                        {"label": stage["label"], "displayOrder": 0, "metadata": merged}, now
                    )
                    stage["metadata"] = merged
                if body.get("archived") is not None:
                    stage["archived"] = bool(body["archived"])
                stage["updatedAt"] = now
            pipeline["updatedAt"] = now
            return copy.deepcopy(stage)

    def archive_stage(self, ref: str, pipeline_id: str, stage_id: str) -> None:
        with self.lock:
            pipeline, stage = self._stage(ref, pipeline_id, stage_id)
            stage["archived"] = True
            stage["archivedAt"] = now_iso()
            pipeline["updatedAt"] = stage["archivedAt"]


def _object_not_found(object_id: str) -> HubSpotError:
    return not_found("Object not found.  objectId are usually numeric.", context={"id": [object_id]})


def _association_error(missing: list[str], from_id: str, to_id: str) -> dict[str, Any]:
    return standard_error(
        "VALIDATION_ERROR",
        f"Objects do not exist: {', '.join(missing)}",
        context={"fromObjectId": [from_id], "toObjectId": [to_id]},
        sub_category="crm.associations.INVALID_OBJECT_IDS",
    )


def _option(raw: Any, order: int) -> dict[str, Any]:
    if not isinstance(raw, dict) or raw.get("value") is None or raw.get("label") is None:
        raise validation_error(f"Invalid option {raw!r}: label and value are required")
    return {
        "label": str(raw["label"]),
        "value": str(raw["value"]),
        "displayOrder": int(raw.get("displayOrder", order)),
        "hidden": bool(raw.get("hidden", False)),
        "description": str(raw.get("description") or ""),
    }


def _metadata_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _public_pipeline(pipeline: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(pipeline)
    out["stages"] = sorted(
        (s for s in out["stages"] if not s.get("archived")), key=lambda s: (s["displayOrder"], str(s["id"]))
    )
    return out
