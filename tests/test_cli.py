"""The `biss-pipeline` command: `emulate sheets` serves the local mapping as a sheet that the
pipeline's own sheet reader loads to the same mapping."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

from biss_pipeline.domain.mapping.sources import LocalMappingSource
from biss_pipeline.domain.paths import PROJECT_ROOT
from biss_pipeline.resources.mapping import MappingResource


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_emulate_sheets_serves_the_mapping_the_sheet_reader_loads(tmp_path: Path) -> None:
    credentials = tmp_path / "sa.json"
    process = subprocess.Popen(
        [sys.executable, "-m", "biss_pipeline.cli", "emulate", "sheets", "--port", str(free_port()),
         "--sheet-id", "sheet-under-test", "--credentials-file", str(credentials)],
        cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        exports = ""
        for line in process.stdout:
            if line.startswith("export "):
                exports = line
                break
        settings = dict(re.findall(r"(\w+)=(\S+)", exports))
        assert settings["BISS_MAPPING_SOURCE"] == "gsheet"
        assert settings["BISS_GSHEET_ID"] == "sheet-under-test"
        os.environ["BISS_TEST_SA"] = credentials.read_text(encoding="utf-8")
        served = MappingResource(source="gsheet", sheet_id=settings["BISS_GSHEET_ID"],
                                 credentials_env="BISS_TEST_SA",
                                 sheets_api_url=settings["BISS_GSHEETS_API_URL"]).load()
    finally:
        os.environ.pop("BISS_TEST_SA", None)
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
    local = LocalMappingSource(PROJECT_ROOT / "config" / "mapping.yaml").load()
    assert served.content_hash == local.content_hash
