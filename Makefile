# Every target sets up its own virtualenv, so a fresh clone needs only Python 3.11.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test lint bench dev clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	# The dev tools (biss_emulators, bench, tests) are not part of the package: the dev venv imports
	# them from this checkout.
	$(BIN)/python -c "import pathlib, sysconfig; pathlib.Path(sysconfig.get_paths()['purelib'], 'biss_dev_tools.pth').write_text('$(CURDIR)\n')"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/biss-pipeline demo

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/dg check defs
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(STAMP)
	$(BIN)/python -m bench.run_all

dev: $(STAMP)
	DAGSTER_HOME=$(CURDIR) $(BIN)/dagster dev -w workspace.yaml

clean:
	rm -rf $(VENV) data .pytest_cache
