"""Benchmark: augmentation.

1. Requests: --requests synthetic tasks (one request each) through the augmentation job against a local fake
   OpenAI-compatible endpoint answering in --latency seconds, --concurrency at once: the job's request phase (first
   to last answer) and its whole wall time (launch to end, filters included) against the floor requests x latency /
   concurrency (budget: within 1.3x).
2. Filters: --candidates paraphrase-like candidates filtered against --records training records (exact and near
   duplicates, test and validation copies, PII, language...) against the quality scan's own near-duplicate pass
   (MinHash clusters) over the same records, measured in the same run (budget: within 2x).

    .venv/bin/python bench/augment.py [--requests 1000] [--latency 0.2] [--concurrency 16]
                                      [--records 100000] [--candidates 10000]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def requests_phase(n: int, latency: float, concurrency: int) -> None:
    from fake_teacher import FakeTeacher

    from engine.augment import options
    from engine.data import demo_project, split
    from engine.jobs import event_log, supervisor
    from engine.store import users

    project = demo_project.ensure_demo(build_model=False)
    made = split.splits_of_project(project.id)[0]
    with FakeTeacher(delay=latency) as fake:
        opts = options.build(version_id=made.dataset_version_id, split_id=made.id, method="synthetic",
                             topic="home furniture orders", count=n, budget_requests=n,
                             teacher={"base_url": fake.url, "model": "bench", "concurrency": concurrency})
        started = time.monotonic()
        job = options.launch(users.SYSTEM, opts, project.id)
        job = supervisor.wait(job.id, timeout=3600, poll=0.2)
        wall = time.monotonic() - started
    events = event_log.read_events(supervisor.run_path(job))
    progress = [e for e in events if e["event"] == "progress"]
    final = event_log.final_event(events) or {}
    phase = progress[-1]["time"] - progress[0]["time"] + latency if progress else float("nan")
    floor = n * latency / concurrency
    print(json.dumps({"part": "requests", "status": job.status, "requests": final.get("requests"),
                      "kept": final.get("kept"), "floor_s": round(floor, 2), "request_phase_s": round(phase, 2),
                      "wall_s": round(wall, 2), "ratio_phase": round(phase / floor, 3),
                      "ratio_wall": round(wall / floor, 3), "budget": 1.3}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--candidates", type=int, default=10_000)
    parser.add_argument("--skip-requests", action="store_true")
    args = parser.parse_args()
    os.environ["STUDIO_HOME"] = tempfile.mkdtemp(prefix="studio-augment-bench-") + "/workspace"
    if not args.skip_requests:
        requests_phase(args.requests, args.latency, args.concurrency)
    filter_bench(args.records, args.candidates)


def filter_bench(n_records: int, n_candidates: int) -> None:
    from engine.augment import filters, options
    from engine.data import split, versions
    from engine.data.checks import duplicates
    from engine.data.loading import load_records
    from engine.data.quality import usable
    from engine.demo import sample
    from engine.store import projects

    rng = random.Random(5)
    rows = [sample.conversation(rng) for _ in range(n_records)]
    folder = Path(os.environ["STUDIO_HOME"]).parent
    data = folder / "big.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    project = projects.create_project("augment bench")
    version = versions.import_file(project.id, data, "big.jsonl")
    made = split.create_split(version)
    sources = usable(load_records(split.split_path(made, "train")).records)
    opts = options.build(version_id=version.id, split_id=made.id, method="paraphrase", per_record=1,
                         teacher={"base_url": "http://127.0.0.1:9/v1", "model": "bench"})
    results = []
    for k in range(n_candidates):
        i = rng.randrange(len(sources))
        turns = [dict(m) for m in sources[i].turns]
        words = turns[-2]["content"].split()
        rng.shuffle(words)
        turns[-2]["content"] = " ".join(words)
        results.append({"key": f"paraphrase:{k}", "source": i, "candidates": [turns], "requests": 1})
    started = time.monotonic()
    kept, dropped = filters.filter_results(opts, sources, results)
    filtering = time.monotonic() - started
    everything = usable(load_records(versions.path_of(version)).records)
    started = time.monotonic()
    duplicates.near_clusters(everything)
    scan = time.monotonic() - started
    print(json.dumps({"part": "filters", "records": len(everything), "train_records": len(sources),
                      "candidates": n_candidates, "kept": len(kept), "dropped": dict(dropped),
                      "filter_s": round(filtering, 2), "quality_near_duplicate_pass_s": round(scan, 2),
                      "ratio": round(filtering / scan, 3), "budget": 2.0}), flush=True)


if __name__ == "__main__":
    main()
