"""The augmentation job (kind "augment"): the method's tasks sent to the teacher concurrently under a cap, stopped at
the request and token budget, each task's result appended to results.jsonl (flushed and synced) the moment it
arrives, so a crash, a cancel or a lost connection loses nothing and a resumed job asks only for what is missing.
Then every candidate goes through the filters (engine.augment.filters); kept.jsonl holds those left for review.

    python -m engine.augment.job JOB_DIR [--resume]
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path

from engine.augment import filters, methods, teacher
from engine.augment import options as opts
from engine.jobs import runner
from engine.jobs.event_log import MetricsWriter
from engine.store import workspace

RESULTS, KEPT = "results.jsonl", "kept.jsonl"
GIVE_UP_AFTER = 5  # tasks failing in a row at the start: the teacher is down, not one request unlucky


def read_results(folder: Path) -> list[dict]:
    path = folder / RESULTS
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue  # a line cut by a crash mid-write: its task is asked again
    return out


class Ledger:
    """results.jsonl and the running totals, shared by the worker threads."""

    def __init__(self, folder: Path, budget_requests: int, budget_tokens: int):
        self.path = folder / RESULTS
        self.lock = threading.Lock()
        past = read_results(folder)
        self.done = {r["key"] for r in past if not r.get("error")}
        self.requests = sum(r.get("requests", 0) for r in past)
        self.tokens = sum(r.get("tokens", 0) for r in past)
        self.retries = sum(r.get("retries", 0) for r in past)
        self.errors = 0
        self.in_flight = 0  # requests of the tasks sent and not yet answered: held against the budget
        self.budget_requests, self.budget_tokens = budget_requests, budget_tokens

    def spent(self, more: int = 0) -> bool:
        return self.requests + self.in_flight + more > self.budget_requests or self.tokens >= self.budget_tokens

    def record(self, entry: dict) -> None:
        reserved = entry.pop("_reserved", 0)
        line = json.dumps(entry, ensure_ascii=False) + "\n"
        with self.lock, self.path.open("a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
            self.in_flight -= reserved
            self.requests += entry.get("requests", 0)
            self.tokens += entry.get("tokens", 0)
            self.retries += entry.get("retries", 0)
            if entry.get("error"):
                self.errors += 1
            else:
                self.done.add(entry["key"])


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    folder = Path(argv[0]).resolve()
    workspace.apply_library_env(workspace.current())

    def body(writer: MetricsWriter) -> dict:
        options = opts.AugmentOptions.model_validate_json((folder / "config.json").read_text(encoding="utf-8"))
        return run(options, folder, writer, stop)

    return runner.run(folder, "augment", body, resume="--resume" in argv,
                      own_errors=(teacher.TeacherError, opts.AugmentError))


def run(options: opts.AugmentOptions, folder: Path, writer: MetricsWriter, stop: threading.Event) -> dict:
    sources = opts.source_records(options)
    todo_all = methods.tasks(options.method, sources, options.per_record, options.count, options.seed)
    ledger = Ledger(folder, options.budget_requests, options.budget_tokens)
    todo = [t for t in todo_all if t.key not in ledger.done]
    api = teacher.client(options.teacher)
    key = teacher.api_key(options.teacher)

    def ask(messages, n):
        return teacher.chat(api, options.teacher, messages, n)

    def one(task: methods.Task, cost: int) -> dict:
        try:
            got = methods.run_task(task, sources, options, ask)
        except teacher.TeacherError as err:
            return {"key": task.key, "error": scrub(str(err), key), "requests": 1, "_reserved": cost}
        return {"key": task.key, "source": task.source, "examples": task.examples, "candidates": got.candidates,
                "rejected": got.rejected, "requests": got.requests, "tokens": got.tokens, "retries": got.retries,
                "_reserved": cost}

    started, finished, failures_in_a_row = time.monotonic(), 0, 0
    total = len(todo_all)
    with ThreadPoolExecutor(max_workers=options.teacher.concurrency) as pool:
        pending: set[Future] = set()
        queue = iter(todo)
        while True:
            cost = 2 if options.method == "backtranslate" else 1  # requests per task
            while not stop.is_set() and not ledger.spent(cost) and len(pending) < options.teacher.concurrency:
                task = next(queue, None)
                if task is None:
                    break
                ledger.in_flight += cost
                pending.add(pool.submit(one, task, cost))
            if not pending:
                break
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                entry = future.result()
                ledger.record(entry)
                finished += 1
                failures_in_a_row = failures_in_a_row + 1 if entry.get("error") else 0
                if failures_in_a_row >= GIVE_UP_AFTER and len(ledger.done) == 0:
                    stop.set()
                    raise teacher.TeacherError(entry["error"])
            rate = finished / max(time.monotonic() - started, 1e-6)
            left = (total - len(ledger.done)) / rate if rate else None
            writer.write("progress", step=len(ledger.done), max_steps=total, requests=ledger.requests,
                         tokens=ledger.tokens, retries=ledger.retries, eta_seconds=left,
                         label=progress_label(options, ledger, total, left))
    return _finish(options, sources, folder, ledger, total, stop)


def progress_label(options: opts.AugmentOptions, ledger: Ledger, total: int, left: float | None) -> str:
    cost = ledger.tokens * options.price_per_million_tokens / 1e6
    return (f"{len(ledger.done):,} of {total:,} tasks answered, {ledger.requests:,} requests, {ledger.tokens:,} tokens"
            + (f" (about {cost:,.2f} in the teacher's currency)" if options.price_per_million_tokens else "")
            + (f", about {left / 60:,.0f} min left" if left and left >= 90 else
               f", about {left:,.0f} s left" if left else ""))


def _finish(options: opts.AugmentOptions, sources, folder: Path, ledger: Ledger, total: int,
            stop: threading.Event) -> dict:
    """The filters over every candidate so far, kept.jsonl, and the job's summary."""
    kept, dropped = filters.filter_results(options, sources, read_results(folder))
    with (folder / KEPT).open("w", encoding="utf-8") as f:
        for row in kept:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    results = read_results(folder)
    summary = {"tasks": total, "answered": len(ledger.done), "requests": ledger.requests, "tokens": ledger.tokens,
               "retries": ledger.retries, "errors": sum(1 for r in results if r.get("error")),
               "rejected": sum(r.get("rejected", 0) for r in results), "candidates": len(kept) + sum(dropped.values()),
               "kept": len(kept), "dropped": dict(dropped),
               "budget_reached": ledger.requests >= options.budget_requests or ledger.tokens >= options.budget_tokens,
               "stopped": stop.is_set()}
    return {"outcome": "cancelled" if stop.is_set() else "succeeded", "step": len(ledger.done),
            "max_steps": total, **summary}


def scrub(text: str, key: str) -> str:
    """An error sentence without the API key, whatever the server echoed back."""
    return text.replace(key, "[key]") if key and key != "none" and len(key) >= 4 else text


if __name__ == "__main__":
    sys.exit(main())
