"""Queue the evaluation of a run as the hand-over after it succeeds (the demo's SmolLM2 run evaluates itself this
way, with nobody watching).

    python -m engine.evaluate.queue_job RUN_ID [--limit N] [--max-new-tokens N]
"""

from __future__ import annotations

import argparse
import sys

from engine.evaluate import queue
from engine.evaluate.options import EvalOptions
from engine.store import workspace


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.evaluate.queue_job")
    parser.add_argument("run", type=int)
    parser.add_argument("--limit", type=int)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    args = parser.parse_args(argv)
    workspace.apply_library_env(workspace.current())
    job = queue.queue(EvalOptions.model_validate({"run_id": args.run, "limit": args.limit,
                                                  "max_new_tokens": args.max_new_tokens}))
    print(f"Queued evaluation job {job.id} of run {args.run}.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
