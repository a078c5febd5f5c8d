"""How fast does Ivoris extraction go against a server that answers 504 under load? (issue "Benchmarks",
measure 3)

The Ivoris emulator (`bench` preset, one practice) answers 504 to every request above N in flight at
once (`FaultConfig.max_in_flight`) and sleeps a fixed latency per request, as the on-premise server
does. The real `IvorisClient` extracts the same window over HTTP the way the raw assets do
(`biss_pipeline/domain/ivoris/extraction.py`: appointments and document entries per chunk of `chunk_days`,
patients modified since the window's start, then the referenced patients by id per chunk), with the
client's concurrency at 1, N, 2N and at the pipeline's own setting (`IvorisResource` as
`biss_pipeline.definitions` builds it). Each run's records are compared with the emulator's
fault-free truth; throughput, requests, 504s, retries and peak in flight come from the client's and
the emulator's counters.

    .venv/bin/python -m bench.ivoris_extraction [--max-in-flight 4] [--latency 0.1] [--days 28]
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import platform
import sys
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from biss_emulators.ivoris import FaultConfig, IvorisEmulator
from biss_pipeline.domain.ivoris.client import IvorisClient, Record, iter_date_chunks
from biss_pipeline.domain.mapping.practices import load_practices
from biss_pipeline.domain.paths import PROJECT_ROOT
from biss_pipeline.resources import ivoris_resource

SIZE = "bench"
SEED = 7
SITE = "mb"


@dataclass(frozen=True)
class PipelineSetting:
    max_concurrency: int
    page_size: int
    chunk_days: int


def pipeline_setting(site: str) -> PipelineSetting:
    """The Ivoris resource the code location builds for the practice in the shipped mapping."""
    practice = next(p for p in load_practices(PROJECT_ROOT / "config" / "mapping.yaml")
                    if p.practice_id == site)
    resource = ivoris_resource(practice)
    return PipelineSetting(resource.max_concurrency, resource.page_size, resource.chunk_days)


# What one extraction delivered, as (call, chunk start, record id) keys: compared with the truth.
Keys = Counter[tuple[str, str, int]]


def _keys(call: str, chunk: dt.date | None, records: list[Record]) -> Keys:
    label = chunk.isoformat() if chunk else "-"
    return Counter((call, label, int(r["id"])) for r in records)


def _since(date_from: dt.date) -> dt.datetime:
    return dt.datetime.combine(date_from, dt.time(), tzinfo=dt.UTC)


def _modified_in_window(records: list[Record], date_to: dt.date) -> dict[int, Record]:
    """As raw_patients does: patients modified since the window's start, up to its last day."""
    return {int(r["id"]): r for r in records if str(r.get("modifiedAt", ""))[:10] <= date_to.isoformat()}


def extract(client: IvorisClient, date_from: dt.date, date_to: dt.date, chunk_days: int) -> Keys:
    """The raw assets' calls, in their order, without the warehouse (raw_patients reads the
    referenced patients from the appointments just extracted; here they come from memory)."""
    keys: Keys = Counter()
    chunks = list(iter_date_chunks(date_from, date_to, chunk_days))
    referenced: dict[dt.date, set[int]] = {}
    for first, last in chunks:  # raw_appointments
        appointments = client.appointments(first, last)
        keys += _keys("appointments", first, appointments)
        referenced[first] = {int(a["patientId"]) for a in appointments}
    modified_records = client.patients_modified_since(_since(date_from))  # raw_patients
    modified = _modified_in_window(modified_records, date_to)
    keys += _keys("patients_modified_since", None, list(modified.values()))
    for first, _last in chunks:
        missing = sorted(referenced[first] - set(modified))
        keys += _keys("patients_by_ids", first, client.patients_by_ids(missing) if missing else [])
    for first, last in chunks:  # raw_document_entries
        keys += _keys("document_entries", first, client.document_entries(first, last))
    return keys


def truth(emu: IvorisEmulator, date_from: dt.date, date_to: dt.date, chunk_days: int) -> Keys:
    """The same calls answered from the emulator's fault-free ground truth (no HTTP)."""
    keys: Keys = Counter()
    chunks = list(iter_date_chunks(date_from, date_to, chunk_days))
    referenced: dict[dt.date, set[int]] = {}
    for first, last in chunks:
        appointments = emu.truth.appointments(SITE, first, last)
        keys += _keys("appointments", first, appointments)
        referenced[first] = {int(a["patientId"]) for a in appointments}
    ids = emu.truth.patient_ids(SITE, _since(date_from))
    modified = _modified_in_window(emu.truth.patients(SITE, ids), date_to)
    keys += _keys("patients_modified_since", None, list(modified.values()))
    for first, _last in chunks:
        missing = sorted(referenced[first] - set(modified))
        keys += _keys("patients_by_ids", first, emu.truth.patients(SITE, missing))
    for first, last in chunks:
        keys += _keys("document_entries", first, emu.truth.document_entries(SITE, first, last))
    return keys


@dataclass
class Run:
    label: str
    concurrency: int
    seconds: float
    records: int
    matches_truth: bool
    client_requests: int
    retries: int
    emulator_requests: int
    gateway_504: int
    overload_504: int
    peak_in_flight: int
    failure: str = ""

    @property
    def rate_504(self) -> float:
        return self.gateway_504 / self.emulator_requests if self.emulator_requests else 0.0


def measure(emu: IvorisEmulator, label: str, concurrency: int, setting: PipelineSetting,
            date_from: dt.date, date_to: dt.date, expected: Keys, faults: FaultConfig) -> Run:
    emu.faults = faults
    emu.reset_stats()
    client = IvorisClient(site=SITE, base_url=emu.site_url(SITE), api_key=emu.api_key(SITE),
                          page_size=setting.page_size, max_concurrency=concurrency)
    failure = ""
    keys: Keys = Counter()
    began = time.perf_counter()
    try:
        with client:
            keys = extract(client, date_from, date_to, setting.chunk_days)
    except Exception as exc:  # a failed run is a result here, reported in the table
        failure = f"{type(exc).__name__}: {exc}"
    seconds = time.perf_counter() - began
    stats: dict[str, Any] = emu.stats()
    requests = stats["requests"]
    site_requests = sum(n for (route, _status), n in requests.items() if route.startswith("/sites/"))
    return Run(
        label=label, concurrency=concurrency, seconds=seconds, records=sum(keys.values()),
        matches_truth=not failure and keys == expected, client_requests=client.stats.requests,
        retries=client.stats.retries, emulator_requests=site_requests,
        gateway_504=sum(n for (route, status), n in requests.items()
                        if status == 504 and route.startswith("/sites/")),
        overload_504=int(stats["faults"].get("overload_504", 0)),
        peak_in_flight=int(stats["peak_in_flight_by_site"].get(SITE, 0)), failure=failure)


def concurrency_levels(n: int, pipeline: int) -> list[tuple[str, int]]:
    """(label, concurrency) for 1, N, 2N and the pipeline's setting, each level measured once."""
    labels: dict[int, list[str]] = {}
    for label, level in (("1", 1), ("N", n), ("2N", 2 * n), ("pipeline", pipeline)):
        labels.setdefault(level, []).append(label)
    return [(", ".join(name for name in names if name != str(level)), level)
            for level, names in sorted(labels.items())]


def row(label: str, value: str) -> str:
    return f"  {label:<50} {value}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-in-flight", type=int, default=4, metavar="N",
                        help="emulator answers 504 above N requests in flight per site (default 4)")
    parser.add_argument("--latency", type=float, default=0.1, metavar="S",
                        help="emulator latency per request in seconds (default 0.1)")
    parser.add_argument("--days", type=int, default=28,
                        help="window length in days, ending on the emulator clock's day (default 28)")
    args = parser.parse_args(argv)
    # Every 504 is retried and counted; the client's per-retry warnings would only drown the table.
    logging.getLogger("biss_pipeline.ivoris").setLevel(logging.ERROR)

    args_given = sys.argv[1:] if argv is None else argv
    command = " ".join([".venv/bin/python -m bench.ivoris_extraction", *args_given])
    print(f"# {command}")
    print(f"# machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")

    setting = pipeline_setting(SITE)
    n = args.max_in_flight
    levels = concurrency_levels(n, setting.max_concurrency)
    faults = FaultConfig(max_in_flight=n, latency_s=args.latency)
    runs: list[Run] = []
    with IvorisEmulator(seed=SEED, size=SIZE) as emu:
        date_to = emu.clock.date()
        date_from = date_to - dt.timedelta(days=args.days - 1)
        began = time.perf_counter()
        expected = truth(emu, date_from, date_to, setting.chunk_days)
        truth_seconds = time.perf_counter() - began
        # Untimed warm-up without faults: the emulator generates a day's data on first touch, and
        # every measured run should find the same (warm) caches.
        began = time.perf_counter()
        warm = measure(emu, "warm-up", setting.max_concurrency, setting, date_from, date_to, expected,
                       FaultConfig())
        warm_seconds = time.perf_counter() - began
        for label, level in levels:
            runs.append(measure(emu, label, level, setting, date_from, date_to, expected, faults))

    by_call = Counter(call for call, _chunk, _id in expected.elements())
    print()
    print(f"3. Ivoris extraction: IvorisClient over HTTP, emulator '{SIZE}' preset (seed {SEED}), "
          f"site {SITE}, in-process")
    print(row("window", f"{date_from} .. {date_to} ({args.days} days, chunks of {setting.chunk_days})"))
    print(row("emulator faults", f"504 above {n} in flight (max_in_flight={n}), "
                                 f"latency {args.latency:.3f} s per request, nothing else"))
    print(row("pipeline setting (IvorisResource from definitions)",
              f"max_concurrency={setting.max_concurrency}, page_size={setting.page_size}, "
              f"chunk_days={setting.chunk_days}"))
    print(row("truth: records (emulator ground truth, no HTTP)", f"{sum(by_call.values()):,}"))
    for call in ("appointments", "patients_modified_since", "patients_by_ids", "document_entries"):
        print(row(f"  {call}", f"{by_call[call]:,}"))
    print(row("truth computed in / warm-up run (untimed, no faults)",
              f"{truth_seconds:.1f} s / {warm_seconds:.1f} s, {warm.records:,} records, "
              f"{'ok' if warm.matches_truth else 'MISMATCH'}"))
    print()
    header = (f"  {'concurrency':<16} {'seconds':>8} {'records':>8} {'= truth':>8} {'records/s':>10} "
              f"{'requests':>9} {'req/s':>7} {'504s':>6} {'504 rate':>9} {'retries':>8} {'peak':>5}")
    print(header)
    for run in runs:
        name = f"{run.concurrency} ({run.label})" if run.label else str(run.concurrency)
        print(f"  {name:<16} {run.seconds:>8.1f} {run.records:>8,} "
              f"{'yes' if run.matches_truth else 'NO':>8} {run.records / run.seconds:>10,.0f} "
              f"{run.emulator_requests:>9,} {run.emulator_requests / run.seconds:>7.1f} "
              f"{run.gateway_504:>6,} {run.rate_504:>9.1%} {run.retries:>8,} {run.peak_in_flight:>5}")
    print("  (requests, 504s and peak in flight: the emulator's counters for the site; retries: the "
          "client's.")
    print("   records: what the client returned, after its dedupe; '= truth': the same ids per call and "
          "chunk.)")
    base = runs[0]
    print()
    for run in runs[1:]:
        print(row(f"speed-up concurrency {run.concurrency} vs {base.concurrency}",
                  f"{base.seconds / run.seconds:.2f}×"))
    ideal = base.emulator_requests * args.latency
    print(row("latency floor at concurrency 1 (requests × latency)", f"{ideal:.1f} s"))
    print("   note: 2 shared CPUs, and client and emulator share one Python process (GIL), so the")
    print("   figures are noisy and CPU-bound work does not overlap; only the emulator's latency does.")

    problems = [run for run in [warm, *runs] if not run.matches_truth]
    for run in problems:
        print(f"   PROBLEM: concurrency {run.concurrency} ({run.label}) returned {run.records:,} records, "
              f"truth {sum(expected.values()):,}{f'; {run.failure}' if run.failure else ''}")
    mismatched = [run for run in runs if run.client_requests != run.emulator_requests]
    for run in mismatched:
        print(f"   note: concurrency {run.concurrency}: client counted {run.client_requests} requests, "
              f"emulator {run.emulator_requests}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
