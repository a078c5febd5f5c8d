"""Run the HubSpot CRM API emulator in the foreground (dev tool).

`biss-pipeline emulate hubspot --port 8720 --state-file data/hubspot.json` serves HubSpot's CRM paths on
loopback; point `HubSpot(access_token=TOKEN, host="http://127.0.0.1:8720")` at it. Inspection routes
(`/_emulator/state`, `/_emulator/requests`, `/_emulator/faults`) need no token.
"""

from __future__ import annotations

import argparse
import os
import threading

from biss_emulators.hubspot.emulator import HubSpotEmulator
from biss_emulators.hubspot.faults import Faults
from biss_emulators.hubspot.schema import TIER_LIMITS

AUTOSAVE_INTERVAL_S = 5.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=8720, help="TCP port (default 8720)")
    parser.add_argument("--host", default="127.0.0.1", help="bind address, loopback only (default 127.0.0.1)")
    parser.add_argument(
        "--token",
        default=os.environ.get("HUBSPOT_EMULATOR_TOKEN", "dev-token"),
        help="bearer token clients must send (default $HUBSPOT_EMULATOR_TOKEN or 'dev-token')",
    )
    parser.add_argument("--tier", choices=sorted(TIER_LIMITS), default="professional", help="rate-limit tier")
    parser.add_argument("--state-file", default=None, help="JSON file the portal is loaded from and saved to")
    parser.add_argument(
        "--search-delay", type=float, default=2.0, help="seconds before writes become searchable (default 2)"
    )
    parser.add_argument("--random-502", type=float, default=0.0, help="share of API calls answered 502")
    parser.add_argument("--random-504", type=float, default=0.0, help="share of API calls answered 504")
    parser.add_argument(
        "--lost-response-rate",
        type=float,
        default=0.0,
        help="share of successful writes that commit but answer 502",
    )
    parser.add_argument(
        "--random-429", type=float, default=0.0, help="share of API calls refused with a 429 (a storm)"
    )
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every API call")
    parser.add_argument("--seed", type=int, default=None, help="seed for the fault dice")
    parser.add_argument(
        "--allow-non-loopback",
        action="store_true",
        help="allow binding beyond loopback (synthetic data only)",
    )


def build(args: argparse.Namespace) -> HubSpotEmulator:
    faults = Faults(
        random_502_rate=args.random_502,
        random_504_rate=args.random_504,
        latency_s=args.latency,
        lost_response_rate=args.lost_response_rate,
        seed=args.seed,
        random_429_rate=args.random_429,
    )
    return HubSpotEmulator(
        token=args.token,
        tier=args.tier,
        search_index_delay_s=args.search_delay,
        faults=faults,
        state_path=args.state_file,
        host=args.host,
        port=args.port,
        allow_non_loopback=args.allow_non_loopback,
    )


def run(args: argparse.Namespace) -> int:
    emu = build(args)
    stop = threading.Event()

    def autosave() -> None:
        # a killed process loses at most a few seconds of writes
        while not stop.wait(AUTOSAVE_INTERVAL_S):
            if emu.unsaved_writes:
                emu.save()

    saver = threading.Thread(target=autosave, name="hubspot-autosave", daemon=True)
    if emu.state_path is not None:
        saver.start()
    print(
        f"HubSpot emulator on {emu.base_url} (tier {args.tier}); inspection at {emu.base_url}/_emulator/state"
    )
    try:
        emu.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        if emu.state_path is not None:
            emu.save()
            print(f"HubSpot emulator state saved to {emu.state_path}")
    return 0
