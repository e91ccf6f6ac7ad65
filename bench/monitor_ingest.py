"""Benchmark: 1,000,000 production log rows (CSV, the demo shop's simulated traffic) imported and reported, against
reading the same file with pyarrow alone (the floor: the fastest of five warm reads), each in its own process so each
peak memory is its own; the studio's figure is the median of five runs, each into an empty project (this machine is a
shared virtual machine: single runs vary by up to 2x).

Import: read, validate, mask personal data and secrets, hash and de-duplicate, write the day partitions. Report: the
registered version's figures over its last 7 days, its guardrail and satisfaction checks, drift on three features
(against the version's drift reference, which the first import of its logs fits and keeps: the first of the five runs
pays that once, the median is the steady state). On both sides the library that reads the file (pyarrow.csv,
polars) is imported before the clock starts.
Prints rows/s, peak memory, and the ratio of (import + report) to the floor (budget: at most 3x, peak under 2 GB).

    .venv/bin/python bench/monitor_ingest.py [--rows 1000000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def peak_mb() -> float:
    """This process's peak resident memory (VmHWM: getrusage's maxrss survives exec, so a child would report its
    parent's peak)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def floor(path: Path) -> dict:
    import pyarrow.csv as pcsv

    began = time.perf_counter()
    table = pcsv.read_csv(path)
    return {"seconds": time.perf_counter() - began, "rows": table.num_rows, "peak_mb": peak_mb()}


def bare(path: Path) -> dict:
    """The least any import must do, for scale: read the file with Polars, one scan of the combined masking pattern over
    both text columns, write it back as one Parquet file (no typing, times, hashing, de-duplication or report)."""
    import polars as pl

    from engine.monitor import masking

    began = time.perf_counter()
    frame = pl.read_csv(path, infer_schema=False)
    frame.select(pl.col("request").str.contains(masking.ANY), pl.col("response").str.contains(masking.ANY))
    with tempfile.TemporaryDirectory() as folder:
        frame.write_parquet(Path(folder) / "bare.parquet", compression="zstd", compression_level=1)
    return {"seconds": time.perf_counter() - began}


def studio(path: Path, project_id: int, label: str) -> dict:
    import polars  # noqa: F401 - the log engine imported before the clock starts, as pyarrow.csv is for the floor

    from engine.monitor import ingest, report

    began = time.perf_counter()
    result = ingest.import_log(project_id, path)
    imported = time.perf_counter() - began
    found = report.report(project_id, label)
    return {"seconds": time.perf_counter() - began, "import_seconds": imported, "rows": result.stored,
            "peak_mb": peak_mb(), "drift": found["drift"]["distribution_drift"], "requests": found["requests"]}


def setup(home: Path, rows: int) -> tuple[Path, int, str]:
    """A workspace with the demo project, a short run registered (its training split is the drift reference) and the
    log file."""
    from engine.data import demo_project, split, versions
    from engine.demo import traffic
    from engine.jobs import supervisor
    from engine.models import lifecycle
    from engine.store import users
    from engine.train import launcher

    project = demo_project.ensure_demo()
    made = split.list_splits(versions.list_versions(project.id)[0].id)[0]
    from engine.store import workspace

    config = launcher.config_for_split(made, str(workspace.current().demo_model), name="bench", max_steps=2)
    run = supervisor.wait(launcher.launch(config, project.id).id, timeout=600)
    version = lifecycle.register(users.SYSTEM, run.id)
    path = home / "production.csv"
    traffic.write_csv(path, traffic.rows(rows, model=version.label, days=30, shift_from=20, seed=3))
    return path, project.id, version.label


def fresh_projects(n: int) -> list[int]:
    """Empty projects to import the log into, one per timed run (a file imported twice into one is skipped)."""
    from engine.store import projects

    return [projects.create_project(f"monitor bench {i} {time.time_ns()}").id for i in range(n)]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--mode", choices=["all", "floor", "bare", "studio"], default="all")
    parser.add_argument("--path", type=Path)
    parser.add_argument("--project", type=int)
    parser.add_argument("--label")
    args = parser.parse_args()
    if args.mode == "floor":
        print(json.dumps(floor(args.path)))
        return 0
    if args.mode == "bare":
        print(json.dumps(bare(args.path)))
        return 0
    if args.mode == "studio":
        print(json.dumps(studio(args.path, args.project, args.label)))
        return 0
    home = Path(os.environ.setdefault("STUDIO_HOME", tempfile.mkdtemp(prefix="studio-monitor-bench-")))
    began = time.perf_counter()
    path, project_id, label = setup(home, args.rows)
    print(f"set-up (demo, a short run, {args.rows:,} rows written: {path.stat().st_size / 1e6:.0f} MB): "
          f"{time.perf_counter() - began:.0f} s", flush=True)

    def child(*extra: str) -> dict:
        out = subprocess.run([sys.executable, __file__, "--path", str(path), *extra], capture_output=True, text=True,
                             env=os.environ, check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])

    with path.open("rb") as f:  # into the page cache first: the floor and the studio both read a warm file
        while f.read(1 << 24):
            pass
    floors = sorted((child("--mode", "floor") for _ in range(5)), key=lambda r: r["seconds"])
    base = floors[0]  # the fastest of five warm reads: the strictest floor (one read in five or so is 2-4x slower here)
    runs = [child("--mode", "studio", "--project", str(pid), "--label", label) for pid in fresh_projects(5)]
    mine = sorted(runs, key=lambda r: r["seconds"])[2]  # the median of five imports, each into an empty project
    print(f"pyarrow read (floor, fastest of 5): {base['seconds']:.2f} s (all five: "
          f"{', '.join(format(r['seconds'], '.2f') for r in floors)}), {base['rows'] / base['seconds']:,.0f} rows/s, "
          f"peak {base['peak_mb']:.0f} MB")
    print(f"studio (median of 5; import + report of each, in order, the first fitting the drift reference: "
          f"{', '.join(format(r['seconds'], '.2f') for r in runs)}): "
          f"import {mine['import_seconds']:.2f} s ({mine['rows'] / mine['import_seconds']:,.0f} rows/s); "
          f"import + report {mine['seconds']:.2f} s; peak {mine['peak_mb']:.0f} MB; report window "
          f"{mine['requests']:,} requests, drift {mine['drift']:.3f}")
    least = sorted((child("--mode", "bare") for _ in range(3)), key=lambda r: r["seconds"])[1]
    print(f"import alone: {mine['import_seconds'] / base['seconds']:.2f}x the floor; for scale, Polars read + one "
          f"masking scan + Parquet write and nothing else (median of 3): {least['seconds']:.2f} s, "
          f"{least['seconds'] / base['seconds']:.2f}x")
    print(f"ratio to the floor: {mine['seconds'] / base['seconds']:.2f}x (budget 3x); peak memory "
          f"{max(r['peak_mb'] for r in runs) / 1024:.2f} GB (budget 2 GB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
