"""Benchmark: 20 reviewer sessions submitting ratings at once while a training run is going.

Each simulated session is a thread with its own database connections, as Streamlit sessions are: it reads its item
(engine.review.campaigns.task, what the page shows) and submits a rating (engine.review.campaigns.submit, the upsert), 50 times.
Measured: the wall time of each submit, p50 / p95 / max, first with the machine idle, then while the demo model
trains in its own process (the budget: p95 <= 300 ms on this machine).

The campaign reviews a stored evaluation file written from the sample dataset (reference answers as the fine-tuned
model's, their first sentence as the base model's), so the benchmark does not spend minutes on generation first.

    .venv/bin/python bench/review_load.py
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REVIEWERS, PER_REVIEWER = 20, 50


def campaign(tag: str, run_id: int, admin, reviewers) -> int:
    from engine.review import campaigns

    return campaigns.create_campaign(admin, run_id, "rating", [r.id for r in reviewers], sample_size=PER_REVIEWER // 2,
                                  overlap=REVIEWERS, name=tag).id


def load(campaign_id: int, reviewers) -> list[float]:
    from engine.review import campaigns

    latencies: list[float] = []
    lock = threading.Lock()
    gate = threading.Barrier(len(reviewers))

    def session(reviewer, k: int) -> None:
        entries = campaigns.queue(reviewer, campaign_id)
        gate.wait()
        mine = []
        for i, e in enumerate(entries):
            campaigns.task(reviewer, e.assignment_id)
            began = time.perf_counter()
            campaigns.submit(reviewer, e.assignment_id, scores={c: 1 + (i + k) % 5 for c in campaigns.CRITERIA},
                          comment=f"note {i}")
            mine.append(time.perf_counter() - began)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=session, args=(r, k)) for k, r in enumerate(reviewers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies


def show(label: str, lat: list[float]) -> float:
    ms = np.array(lat) * 1000
    p95 = float(np.percentile(ms, 95))
    print(f"{label}: {len(ms)} submits, p50 {np.percentile(ms, 50):.1f} ms, p95 {p95:.1f} ms, max {ms.max():.1f} ms")
    return p95


def main() -> int:
    home = Path(os.environ.setdefault("STUDIO_HOME", tempfile.mkdtemp(prefix="studio-review-bench-")))
    from engine.data import demo_project, split, versions
    from engine.jobs import supervisor
    from engine.store import db, users, workspace
    from engine.store.tables import Run
    from engine.train import launcher

    ws = workspace.current()
    workspace.apply_library_env(ws)
    project = demo_project.ensure_demo()  # the sample dataset, its split and the demo model
    made = split.list_splits(versions.list_versions(project.id)[0].id)[0]
    from engine.data.loading import load_records

    convs = [r.messages for r in load_records(split.split_path(made, "test")).records if r.messages]
    folder = home / "runs" / "bench-reviewed" / "eval"
    folder.mkdir(parents=True, exist_ok=True)
    with folder.joinpath("outputs.jsonl").open("w", encoding="utf-8") as f:
        for i, c in enumerate(convs):
            ref = c[-1]["content"]
            f.write(json.dumps({"index": i, "prompt": c[:-1], "reference": ref,
                                "base": {"answer": ref.split(".")[0] + "."}, "finetuned": {"answer": ref}}) + "\n")
    with db.session() as s:
        run = Run(project_id=project.id, name="bench-reviewed", status="succeeded", run_dir="runs/bench-reviewed",
                  config={}, request_key="bench-reviewed", device="cpu", resume=False, attempts=1, step=1,
                  max_steps=1)
        s.add(run)
        s.flush()
        run_id = run.id
    admin = users.add_user("bench-admin", "admin", "bench-password")
    reviewers = [users.add_user(f"bench-rev-{i:02d}", "reviewer", "bench-password") for i in range(REVIEWERS)]

    idle = show("idle machine", load(campaign("idle", run_id, admin, reviewers), reviewers))

    config = launcher.config_for_split(made, str(ws.demo_model), name="bench-load", max_steps=100000,
                                       early_stopping=False, eval_steps=100000, save_steps=100000,
                                       wandb_mode="disabled")
    training = launcher.launch(config, project.id)
    deadline = time.monotonic() + 120
    while supervisor.get_run(training.id).step < 2:  # the trainer is past its start-up and busy on both cores
        supervisor.reconcile()
        if time.monotonic() > deadline:
            print("the training run did not start", supervisor.get_run(training.id).error_message)
            return 1
        time.sleep(0.5)
    try:
        busy = show(f"while training (run {training.id} at step {supervisor.get_run(training.id).step})",
                    load(campaign("busy", run_id, admin, reviewers), reviewers))
        supervisor.reconcile()
        print(f"training still running afterwards: {supervisor.get_run(training.id).status}")
    finally:
        supervisor.cancel(training.id)
        supervisor.wait(training.id, timeout=60)
    print(f"p95 under training {busy:.1f} ms (budget 300 ms); idle p95 {idle:.1f} ms; ratio {busy / idle:.2f}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    sys.exit(main())
