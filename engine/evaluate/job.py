"""An evaluation as a supervised job: queued and started by engine.jobs.supervisor like a training run (one job per device),
so an evaluation never competes with a training run for the same GPU.

    python -m engine.evaluate.job JOB_DIR

JOB_DIR holds config.json (EvalOptions); the job writes metrics.jsonl events (start, progress with step = percent
done, final with the outcome) and train.log, which the supervisor reads exactly as it reads a trainer's. SIGTERM
(cancel) stops it at once: nothing is saved, the previous report of the run stays as it was. A cancel during
start-up (imports, opening the event log) is kept and acted on as the work begins (engine.jobs.stop_signal).
"""

from __future__ import annotations

from engine.jobs.stop_signal import Deferred


class Cancelled(BaseException):
    """Raised for SIGTERM (BaseException: no `except Exception` on the way swallows it)."""


CANCEL = Deferred(Cancelled)
if __name__ == "__main__":
    CANCEL.install()  # before the heavy imports: a cancel during start-up is kept, not lost or fatal

import sys  # noqa: E402
from pathlib import Path  # noqa: E402

from engine.errors import StudioError  # noqa: E402
from engine.evaluate import comparison, results  # noqa: E402
from engine.evaluate.options import STEPS, EvalOptions  # noqa: E402
from engine.jobs import runner  # noqa: E402
from engine.jobs.event_log import MetricsWriter  # noqa: E402
from engine.store import workspace  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    CANCEL.install()
    folder = Path(argv[0]).resolve()
    workspace.apply_library_env(workspace.current())

    def body(writer: MetricsWriter) -> dict:
        def progress(fraction: float, label: str) -> None:
            writer.write("progress", step=int(round(fraction * STEPS)), max_steps=STEPS, fraction=fraction,
                         label=label)
            print(f"[{fraction:4.0%}] {label}", flush=True)

        with CANCEL.guarded():
            options = EvalOptions.model_validate_json((folder / "config.json").read_text(encoding="utf-8"))
            report = comparison.evaluate_run(options, progress=progress)
        return {"outcome": "succeeded", "step": STEPS, "report": str(results.report_path(report))}

    # Bad options or data: the StudioError's sentence is the user's.
    return runner.run(folder, "eval", body, stopped=(Cancelled,), own_errors=(StudioError,), own_kind="data_error",
                      stopped_message="Cancelled; the previous results are unchanged.")


if __name__ == "__main__":
    sys.exit(main())
