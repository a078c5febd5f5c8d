"""Where the pipeline keeps local state, and which files it reads by default."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def data_dir() -> Path:
    """Project data directory (SQLite warehouse, Dagster home, reports); `BISS_DATA_DIR` overrides."""
    path = Path(os.environ.get("BISS_DATA_DIR", PROJECT_ROOT / "data"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def mapping_file() -> Path:
    """The local mapping spreadsheet file; `BISS_MAPPING_FILE` overrides."""
    return Path(os.environ.get("BISS_MAPPING_FILE", PROJECT_ROOT / "config" / "mapping.yaml"))
