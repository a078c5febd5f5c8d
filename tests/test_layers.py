"""The layering of docs/architecture.md, checked on the source: the domain layer imports no
Dagster, its pure core no SQLAlchemy or httpx either, and no wiring module imports another
wiring package sideways (shared names go through keys.py or the domain layer)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "biss_pipeline"
WIRING_PACKAGES = ("assets", "checks", "jobs", "sensors", "resources")
# The pure core named in docs/architecture.md: plain functions over records and DataFrames.
PURE_CORE = (
    "domain/calendar.py", "domain/verdicts.py", "domain/ivoris/extract.py",
    "domain/staging/rules.py", "domain/deals/rules.py", "domain/deals/entry_rules.py",
    "domain/deals/contacts.py", "domain/kpi/metrics.py", "domain/hubspot/model.py",
    "domain/hubspot/payloads.py", "domain/hubspot/diff.py",
)


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _modules(folder: str) -> list[Path]:
    return sorted((PACKAGE / folder).rglob("*.py"))


@pytest.mark.parametrize("path", _modules("domain"), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_domain_layer_imports_no_dagster(path: Path) -> None:
    dagster = {m for m in _imported_modules(path) if m == "dagster" or m.startswith("dagster")}
    assert not dagster, f"{path.relative_to(PACKAGE)} imports {sorted(dagster)}"


@pytest.mark.parametrize("relative", PURE_CORE)
def test_pure_core_imports_no_io_library(relative: str) -> None:
    path = PACKAGE / relative
    assert path.is_file(), f"{relative} is named as pure core but does not exist"
    io = {m for m in _imported_modules(path)
          if m.split(".")[0] in {"sqlalchemy", "httpx", "hubspot", "gspread", "alembic"}}
    assert not io, f"{relative} is pure core but imports {sorted(io)}"


@pytest.mark.parametrize(
    "path", [p for folder in WIRING_PACKAGES for p in _modules(folder)],
    ids=lambda p: str(p.relative_to(PACKAGE)))
def test_wiring_modules_do_not_import_each_other(path: Path) -> None:
    own = path.relative_to(PACKAGE).parts[0]
    sideways = {
        m for m in _imported_modules(path)
        if m.startswith("biss_pipeline.")
        and m.split(".")[1] in WIRING_PACKAGES and m.split(".")[1] != own
        # resources are what wiring modules receive; naming their types is not sideways.
        and m.split(".")[1] != "resources"
    }
    assert not sideways, f"{path.relative_to(PACKAGE)} imports {sorted(sideways)}"
