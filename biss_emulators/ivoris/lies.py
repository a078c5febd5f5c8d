"""Paging lies, garbled answers and non-integer ids: pure, seeded decisions behind the `FaultConfig` knobs.

Nothing here holds state. The HTTP layer passes the fault seed, a canonical text of the request and
(for transient faults) how often that exact request was made before; `Truth` uses the same functions
to say which records a knob spoils, so tests never re-implement a decision.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from random import Random
from typing import Any

from biss_emulators.ivoris._util import derive_seed, unit

ENTITIES = ("patients", "appointments", "document_entries")
# Which fields of a record point at which entity; `id` is the record's own.
REFERENCES: dict[str, tuple[tuple[str, str], ...]] = {
    "patients": (),
    "appointments": (("patientId", "patients"),),
    "document_entries": (("patientId", "patients"), ("appointmentId", "appointments")),
}
# A quarter of the short pages come back empty: "empty before total is reached" is the case a
# client that stops at the first empty page gets wrong, so it must not be rare.
EMPTY_SHARE = 0.25
_SCALE = 18446744073709551616.0

# What a Windows server's web front answers when the Ivoris service behind it fails: a page for
# people, with status 200 because the front-end itself did not fail.
HTML_200_BODY = (
    "<!DOCTYPE html>\n<html lang=\"de\"><head><meta charset=\"utf-8\"><title>Ivoris - Fehler</title></head>"
    "<body><h1>Der Dienst ist vor\u00fcbergehend nicht verf\u00fcgbar</h1>"
    "<p>Bitte versuchen Sie es sp\u00e4ter erneut.</p></body></html>\n"
).encode()


def request_key(site_id: str, route: str, path: Mapping[str, Any], query: Iterable[tuple[str, str]]) -> str:
    """The identity of a request: same site, route, path and query (in any order) = same key."""
    path_part = ",".join(f"{name}={path[name]}" for name in sorted(path) if name != "site_id")
    query_part = "&".join(f"{name}={value}" for name, value in sorted(query))
    return f"{site_id}|{route}|{path_part}|{query_part}"


def chance(seed: int, key: str, attempt: int | None, kind: str) -> float:
    """A uniform number in [0, 1) for one decision; `attempt=None` makes it persistent."""
    return derive_seed(seed, key, attempt, kind) / _SCALE


def drop_items(items: list[Any], seed: int) -> list[Any]:
    """Some of `items` (order kept), never all of them: the empty page is one of the outcomes."""
    rng = Random(seed)
    if len(items) <= 1 or rng.random() < EMPTY_SHARE:
        return []
    keep = rng.randint(1, len(items) - 1)
    return [items[index] for index in sorted(rng.sample(range(len(items)), keep))]


def drift(seed: int, largest: int) -> int:
    """A change of the total by 1..largest records, up or down."""
    rng = Random(seed)
    step = rng.randint(1, largest)
    return step if rng.random() < 0.5 else -step


def cut(body: bytes, seed: int) -> bytes:
    """A strict prefix of a JSON document (at least one byte): its brackets can never balance."""
    if len(body) <= 1:
        return b""
    return body[: Random(seed).randint(1, len(body) - 1)]


def _letters(record_id: int) -> str:
    return "".join(chr(ord("a") + int(digit)) for digit in str(record_id))


# Every form a non-integer id takes. Never None: a null appointmentId is a valid unlinked entry, so
# a null would turn bad input into plausible data. `True` is there because bool is an int subclass
# in Python and slips through a naive isinstance check; "12" because a lenient int() accepts it.
_FORMS = (
    _letters,
    lambda record_id: f"{record_id}a",
    lambda record_id: str(record_id),
    lambda record_id: record_id + 0.5,
    lambda record_id: record_id % 2 == 1,
)


class NonIntegerIds:
    """Which records are served with a non-integer id, and as what; a fixed subset per (seed, site)."""

    def __init__(self, seed: int) -> None:
        self._seed = seed
        self._keys: dict[tuple[str, str], tuple[int, int]] = {}

    def _key(self, site_id: str, entity: str) -> tuple[int, int]:
        key = self._keys.get((site_id, entity))
        if key is None:
            if entity not in ENTITIES:
                raise ValueError(f"entity must be one of {ENTITIES}, got {entity!r}")
            key = (derive_seed(self._seed, site_id, entity, "non-integer-id"),
                   derive_seed(self._seed, site_id, entity, "non-integer-form"))
            self._keys[(site_id, entity)] = key
        return key

    def value(self, site_id: str, entity: str, record_id: int, rate: float) -> Any | None:
        """The value served instead of `record_id`, or None when it is served as the integer."""
        if rate <= 0:
            return None
        pick, form = self._key(site_id, entity)
        if unit(pick, record_id) >= rate:
            return None
        return _FORMS[int(unit(form, record_id) * len(_FORMS))](record_id)

    def apply(self, site_id: str, entity: str, records: list[dict[str, Any]], rate: float,
              references: bool) -> tuple[list[dict[str, Any]], int]:
        """Copies of `records` with the spoiled ids replaced, and how many records changed."""
        fields = (("id", entity), *(REFERENCES[entity] if references else ()))
        out: list[dict[str, Any]] = []
        changed = 0
        for record in records:
            replaced: dict[str, Any] | None = None
            for field, target in fields:
                current = record.get(field)
                # only genuine ints: a stale or repeated copy is a new dict built from integers
                if type(current) is not int:
                    continue
                bad = self.value(site_id, target, current, rate)
                if bad is not None:
                    replaced = {**record} if replaced is None else replaced
                    replaced[field] = bad
            if replaced is None:
                out.append(record)
            else:
                out.append(replaced)
                changed += 1
        return out, changed
