"""`biss-pipeline` command: the demo, the emulators (dev tools) and HubSpot ledger maintenance.

    biss-pipeline hubspot doctor                           is the portal ready? (reads only)
    biss-pipeline hubspot rebuild-ledger --practice mb     after a portal reset/restore (SPEC §8)
    biss-pipeline hubspot suppressed --practice mb         patients whose contact was deleted in HubSpot
    biss-pipeline hubspot unsuppress --practice mb --patient MB_10423

They use the production settings: BISS_WAREHOUSE_URL (else the local SQLite file), HUBSPOT_ACCESS_TOKEN,
BISS_HUBSPOT_HOST (the emulator), and the mapping source (BISS_MAPPING_SOURCE)."""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from biss_pipeline.domain.warehouse.store import Warehouse

EMULATORS = {
    "ivoris": "biss_emulators.ivoris.cli",
    "hubspot": "biss_emulators.hubspot.cli",
    "sheets": "biss_emulators.sheets.cli",
}


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="biss-pipeline", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    emulate = commands.add_parser("emulate", help="run an emulator standalone (dev tool)")
    emulators = emulate.add_subparsers(dest="emulator", required=True)
    for name, module_name in EMULATORS.items():
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            # Not in an installed pipeline (the production image): the emulators are dev tools.
            sub = emulators.add_parser(name, help="(dev tool: run from a checkout set up by `make`)")
            sub.set_defaults(handler=_emulators_missing)
            continue
        sub = emulators.add_parser(name, help=(module.__doc__ or "").strip().splitlines()[0])
        module.add_arguments(sub)
        sub.set_defaults(handler=module.run)

    _add_hubspot_commands(commands)

    demo = commands.add_parser("demo", help="run the whole pipeline end to end on the embedded defaults")
    demo.set_defaults(handler=_run_demo)

    return parser


def _run_doctor(args: argparse.Namespace) -> int:
    import os
    from pathlib import Path

    from biss_pipeline.domain.hubspot.api import HubSpotError
    from biss_pipeline.domain.hubspot.client import (
        ACCESS_TOKEN_ENV,
        HUBSPOT_API_HOST,
        HubSpotClient,
        RetrySettings,
    )
    from biss_pipeline.domain.hubspot.model import SyncMapping
    from biss_pipeline.domain.hubspot.portal import doctor_report, portal_spec
    from biss_pipeline.domain.mapping.sources import LocalMappingSource
    from biss_pipeline.domain.paths import mapping_file

    token = os.environ.get(ACCESS_TOKEN_ENV)
    if not token:
        print(f"set {ACCESS_TOKEN_ENV} to the portal's private-app or service-key token", file=sys.stderr)
        return 2
    host = os.environ.get("BISS_HUBSPOT_HOST") or HUBSPOT_API_HOST
    mapping = LocalMappingSource(Path(args.mapping) if args.mapping else mapping_file()).load()
    spec = portal_spec(SyncMapping.from_mapping(mapping))
    client = HubSpotClient(token, host, retry=RetrySettings(max_retries=2))
    print(f"portal at {host}")
    try:
        text, ready = doctor_report(client, spec)
    except HubSpotError as exc:  # auth, outage: nothing to judge (the summary carries no values)
        print(f"HubSpot did not answer the readiness reads: {exc}", file=sys.stderr)
        return 1
    print(text)
    return 0 if ready else 1


def _add_hubspot_commands(commands: argparse._SubParsersAction) -> None:
    hubspot = commands.add_parser("hubspot", help="HubSpot portal readiness and ledger maintenance (SPEC §8)")
    actions = hubspot.add_subparsers(dest="hubspot_command", required=True)
    rebuild = actions.add_parser(
        "rebuild-ledger",
        help="after a portal reset or restore: look every key up in HubSpot, fix the ledger, re-send "
             "what is missing")
    rebuild.add_argument("--practice", required=True)
    rebuild.add_argument("--no-resend", action="store_true", help="fix the ledger only; the next run sends")
    rebuild.set_defaults(handler=_rebuild_ledger)
    listing = actions.add_parser("suppressed", help="list the practice's suppressed patients (keys only)")
    listing.add_argument("--practice", required=True)
    listing.set_defaults(handler=_list_suppressed)
    lift = actions.add_parser(
        "unsuppress",
        help="lift one patient's suppression: the next sync creates its contact, deals and appointments")
    lift.add_argument("--practice", required=True)
    lift.add_argument("--patient", required=True, help="the Ivoris key, e.g. MB_10423")
    lift.set_defaults(handler=_unsuppress)
    doctor = actions.add_parser(
        "doctor", help="print whether a portal is ready for the sync (reads only, writes nothing)",
        description="Token from HUBSPOT_ACCESS_TOKEN, base URL from BISS_HUBSPOT_HOST (default "
                    "https://api.hubapi.com); the mapping's appointment_statuses are checked too.")
    doctor.add_argument("--mapping", default=None,
                        help="mapping file (default: BISS_MAPPING_FILE or config/mapping.yaml)")
    doctor.set_defaults(handler=_run_doctor)


def _warehouse() -> Warehouse:
    # outside a Dagster run nothing resolves an EnvVar, so the settings are read here
    import os

    from biss_pipeline.resources.warehouse import WarehouseResource

    return WarehouseResource(url=os.environ.get("BISS_WAREHOUSE_URL") or None).get()


def _rebuild_ledger(args: argparse.Namespace) -> int:
    import os

    from biss_pipeline.domain.hubspot.client import ACCESS_TOKEN_ENV, HUBSPOT_API_HOST
    from biss_pipeline.domain.hubspot.engine import SyncAborted
    from biss_pipeline.domain.hubspot.model import SyncMapping
    from biss_pipeline.domain.hubspot.rebuild import rebuild_ledger
    from biss_pipeline.resources import mapping_resource
    from biss_pipeline.resources.hubspot import HubSpotResource

    token = os.environ.get(ACCESS_TOKEN_ENV)
    if not token:
        print(f"{ACCESS_TOKEN_ENV} is not set", file=sys.stderr)
        return 2
    client = HubSpotResource(access_token=token,
                             host=os.environ.get("BISS_HUBSPOT_HOST") or HUBSPOT_API_HOST,
                             tier=os.environ.get("BISS_HUBSPOT_TIER", "professional")).get_client()
    mapping = SyncMapping.from_mapping(mapping_resource().load())
    try:
        report = rebuild_ledger(client, _warehouse(), args.practice, mapping,
                                run_id="cli-rebuild-ledger", resend=not args.no_resend)
    except SyncAborted as exc:
        print(f"rebuild of {args.practice} stopped: {exc}", file=sys.stderr)
        return 1
    print("\n".join(report.lines()))
    return 1 if report.sync is not None and report.sync.errors else 0


def _list_suppressed(args: argparse.Namespace) -> int:
    from biss_pipeline.domain.hubspot.ledger import Ledger

    keys = Ledger(_warehouse()).suppressed(args.practice)
    print(f"{len(keys)} suppressed patients in {args.practice}")
    for key in keys:
        print(key)
    return 0


def _unsuppress(args: argparse.Namespace) -> int:
    from biss_pipeline.domain.hubspot.ledger import Ledger, SyncLogEntry

    ledger = Ledger(_warehouse(), "cli-unsuppress")
    if not ledger.unsuppress(args.practice, args.patient):
        print(f"{args.patient} is not suppressed in {args.practice}", file=sys.stderr)
        return 1
    ledger.log(args.practice, [SyncLogEntry("unsuppress", "contacts", args.patient, "lifted by command")])
    print(f"{args.patient}: suppression lifted; the next sync of {args.practice} creates its contact again")
    return 0


def _emulators_missing(args: argparse.Namespace) -> int:
    print("The emulators are dev tools and not part of the installed pipeline: run them from a "
          "checkout of the repository set up by `make` (its virtualenv imports biss_emulators).",
          file=sys.stderr)
    return 2


def _run_demo(args: argparse.Namespace) -> int:
    from biss_pipeline.demo import run_demo

    return run_demo()


def main(argv: list[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    return int(args.handler(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
