"""Google Sheets API stand-in: the endpoints gspread 6 reads a spreadsheet with, plus the OAuth token
endpoint a service account signs in at, over in-memory spreadsheets. A dev tool for tests and demos of
the mapping-sheet source (`biss_pipeline.domain.mapping.sources.GoogleSheetMappingSource`)."""

from biss_emulators.sheets.app import create_app
from biss_emulators.sheets.emulator import SheetsEmulator
from biss_emulators.sheets.state import SheetsState, grid_from_records, render_cell

__all__ = ["SheetsEmulator", "SheetsState", "create_app", "grid_from_records", "render_cell"]
