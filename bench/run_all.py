"""`make bench`: the five measures of the benchmark issue and the chain-scale one (issue 15), one
script each, then a summary table.

Each script runs in its own process (a fresh interpreter, so one measure's memory and threads do
not colour the next) and its whole output is shown; the summary picks the headline rows out of
those outputs. `--quick` uses smaller loads to check that everything runs (minutes, not an hour);
its figures are not the ones in docs/performance.md.

    .venv/bin/python -m bench.run_all [--quick]
"""

import argparse
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field

FULL = {
    "sync_throughput": ["--patients", "4000", "--baseline-records", "200"],
    "ivoris_extraction": [],
    "full_history": ["--days", "30", "90", "365"],
    "hourly_incremental": [],
    "chain_scale": [],
}
QUICK = {
    "sync_throughput": ["--patients", "500", "--baseline-records", "60"],
    "ivoris_extraction": [],
    "full_history": ["--days", "7", "30"],
    "hourly_incremental": [],
    "chain_scale": ["--quick"],
}


@dataclass
class Outcome:
    script: str
    arguments: list[str]
    exit_code: int = 0
    seconds: float = 0.0
    output: str = ""
    summary: list[tuple[str, str]] = field(default_factory=list)

    @property
    def command(self) -> str:
        return " ".join([".venv/bin/python -m", f"bench.{self.script}", *self.arguments])


def labelled(output: str, label: str) -> str:
    """The value printed after a labelled row (`  label   value`), or '?' when the row is missing."""
    for line in output.splitlines():
        if line.strip().startswith(label):
            return line.strip()[len(label):].strip()
    return "?"


def summarise(outcome: Outcome) -> list[tuple[str, str]]:
    out = outcome.output
    if outcome.script == "sync_throughput":
        return [
            ("1. sync records/s (share of 1,900/s bound)",
             f"{labelled(out, 'records/s')} ({labelled(out, 'achieved share of the bound')})"),
            ("1. record write calls / ideal", labelled(out, "record write calls / ideal")),
            ("1. pipeline vs. search-then-write baseline",
             labelled(out, "ratio pipeline / baseline (records/s)")),
            ("2. no-change re-sync: write calls", labelled(out, "write calls (must be 0)")),
        ]
    if outcome.script == "ivoris_extraction":
        rows = []
        for line in out.splitlines():
            match = re.match(r"\s+(\d+(?: \([^)]*\))?)\s+([\d.]+)\s+([\d,]+)\s+(yes|NO)\s+([\d,]+)\s+([\d,]+)"
                             r"\s+([\d.]+)\s+([\d,]+)\s+([\d.]+%)", line)
            if match:
                rows.append((f"3. Ivoris extraction, concurrency {match.group(1)}",
                             f"{match.group(5)} records/s, 504 rate {match.group(9)}"))
        return rows or [("3. Ivoris extraction", "?")]
    if outcome.script == "full_history":
        rows = []
        for line in out.splitlines():
            cells = line.split()
            if len(cells) >= 11 and cells[0].isdigit() and cells[1].replace(",", "").isdigit():
                rows.append((f"4. backfill {cells[0]} days, 3 practices",
                             f"{cells[1]} entries, {cells[3]} runs, {cells[4]} s, peak RSS {cells[6]} MB, "
                             f"{cells[7]} s/10k records ({cells[8]} of the shortest)"))
        return rows or [("4. full-history backfill", "?")]
    if outcome.script == "hourly_incremental":
        walls = [line.split()[-1] for line in out.splitlines() if "wall seconds" in line]
        calls = [line.split()[-3:] for line in out.splitlines()
                 if line.strip().startswith("HubSpot calls / write calls")]
        rows = []
        if walls and calls:
            rows.append(("5. hourly incremental, one day of changes",
                         f"{walls[0]} s, HubSpot {calls[0][0]} calls / {calls[0][2]} writes"))
        if len(walls) > 1 and len(calls) > 1:
            rows.append(("5. same tick again, nothing changed",
                         f"{walls[1]} s, HubSpot {calls[1][0]} calls / {calls[1][2]} writes"))
        return rows or [("5. hourly incremental", "?")]
    if outcome.script == "chain_scale":
        # its table rows: | figure | measured | target | ratio | method |
        rows = [(f"6. {cells[0].strip()}", f"{cells[1]} (target {cells[2]}; {cells[3]})")
                for cells in (line.strip().strip("|").split(" | ") for line in out.splitlines()
                              if line.startswith("| ") and not line.startswith("| figure"))
                if len(cells) >= 4]
        return rows or [("6. chain scale", "?")]
    return []


def run(script: str, arguments: list[str]) -> Outcome:
    outcome = Outcome(script, arguments)
    print(f"\n===== {outcome.command}", flush=True)
    started = time.monotonic()
    process = subprocess.Popen([sys.executable, "-m", f"bench.{script}", *arguments],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    assert process.stdout is not None
    for line in process.stdout:
        print(line, end="", flush=True)
        lines.append(line)
    outcome.exit_code = process.wait()
    outcome.seconds = time.monotonic() - started
    outcome.output = "".join(lines)
    outcome.summary = summarise(outcome)
    return outcome


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller loads; checks the scripts run")
    parser.add_argument("--only", nargs="+", choices=sorted(FULL), help="run only these scripts")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    outcomes = [run(script, arguments) for script, arguments in plan.items()
                if not args.only or script in args.only]

    print("\n===== summary")
    width = max(len(label) for o in outcomes for label, _ in o.summary) if outcomes else 40
    for outcome in outcomes:
        state = "ok" if outcome.exit_code == 0 else f"FAILED (exit {outcome.exit_code})"
        print(f"# {outcome.command}: {state}, {outcome.seconds:.0f} s")
        for label, value in outcome.summary:
            print(f"  {label:<{width}}  {value}")
    return 0 if all(o.exit_code == 0 for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
