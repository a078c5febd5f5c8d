"""Deterministic randomness, Berlin wall-clock arithmetic and an exact JSON writer.

Everything the emulator generates must be a pure function of (seed, size, clock), so
randomness is derived from stable hashes (never Python's salted `hash()`), times are
integer epoch seconds, and money is integer cents all the way into the JSON text.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections import OrderedDict
from collections.abc import Callable, Hashable
from decimal import Decimal
from functools import lru_cache
from typing import Any, Generic, TypeVar
from zoneinfo import ZoneInfo

BERLIN = ZoneInfo("Europe/Berlin")
UTC = dt.UTC
_EPOCH_ORD = dt.date(1970, 1, 1).toordinal()
_MASK64 = (1 << 64) - 1

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


def derive_seed(*parts: object) -> int:
    """A 64-bit seed from any tuple of simple values, stable across processes and platforms."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def mix64(value: int) -> int:
    """splitmix64 finaliser: a cheap, well-spread hash for per-record decisions on hot paths."""
    z = (value + 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def unit(key: int, value: int) -> float:
    """A uniform number in [0, 1) that depends only on (key, value)."""
    return mix64(key ^ mix64(value)) / 18446744073709551616.0


@lru_cache(maxsize=8192)
def berlin_offset_s(day_ord: int) -> int:
    """UTC offset of Europe/Berlin on that day; taken at noon because DST switches at night."""
    noon = dt.datetime.fromordinal(day_ord).replace(hour=12, tzinfo=BERLIN)
    offset = noon.utcoffset()
    return int(offset.total_seconds()) if offset is not None else 0


def local_epoch(day_ord: int, minute: int) -> int:
    """Epoch seconds of a Berlin wall-clock time given as (day, minutes after midnight)."""
    return (day_ord - _EPOCH_ORD) * 86400 + minute * 60 - berlin_offset_s(day_ord)


def epoch_of(value: dt.datetime) -> int:
    if value.tzinfo is None:
        raise ValueError("emulator times must be timezone-aware (UTC)")
    return int(value.timestamp())


def datetime_of(epoch: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, tz=UTC)


def utc_text(epoch: int) -> str:
    return dt.datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def local_text(day_ord: int, minute: int) -> str:
    return f"{dt.date.fromordinal(day_ord).isoformat()}T{minute // 60:02d}:{minute % 60:02d}:00"


def date_text(day_ord: int) -> str:
    return dt.date.fromordinal(day_ord).isoformat()


def day_of_epoch_local(epoch: int) -> int:
    """Berlin calendar day (ordinal) of an instant."""
    return dt.datetime.fromtimestamp(epoch, tz=BERLIN).date().toordinal()


class Cents(int):
    """An amount in integer cents; the JSON writer emits it as a number with exactly two decimals."""

    def to_json(self) -> str:
        sign = "-" if self < 0 else ""
        whole, cents = divmod(abs(int(self)), 100)
        return f"{sign}{whole}.{cents:02d}"


def _encode(value: Any, out: list[str], ascii_only: bool = False) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, Cents):
        out.append(value.to_json())
    elif isinstance(value, int):
        out.append(str(value))
    elif isinstance(value, Decimal):
        out.append(str(value))  # as parsed: Decimal("480.00") -> 480.00, Decimal("1E+400") -> 1E+400
    elif isinstance(value, str):
        out.append(json.dumps(value, ensure_ascii=ascii_only))
    elif isinstance(value, dict):
        out.append("{")
        for index, (key, item) in enumerate(value.items()):
            if index:
                out.append(",")
            out.append(json.dumps(str(key), ensure_ascii=ascii_only))
            out.append(":")
            _encode(item, out, ascii_only)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _encode(item, out, ascii_only)
        out.append("]")
    elif isinstance(value, float):
        out.append(json.dumps(value))
    else:
        raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def dumps(value: Any, ascii_only: bool = False) -> bytes:
    """Compact JSON with `Cents` (and `Decimal`) written exactly; `json.dumps` cannot emit `480.00`
    as a number. `ascii_only` escapes every non-ASCII character (`\\u00fc`, and a lone surrogate as
    `\\ud800`), which is how a rewritten answer can carry text that UTF-8 cannot."""
    out: list[str] = []
    _encode(value, out, ascii_only)
    return "".join(out).encode()


class LruCache(Generic[K, V]):
    """A small bounded mapping; callers hold the dataset lock, so no locking here."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: OrderedDict[K, V] = OrderedDict()

    def get_or_create(self, key: K, factory: Callable[[], V]) -> V:
        try:
            value = self._items[key]
        except KeyError:
            value = factory()
            self._items[key] = value
            if len(self._items) > self.capacity:
                self._items.popitem(last=False)
            return value
        self._items.move_to_end(key)
        return value

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)
