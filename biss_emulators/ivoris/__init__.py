"""Ivoris API emulator: the chain's practice-software servers with synthetic, deterministic data.

    with IvorisEmulator(seed=7, size="tiny") as emu:
        httpx.get(f"{emu.site_url('mb')}/appointments", params={...},
                  headers={"X-Api-Key": emu.api_key("mb")})

See docs/ivoris-emulator.md for routes, formats, presets and fault knobs.
"""

from biss_emulators.ivoris.app import SiteInfo
from biss_emulators.ivoris.catalogue import APPOINTMENT_TYPES, ENTRY_TYPES, STATUSES, AppointmentType
from biss_emulators.ivoris.emulator import IvorisEmulator
from biss_emulators.ivoris.faults import FaultConfig, Injection
from biss_emulators.ivoris.sizes import DEFAULT_CLOCK, PRESETS, DatasetSize, resolve_size
from biss_emulators.ivoris.truth import Truth

__all__ = [
    "APPOINTMENT_TYPES",
    "DEFAULT_CLOCK",
    "ENTRY_TYPES",
    "PRESETS",
    "STATUSES",
    "AppointmentType",
    "DatasetSize",
    "FaultConfig",
    "Injection",
    "IvorisEmulator",
    "SiteInfo",
    "Truth",
    "resolve_size",
]
