"""The Python handle tests and the demo use: start/stop the emulator, inspect and reset its portal."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from biss_emulators.hubspot.app import RequestRecord, Runtime, build_app
from biss_emulators.hubspot.faults import Faults
from biss_emulators.hubspot.limits import RateLimiter, RateLimits
from biss_emulators.hubspot.portal import PortalConfig
from biss_emulators.hubspot.state import BATCH_CONFLICT_MODES, HubSpotState
from biss_emulators.server import BackgroundServer


class HubSpotEmulator:
    """A HubSpot portal on 127.0.0.1 that `hubspot-api-client` cannot tell from the real one.

    >>> with HubSpotEmulator(token="t", search_index_delay_s=0.5) as emu:
    ...     client = HubSpot(access_token="t", host=emu.base_url)
    """

    def __init__(
        self,
        token: str | None = "test-token",
        tier: str = "professional",
        search_index_delay_s: float = 2.0,
        faults: Faults | dict[str, Any] | None = None,
        state_path: str | os.PathLike[str] | None = None,
        rate_limits: RateLimits | dict[str, Any] | None = None,
        portal: PortalConfig | dict[str, Any] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        allow_non_loopback: bool = False,
    ) -> None:
        self.tier = tier
        self.state = HubSpotState(search_index_delay_s, PortalConfig.of(portal))
        self.faults = faults if isinstance(faults, Faults) else Faults(**(faults or {}))
        self.state_path = Path(state_path) if state_path is not None else None
        self._runtime = Runtime(
            state=self.state,
            limiter=RateLimiter(RateLimits.for_tier(tier, rate_limits)),
            faults=self.faults,
            token=token,
            on_save=self.save if self.state_path is not None else None,
        )
        if self.state_path is not None and self.state_path.exists():
            self.load()
        self.app = build_app(self._runtime)
        self._server = BackgroundServer(self.app, host, port, allow_non_loopback)

    # ------------------------------------------------------------------ configuration

    @property
    def token(self) -> str | None:
        return self._runtime.token

    @token.setter
    def token(self, value: str | None) -> None:
        self._runtime.token = value

    @property
    def rate_limits(self) -> RateLimits:
        return self._runtime.limiter.limits

    @rate_limits.setter
    def rate_limits(self, value: RateLimits | dict[str, Any]) -> None:
        self._runtime.limiter.limits = RateLimits.for_tier(self.tier, value)
        self._runtime.limiter.reset()

    @property
    def portal(self) -> PortalConfig:
        """The portal's setup and strictness switches (`biss_emulators.hubspot.portal.PortalConfig`)."""
        return self.state.portal

    @portal.setter
    def portal(self, value: PortalConfig | dict[str, Any]) -> None:
        """A different portal: takes effect as a fresh portal (objects and log are cleared)."""
        self.state.portal = PortalConfig.of(value)
        self.reset()

    @property
    def search_index_delay_s(self) -> float:
        return self.state.search_index_delay_s

    @search_index_delay_s.setter
    def search_index_delay_s(self, value: float) -> None:
        self.state.search_index_delay_s = value

    @property
    def batch_conflicts(self) -> str:
        """ "reject_batch" (default): a unique-value conflict in a batch write fails the whole batch
        with 409; "per_input": the conflicting inputs become 207 errors and the rest commits."""
        return self.state.batch_conflicts

    @batch_conflicts.setter
    def batch_conflicts(self, value: str) -> None:
        if value not in BATCH_CONFLICT_MODES:
            raise ValueError(f"batch_conflicts must be one of {BATCH_CONFLICT_MODES}")
        self.state.batch_conflicts = value

    # ------------------------------------------------------------------ server

    @property
    def base_url(self) -> str:
        return self._server.base_url

    @property
    def port(self) -> int:
        return self._server.port

    @property
    def running(self) -> bool:
        return self._server.running

    def start(self) -> HubSpotEmulator:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()
        if self.state_path is not None:
            self.save()

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def __enter__(self) -> HubSpotEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ inspection

    @property
    def request_log(self) -> list[RequestRecord]:
        return self._runtime.request_log

    def requests(self, *, method: str | None = None, path_contains: str | None = None) -> list[RequestRecord]:
        with self._runtime.log_lock:
            entries = list(self._runtime.request_log)
        return [
            e
            for e in entries
            if (method is None or e.method == method) and (path_contains is None or path_contains in e.path)
        ]

    def objects(self, object_type: str) -> list[dict[str, Any]]:
        """Current (not archived) objects of a type, by name ("deals") or type id ("0-3")."""
        return self.state.live_objects(object_type)

    def associations(self, from_type: str, to_type: str) -> list[tuple[str, str, int]]:
        """(from id, to id, association type id) in that direction."""
        return self.state.association_pairs(from_type, to_type)

    def flush_search_index(self) -> None:
        """Let search see every write made so far, without waiting for the indexing delay."""
        self.state.flush_search_index()

    # ------------------------------------------------------------------ state

    def reset(self) -> None:
        """Back to a fresh portal: no objects, default properties and pipeline, empty log,
        rate-limit windows cleared. Fault settings stay as they are."""
        self.state.reset()
        self._runtime.limiter.reset()
        with self._runtime.log_lock:
            self._runtime.request_log.clear()

    def save(self, path: str | os.PathLike[str] | None = None) -> Path:
        target = Path(path) if path is not None else self.state_path
        if target is None:
            raise ValueError("no state_path configured and no path given")
        target.parent.mkdir(parents=True, exist_ok=True)
        data = self.state.to_dict()
        # write then rename, so a crash mid-save never leaves a truncated portal behind
        fd, tmp = tempfile.mkstemp(prefix=".hubspot-state-", dir=target.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(data, fh)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self._runtime.writes_since_save = 0
        return target

    def load(self, path: str | os.PathLike[str] | None = None) -> None:
        source = Path(path) if path is not None else self.state_path
        if source is None:
            raise ValueError("no state_path configured and no path given")
        self.state.load_dict(json.loads(source.read_text(encoding="utf-8")))

    @property
    def unsaved_writes(self) -> int:
        return self._runtime.writes_since_save
