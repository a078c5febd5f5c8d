"""HubSpot CRM API emulator: the paths, bodies, status codes and headers `hubspot-api-client` 12 uses,
with HubSpot's rate limits, eventual search consistency and injectable faults. See
docs/hubspot-emulator.md."""

from biss_emulators.hubspot.app import RequestRecord
from biss_emulators.hubspot.emulator import HubSpotEmulator
from biss_emulators.hubspot.faults import Faults
from biss_emulators.hubspot.limits import RateLimits
from biss_emulators.hubspot.state import HubSpotState

__all__ = ["Faults", "HubSpotEmulator", "HubSpotState", "RateLimits", "RequestRecord"]
