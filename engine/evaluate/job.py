"""An evaluation as a supervised job: queued and started by engine.jobs.supervisor like a training run (one job per device),
so an evaluation never competes with a training run for the same GPU.

    python -m engine.evaluate.job JOB_DIR

JOB_DIR holds config.json (EvalOptions); the job writes metrics.jsonl events (start, progress with step = percent
done, final with the outcome) and train.log, which the supervisor reads exactly as it reads a trainer's. SIGTERM
(cancel) stops it at once: nothing is saved, the previous report of the run stays as it was.
"""

from __future__ import annotations

import signal


class Cancelled(BaseException):
    """Raised by the SIGTERM handler (BaseException: no `except Exception` on the way swallows it)."""


def _cancel(signum, frame) -> None:
    raise Cancelled()


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _cancel)  # before the heavy imports: a cancel during start-up stops it too

import os  # noqa: E402
import sys  # noqa: E402
import traceback  # noqa: E402
from pathlib import Path  # noqa: E402

from pydantic import BaseModel, ConfigDict, Field  # noqa: E402

from engine.jobs.event_log import MetricsWriter  # noqa: E402

STEPS = 100  # progress is reported in percent, as the "step" of a job of 100 steps


class EvalOptions(BaseModel):
    """What to evaluate and how; saved as the job's config.json."""
    model_config = ConfigDict(extra="forbid")
    run_id: int = Field(description="The fine-tuned run to comparison.")
    baseline: str = Field("base", description='"base" (the run\'s base model) or the id of another run on the same '
                                              "split.")
    limit: int | None = Field(None, ge=1, description="Evaluate only the first N test examples.")
    max_new_tokens: int = Field(128, ge=1, le=4096)
    batch_size: int = Field(16, ge=1, le=512)
    general: str | None = Field(None, description="A chat JSONL of general questions for the forgetting check.")
    json_schema: str | None = Field(None, description="A JSON Schema file the answers should match.")
    allow_weak_sandbox: bool = Field(False, description="Run code tests even where no real sandbox exists (Python-level "
                                                        "limits only: the code can read what the studio can read).")
    task: str = "chat"
    device: str = "auto"
    name: str = ""
    max_steps: int = STEPS

    def save(self, path: Path) -> None:
        path.write_text(self.model_dump_json(indent=2) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    signal.signal(signal.SIGTERM, _cancel)
    folder = Path(argv[0]).resolve()
    from engine.jobs import heartbeat
    from engine.store import workspace

    workspace.apply_library_env(workspace.current())
    writer = MetricsWriter(folder)
    heartbeat.start(folder, writer)
    writer.write("start", pid=os.getpid(), resume=False)

    def progress(fraction: float, label: str) -> None:
        writer.write("progress", step=int(round(fraction * STEPS)), max_steps=STEPS, fraction=fraction, label=label)
        print(f"[{fraction:4.0%}] {label}", flush=True)

    try:
        from engine.evaluate import comparison

        options = EvalOptions.model_validate_json((folder / "config.json").read_text(encoding="utf-8"))
        report = comparison.evaluate_run(options, progress=progress)
        writer.write("final", outcome="succeeded", step=STEPS, report=str(comparison.report_path(report)))
        return 0
    except Cancelled:
        writer.write("final", outcome="cancelled", message="Cancelled; the previous results are unchanged.")
        return 0
    except BaseException as err:  # noqa: BLE001 - every failure ends in a final event with one sentence
        from engine.evaluate.comparison import EvalError
        from engine.jobs.failures import classify_exception

        if isinstance(err, EvalError):
            kind, message = "data_error", str(err)
        else:
            kind, message = classify_exception(err)
            message = message.replace("The trainer crashed", "The evaluation crashed")
            traceback.print_exc()
        from engine.jobs.failures import write_failure

        return write_failure(writer, kind, message)
    finally:
        writer.close()


def read_progress(folder: Path, now: float | None = None) -> tuple[float, str]:
    """(fraction done, label with the time left) of a job from its events. The time left counts down between
    progress events (it is estimated at the last event, then the time since is taken off), and when a step runs
    longer than that estimate it is estimated again from the time spent so far, so it never sits still."""
    import time

    from engine.jobs.event_log import read_events

    events = read_events(folder)
    starts = [e for e in events if e["event"] == "start"]
    steps = [e for e in events if e["event"] == "progress"]
    if not steps:
        return 0.0, "starting"
    last = steps[-1]
    fraction = float(last.get("fraction", last["step"] / STEPS))
    label = last.get("label", "")
    if starts and 0.05 <= fraction < 1:
        left = time_left(starts[-1]["time"], last["time"], fraction, time.time() if now is None else now)
        label += f" · about {_duration(left)} left"
    return fraction, label


def time_left(started: float, last_event: float, fraction: float, now: float) -> float:
    """Seconds left: the estimate at the last event minus the time since; past that, the time spent so far scaled
    to what is left (rough: phases differ in speed)."""
    at_event = (last_event - started) * (1 - fraction) / fraction
    counted_down = at_event - (now - last_event)
    if counted_down >= 5:
        return counted_down
    return max((now - started) * (1 - fraction) / fraction, 5.0)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    return f"{minutes} min {seconds:02d} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


if __name__ == "__main__":
    sys.exit(main())
