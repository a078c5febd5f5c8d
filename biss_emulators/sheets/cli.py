"""Run the Google Sheets stand-in in the foreground, serving the local mapping file as a sheet (dev tool).

`biss-pipeline emulate sheets --port 8730` loads `config/mapping.yaml` (or `--mapping`) into the
spreadsheet `--sheet-id`, writes a throwaway service-account key whose token endpoint is this stand-in
to `--credentials-file`, and prints the variables that point the pipeline at it:

    BISS_MAPPING_SOURCE=gsheet BISS_GSHEET_ID=<id> BISS_GSHEET_CREDENTIALS=<file>
    BISS_GSHEETS_API_URL=http://127.0.0.1:<port>

Edit the served sheet through the stand-in's API, or restart it after editing the YAML file.
"""

from __future__ import annotations

import argparse
import json
import threading
from pathlib import Path

from biss_emulators.sheets.emulator import SheetsEmulator
from biss_pipeline.domain.mapping.practices import load_mapping_tabs
from biss_pipeline.domain.paths import mapping_file


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=8730, help="TCP port (default 8730)")
    parser.add_argument("--mapping", default=None,
                        help="mapping file to serve (default: config/mapping.yaml)")
    parser.add_argument("--sheet-id", default="biss-mapping-dev", help="spreadsheet id to serve it under")
    parser.add_argument("--credentials-file", default="data/sheets-service-account.json",
                        help="where to write the throwaway service-account key (default under data/)")


def run(args: argparse.Namespace) -> int:
    tabs = load_mapping_tabs(Path(args.mapping) if args.mapping else mapping_file())
    sheets = SheetsEmulator(port=args.port).start()
    sheets.put_records(args.sheet_id, tabs, title="BISS mapping (stand-in)")
    credentials = Path(args.credentials_file)
    credentials.parent.mkdir(parents=True, exist_ok=True)
    credentials.write_text(json.dumps(sheets.new_service_account()), encoding="utf-8")
    credentials.chmod(0o600)
    print(f"Sheets stand-in on {sheets.base_url}, sheet {args.sheet_id!r} with tabs {', '.join(tabs)}")
    print(f"export BISS_MAPPING_SOURCE=gsheet BISS_GSHEET_ID={args.sheet_id} "
          f"BISS_GSHEET_CREDENTIALS={credentials} BISS_GSHEETS_API_URL={sheets.base_url}")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        sheets.stop()
    return 0
