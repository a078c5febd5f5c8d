"""Serve the Ivoris API emulator (all practices, synthetic data) in the foreground.

Every site answers under `http://HOST:PORT/sites/{site_id}` with header `X-Api-Key:
dev-key-{site_id}`, which is what config/mapping.yaml expects on port 8710.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import sys

from biss_emulators.ivoris.emulator import IvorisEmulator
from biss_emulators.ivoris.faults import FaultConfig
from biss_emulators.ivoris.sizes import PRESETS

DEFAULT_PORT = 8710


def _instant(value: str) -> dt.datetime:
    parsed = dt.datetime.fromisoformat(value)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=dt.UTC)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    parser.add_argument("--host", default="127.0.0.1", help="bind address, loopback only (default 127.0.0.1)")
    parser.add_argument("--seed", type=int, default=7, help="data seed; same seed, same data (default 7)")
    parser.add_argument("--size", choices=sorted(PRESETS), default="demo",
                        help="dataset preset (default demo)")
    parser.add_argument("--clock", type=_instant, default=None,
                        help="emulator 'now' as ISO timestamp (default: the preset's fixed clock)")
    parser.add_argument("--random-504", type=float, default=0.0, metavar="RATE",
                        help="share of requests answered 504 (0..1)")
    parser.add_argument("--max-in-flight", type=int, default=None, metavar="N",
                        help="answer 504 when more than N requests are in flight")
    parser.add_argument("--latency", type=float, default=0.0, metavar="SECONDS",
                        help="added latency per request")
    parser.add_argument("--latency-jitter", type=float, default=0.0, metavar="SECONDS",
                        help="extra random latency, uniform in 0..SECONDS")
    parser.add_argument("--duplicate-rate", type=float, default=0.0, metavar="RATE",
                        help="share of a page's records repeated on the next page (0..1)")
    parser.add_argument("--date-route-gap-rate", type=float, default=0.0, metavar="RATE",
                        help="share of document entries missing from the date-filtered route (0..1)")
    parser.add_argument("--allow-non-loopback", action="store_true",
                        help="permit a non-loopback --host (exposes synthetic patient data)")


def run(args: argparse.Namespace) -> int:
    faults = FaultConfig(random_504_rate=args.random_504, max_in_flight=args.max_in_flight,
                         latency_s=args.latency,
                         latency_jitter_s=args.latency_jitter, duplicate_rate=args.duplicate_rate,
                         date_route_gap_rate=args.date_route_gap_rate)
    try:
        emu = IvorisEmulator(seed=args.seed, size=args.size, clock=args.clock, faults=faults, host=args.host,
                             port=args.port, site_ports=False, allow_non_loopback=args.allow_non_loopback)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"Ivoris emulator: size={emu.size.name} seed={emu.seed} clock={emu.clock.isoformat()}")
    for site in emu.sites:
        print(f"  {site.site_id}  {emu.site_url(site.site_id)}  X-Api-Key: {site.api_key}  ({site.name})")
    print(f"  counters: {emu.base_url}/_emulator/stats")
    with contextlib.suppress(KeyboardInterrupt):
        emu.serve_forever()
    return 0
