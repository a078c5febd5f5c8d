"""The last mapping that loaded, kept in the warehouse (table `mapping_last_good`).

`mapping_config` saves it on every successful materialization; a reader that cannot read the sheet
(outage, credentials) loads it instead, so the code location keeps loading and runs keep their
mapping until the sheet answers again. Stored as the canonical tabs (reading them back goes through
the same parser and validation as the sheet) with the practices that were disabled at the time and why.
"""

from __future__ import annotations

import json

import sqlalchemy as sa

from biss_pipeline.domain.mapping.config import parse_mapping
from biss_pipeline.domain.mapping.isolation import MappingState
from biss_pipeline.domain.mapping.practices import ConfigError
from biss_pipeline.domain.warehouse.schema import mapping_last_good

SLOT = "last"


def _problem(error: ConfigError) -> str:
    return str(error).split(": ", 1)[-1]


def save_last_good(engine: sa.Engine, state: MappingState, source: str) -> None:
    payload = {
        "tabs": state.config.canonical_tabs(),
        "disabled": {pid: [e.tab, e.row, e.column, _problem(e)] for pid, e in state.disabled.items()},
    }
    with engine.begin() as connection:
        connection.execute(sa.delete(mapping_last_good).where(mapping_last_good.c.slot == SLOT))
        connection.execute(sa.insert(mapping_last_good).values(
            slot=SLOT, content_hash=state.config.content_hash, source=source,
            state_json=json.dumps(payload, sort_keys=True, ensure_ascii=False)))


def load_last_good(engine: sa.Engine) -> tuple[MappingState, str] | None:
    """The saved mapping state and where it was read from, or None if none was ever saved."""
    with engine.connect() as connection:
        row = connection.execute(sa.select(mapping_last_good.c.state_json, mapping_last_good.c.source)
                                 .where(mapping_last_good.c.slot == SLOT)).first()
    if row is None:
        return None
    payload = json.loads(row.state_json)
    disabled = {pid: ConfigError(tab, number, column, problem)
                for pid, (tab, number, column, problem) in payload["disabled"].items()}
    return MappingState(parse_mapping(payload["tabs"]), disabled), str(row.source)
