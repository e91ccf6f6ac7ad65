"""`studio eval`: queue evaluations with the supervisor, follow them and print their reports."""

from __future__ import annotations

import json
import sys
import time

from engine.cli.common import EXIT_BLOCKING, EXIT_OK
from engine.evaluate import queue, results
from engine.evaluate.options import EvalOptions
from engine.jobs import supervisor


def eval_command(args) -> int:
    """Queue the evaluation of each run with the supervisor (it waits for a training run on the same device), follow
    them, print the reports. Ctrl-C cancels them."""
    jobs = []
    for run_id in args.run:
        options = EvalOptions(run_id=run_id, baseline=str(args.baseline), limit=args.limit,
                              max_new_tokens=args.max_new_tokens, batch_size=args.batch_size,
                              general=str(args.general.resolve()) if args.general else None,
                              json_schema=str(args.schema.resolve()) if args.schema else None,
                              allow_weak_sandbox=args.allow_weak_sandbox)
        jobs.append(queue.queue(options))
    shown: dict[int, str] = {}
    try:
        while True:
            supervisor.reconcile()
            jobs = [supervisor.get_run(j.id) for j in jobs]
            for job in jobs:
                state = queue.job_state(job)
                line = f"[{state['progress']:4.0%}] run {job.target_run_id}: {state['label']}"
                if line != shown.get(job.id) and not args.json:
                    print(line, file=sys.stderr, flush=True)
                    shown[job.id] = line
            if all(j.status not in supervisor.ACTIVE for j in jobs):
                break
            time.sleep(0.5)
    except KeyboardInterrupt:
        print("Cancelling the evaluations...", file=sys.stderr, flush=True)
        jobs = [supervisor.wait(supervisor.cancel(j.id).id, timeout=supervisor.grace_seconds() + 5) for j in jobs]
    failed = [j for j in jobs if j.status != "succeeded"]
    for job in failed:
        print(f"studio: the evaluation of run {job.target_run_id} {job.status}"
              + (f": {job.error_message}" if job.error_message else "."), file=sys.stderr)
    found = [results.load_report(supervisor.get_run(j.target_run_id), str(args.baseline)) for j in jobs
             if j.status == "succeeded" and j.target_run_id is not None]
    reports = [r for r in found if r is not None]
    if args.json:  # one run: its report; several: the list of reports
        print(json.dumps(reports[0] if len(args.run) == 1 and reports else reports, indent=2))
    else:
        print("\n\n".join(results.render(r) for r in reports))
    return EXIT_BLOCKING if failed else EXIT_OK
