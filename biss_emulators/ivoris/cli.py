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


def _optional_int(value: str) -> int | None:
    return None if value.lower() == "none" else int(value)


def _names(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


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
    lies = parser.add_argument_group("paging lies and garbled answers (docs/ivoris-emulator.md)")
    lies.add_argument("--short-page-rate", type=float, default=0.0, metavar="RATE",
                      help="share of pages that drop items, a re-read may be whole (0..1)")
    lies.add_argument("--wide-short-page-rate", type=float, default=0.0, metavar="RATE",
                      help="share of the pages of wide requests that drop items on every read (0..1)")
    lies.add_argument("--wide-after-days", type=_optional_int, default=1, metavar="DAYS",
                      help="a window of more than DAYS days is wide (default 1; 'none': never)")
    lies.add_argument("--wide-after-page-size", type=_optional_int, default=100, metavar="N",
                      help="a pageSize above N is wide (default 100; 'none': never)")
    lies.add_argument("--phantom-total-extra", type=int, default=0, metavar="N",
                      help="every page reports N records more than exist")
    lies.add_argument("--total-drift-rate", type=float, default=0.0, metavar="RATE",
                      help="share of pages whose total is off (0..1)")
    lies.add_argument("--total-drift-max", type=int, default=10, metavar="N",
                      help="largest change of a drifting total (default 10)")
    lies.add_argument("--paged-lists-page-size", type=int, default=None, metavar="N",
                      help="page ?ids= and per-patient answers at N per page (default: plain lists)")
    lies.add_argument("--html-200-rate", type=float, default=0.0, metavar="RATE",
                      help="share of answers replaced by an HTML page with status 200 (0..1)")
    lies.add_argument("--truncated-json-rate", type=float, default=0.0, metavar="RATE",
                      help="share of answers whose JSON is cut off, status 200 (0..1)")
    lies.add_argument("--non-integer-id-rate", type=float, default=0.0, metavar="RATE",
                      help="share of records whose id is served as a non-integer (0..1)")
    lies.add_argument("--non-integer-id-references", action="store_true",
                      help="patientId/appointmentId pointing at such records carry the same value")
    lies.add_argument("--lie-sites", type=_names, default=None, metavar="SITE,...",
                      help="restrict the knobs of this group to these sites (default: all)")
    lies.add_argument("--lie-routes", type=_names, default=None, metavar="ROUTE,...",
                      help="restrict them to these route templates, e.g. /appointments (default: all)")
    parser.add_argument("--allow-non-loopback", action="store_true",
                        help="permit a non-loopback --host (exposes synthetic patient data)")


def faults_from_args(args: argparse.Namespace) -> FaultConfig:
    """The fault knobs the command line sets; a ValueError names the first bad one."""
    return FaultConfig(
        random_504_rate=args.random_504, max_in_flight=args.max_in_flight, latency_s=args.latency,
        latency_jitter_s=args.latency_jitter, duplicate_rate=args.duplicate_rate,
        date_route_gap_rate=args.date_route_gap_rate, short_page_rate=args.short_page_rate,
        wide_short_page_rate=args.wide_short_page_rate, wide_after_days=args.wide_after_days,
        wide_after_page_size=args.wide_after_page_size, phantom_total_extra=args.phantom_total_extra,
        total_drift_rate=args.total_drift_rate, total_drift_max=args.total_drift_max,
        paged_lists_page_size=args.paged_lists_page_size, html_200_rate=args.html_200_rate,
        truncated_json_rate=args.truncated_json_rate, non_integer_id_rate=args.non_integer_id_rate,
        non_integer_id_references=args.non_integer_id_references, lie_sites=args.lie_sites,
        lie_routes=args.lie_routes)


def run(args: argparse.Namespace) -> int:
    try:
        faults = faults_from_args(args)
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
