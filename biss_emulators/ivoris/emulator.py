"""`IvorisEmulator`: the chain's Ivoris servers in one process, for tests, the demo and benchmarks."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from biss_emulators.ivoris._util import datetime_of, epoch_of
from biss_emulators.ivoris.app import IvorisService, Outage, SiteInfo
from biss_emulators.ivoris.catalogue import SITE_DEFINITIONS
from biss_emulators.ivoris.dataset import Dataset
from biss_emulators.ivoris.faults import FaultConfig, Injection, Rewrite
from biss_emulators.ivoris.sizes import DatasetSize, resolve_size
from biss_emulators.ivoris.truth import Truth
from biss_emulators.server import BackgroundServer

OUTAGE_MODES = ("503", "refuse")


def _parallel(action: Callable[[BackgroundServer], Any], servers: Iterable[BackgroundServer]) -> None:
    """Start/stop servers concurrently: uvicorn needs ~0.1-0.2 s per shutdown."""
    threads = [threading.Thread(target=action, args=(server,)) for server in servers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


class IvorisEmulator:
    """Every practice's Ivoris server, served in-process on loopback.

    All sites answer under `/sites/{site_id}` on `base_url`. With `site_ports=True` (the
    default) each site additionally gets its own port, and `site_url()` points there: the
    real chain has one server per practice, and only a port of its own can refuse
    connections for one practice while the others keep answering.
    """

    def __init__(self, seed: int = 7, size: str | DatasetSize = "tiny", clock: dt.datetime | None = None,
                 faults: FaultConfig | None = None, api_keys: dict[str, str] | None = None,
                 host: str = "127.0.0.1", port: int | None = None, site_ports: bool = True,
                 allow_non_loopback: bool = False) -> None:
        self.seed = seed
        self.size = resolve_size(size)
        self.dataset = Dataset(seed, self.size)
        keys = dict(api_keys or {})
        definitions = SITE_DEFINITIONS[: self.size.sites]
        unknown = set(keys) - {d.site_id for d in definitions}
        if unknown:
            raise ValueError(f"api_keys for unknown sites: {sorted(unknown)}")
        self.sites: list[SiteInfo] = [
            SiteInfo(d.site_id, d.practice_id, d.name, d.key_prefix,
                     keys.get(d.site_id, f"dev-key-{d.site_id}"))
            for d in definitions
        ]
        start_clock = epoch_of(clock if clock is not None else self.size.default_clock)
        faults = faults or FaultConfig()
        self._check_lie_sites(faults)
        self._service = IvorisService(self.dataset, self.sites, faults, start_clock, seed)
        self._main = BackgroundServer(self._service.app, host, port, allow_non_loopback)
        self._site_servers: dict[str, BackgroundServer] = (
            {site.site_id: BackgroundServer(self._service.app, host, None, allow_non_loopback)
             for site in self.sites} if site_ports else {})
        self._lock = threading.RLock()
        self._running = False
        self._timers: list[threading.Timer] = []
        self._outage_token = 0
        self.truth = Truth(self.dataset, lambda: self._service.clock, lambda: self._service.faults)

    # -- lifecycle --------------------------------------------------------------------------------

    def _servers(self, site_id: str | None = None) -> list[BackgroundServer]:
        if site_id is None:
            return [self._main, *self._site_servers.values()]
        return [self._site_servers[site_id]]

    def start(self) -> IvorisEmulator:
        with self._lock:
            self._running = True
            closed = self._refused_servers()
            _parallel(lambda server: server.start(), [s for s in self._servers() if s not in closed])
        return self

    def stop(self) -> None:
        with self._lock:
            self._running = False
            self._cancel_timers()
            _parallel(lambda server: server.stop(), self._servers())

    def serve_forever(self) -> None:
        """Foreground mode for the CLI: serves on `base_url` until interrupted."""
        self._running = True
        self._main.serve_forever()

    def __enter__(self) -> IvorisEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return self._main.base_url

    def site(self, site_id: str) -> SiteInfo:
        for site in self.sites:
            if site.site_id == site_id:
                return site
        raise KeyError(f"unknown site {site_id!r}; sites are {[s.site_id for s in self.sites]}")

    def site_url(self, site_id: str) -> str:
        self.site(site_id)
        server = self._site_servers.get(site_id, self._main)
        return f"{server.base_url}/sites/{site_id}"

    def api_key(self, site_id: str) -> str:
        return self.site(site_id).api_key

    # -- faults and outages ----------------------------------------------------------------------

    @property
    def faults(self) -> FaultConfig:
        return self._service.faults

    @faults.setter
    def faults(self, value: FaultConfig) -> None:
        value.validate()
        self._check_lie_sites(value)
        self._service.faults = value
        self._service.reset_fault_rng()  # a new config starts its 504 sequence afresh

    def _check_lie_sites(self, faults: FaultConfig) -> None:
        # a misspelt site would silently switch the lies off, and the test would pass for nothing
        unknown = set(faults.lie_sites or ()) - {site.site_id for site in self.sites}
        if unknown:
            raise ValueError(f"lie_sites has unknown sites {sorted(unknown)}")

    def set_outage(self, site_id: str | None = None, mode: str = "503", seconds: float | None = None) -> None:
        """Take one site (or, with None, the whole emulator) down.

        "503": the gateway answers 503. "refuse": the port closes, connections are refused;
        through the shared `base_url` a refused site answers 503 instead. With `seconds` the
        outage ends by itself after that much wall-clock time.
        """
        if mode not in OUTAGE_MODES:
            raise ValueError(f"mode must be one of {OUTAGE_MODES}")
        if site_id is not None:
            self.site(site_id)
            if mode == "refuse" and not self._site_servers:
                raise ValueError("a single site can only refuse connections with site_ports=True")
        if seconds is not None and seconds <= 0:
            raise ValueError("seconds must be positive")
        with self._lock:
            self._outage_token += 1
            token = self._outage_token
            until = time.monotonic() + seconds if seconds is not None else None
            self._service.outages[site_id] = Outage(mode, until, token)
            if mode == "refuse":
                _parallel(lambda server: server.stop(), self._servers(site_id))
                if seconds is not None:
                    timer = threading.Timer(seconds, self._end_refuse, args=(site_id, token))
                    timer.daemon = True
                    self._timers.append(timer)
                    timer.start()

    def _end_refuse(self, site_id: str | None, token: int) -> None:
        with self._lock:
            outage = self._service.outages.get(site_id)
            if outage is None or outage.token != token:
                return  # cleared or replaced meanwhile
            del self._service.outages[site_id]
            self._reopen()

    def _refused_servers(self) -> set[BackgroundServer]:
        closed: set[BackgroundServer] = set()
        now = time.monotonic()
        for site_id, outage in self._service.outages.items():
            if outage.mode == "refuse" and outage.active(now):
                closed.update(self._servers(site_id))
        return closed

    def _reopen(self) -> None:
        if not self._running:
            return
        closed = self._refused_servers()
        _parallel(lambda server: server.start(),
                  [s for s in self._servers() if s not in closed and not s.running])

    def clear_outage(self, site_id: str | None = None) -> None:
        """End outages: all of them with None, else only that site's."""
        with self._lock:
            if site_id is None:
                self._service.outages.clear()
                self._cancel_timers()
            else:
                self.site(site_id)
                self._service.outages.pop(site_id, None)
            self._reopen()

    def _cancel_timers(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()

    # -- malformed answers ------------------------------------------------------------------------

    def inject_response(self, route: str, *, site_id: str | None = None, status: int = 200,
                        body: bytes | str = b"", content_type: str | None = "application/json",
                        headers: dict[str, str] | None = None, params: dict[str, str] | None = None,
                        times: int | None = 1) -> Injection:
        """Answer the next `times` matching requests with exactly this (after auth, outages and the
        other faults): any status, body bytes, Content-Type ("" for none) and extra headers (a
        `Content-Length` or `Content-Encoding` given here is sent as is, even when it lies).

        `route` is a site route template ("/appointments", "/patients",
        "/patients/{patient_id}/document-entries", ...) or "*"; `params` narrows it to requests
        whose query has these values (e.g. `{"from": "2026-06-29", "page": "2"}`).
        """
        raw = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
        return self._service.add_injection(Injection(
            route=route, site_id=site_id, params=dict(params or {}), times=times, status=status,
            body=raw, content_type=content_type, headers=dict(headers or {})))

    def rewrite_response(self, route: str, rewrite: Rewrite, *, site_id: str | None = None,
                         params: dict[str, str] | None = None, times: int | None = None,
                         status: int | None = None, content_type: str | None = None) -> Injection:
        """Serve the normal answer transformed by `rewrite(answer, query) -> new answer`: `answer` is
        the decoded JSON (a page `{items, page, pageSize, total}` or a plain list; amounts are
        `Decimal`); return a JSON value (sent with non-ASCII escaped, so lone surrogates arrive as
        `\\ud800`), `bytes`/`str` to send verbatim, or None after editing `answer` in place.
        Matching as in `inject_response`; by default every matching request, until cleared.
        """
        return self._service.add_injection(Injection(
            route=route, site_id=site_id, params=dict(params or {}), times=times, status=status,
            rewrite=rewrite, content_type=content_type))

    def clear_injections(self) -> None:
        """Drop every `inject_response` / `rewrite_response` rule still active."""
        self._service.clear_injections()

    # -- clock --------------------------------------------------------------------------------------

    @property
    def clock(self) -> dt.datetime:
        return datetime_of(self._service.clock)

    def set_clock(self, value: dt.datetime) -> None:
        self._service.clock = epoch_of(value)

    def advance_clock(self, delta: dt.timedelta) -> dt.datetime:
        with self._lock:
            self._service.clock = self._service.clock + int(delta.total_seconds())
        return self.clock

    # -- counters ------------------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """{"requests": {(route_template, status): n}, "peak_in_flight", "in_flight", "faults", ...}."""
        return self._service.stats.snapshot()

    def reset_stats(self) -> None:
        self._service.stats.reset()
