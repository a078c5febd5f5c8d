"""`biss-pipeline` command: the demo and the emulators (dev tools)."""

from __future__ import annotations

import argparse
import importlib
import sys

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

    demo = commands.add_parser("demo", help="run the whole pipeline end to end on the embedded defaults")
    demo.set_defaults(handler=_run_demo)

    hubspot = commands.add_parser("hubspot", help="HubSpot portal tools")
    hubspot_commands = hubspot.add_subparsers(dest="hubspot_command", required=True)
    doctor = hubspot_commands.add_parser(
        "doctor", help="print whether a portal is ready for the sync (reads only, writes nothing)",
        description="Token from HUBSPOT_ACCESS_TOKEN, base URL from BISS_HUBSPOT_HOST (default "
                    "https://api.hubapi.com); the mapping's appointment_statuses are checked too.")
    doctor.add_argument("--mapping", default=None,
                        help="mapping file (default: BISS_MAPPING_FILE or config/mapping.yaml)")
    doctor.set_defaults(handler=_run_doctor)
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
