"""Every job kind ends through one runner (engine.jobs.runner): one start event, one final event with one of three
outcomes, failures named after the job that had them. The runner runs in real subprocesses here (its heartbeat is a
process-wide watcher that must not live inside the test worker)."""

import re
import subprocess
import sys

import pytest
from conftest import ROOT

from engine.jobs.event_log import read_events
from engine.jobs.failures import classify_exit

_BODY = """
import sys
from pathlib import Path
from engine.errors import StudioError
from engine.jobs import runner

class Stop(BaseException):
    pass

def body(writer):
    what = sys.argv[2]
    writer.write("progress", step=1, max_steps=2)
    if what == "refused":
        raise StudioError("The teacher model is not configured.")
    if what == "crash":
        raise RuntimeError("boom")
    if what == "stop":
        raise Stop()
    if what == "odd":
        return {"outcome": "finished"}
    return {"outcome": "succeeded", "step": 2}

sys.exit(runner.run(Path(sys.argv[1]), sys.argv[3], body, stopped=(Stop,), stopped_message="Stopped by you.",
                    own_errors=(StudioError,)))
"""


def _job(tmp_path, what: str, job: str):
    folder = tmp_path / f"{what}-{job}"
    folder.mkdir()
    done = subprocess.run([sys.executable, "-c", _BODY, str(folder), what, job], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    events = read_events(folder)
    assert [e["event"] for e in events] == ["start", "progress", "final"], done.stderr
    return done.returncode, events[-1]


@pytest.mark.parametrize("what, job, code, outcome, kind, message", [
    ("fine", "eval", 0, "succeeded", None, None),
    ("refused", "augment", 78, "failed", "config_error", "The teacher model is not configured."),
    ("crash", "eval", 1, "failed", "crashed", "The evaluation crashed (RuntimeError: boom)"),
    ("crash", "serve", 1, "failed", "crashed", "The server crashed (RuntimeError: boom)"),
    ("stop", "serve", 0, "cancelled", None, "Stopped by you."),
    ("odd", "train", 1, "failed", "crashed", "The trainer crashed (ValueError: a job body returned the outcome"),
])
def test_the_runner_ends_every_job_in_one_final_event(tmp_path, what, job, code, outcome, kind, message):
    returncode, final = _job(tmp_path, what, job)
    assert (returncode, final["outcome"], final.get("error_kind")) == (code, outcome, kind)
    if message:
        assert final["message"].startswith(message)


def test_a_job_that_died_without_its_final_event_is_named_for_its_kind():
    assert classify_exit(-9, job="serve")[1] == "The server was killed by SIGKILL; start serving again."
    assert classify_exit(-9, job="train")[1] == ("The trainer was killed by SIGKILL before it could save; resume "
                                                 "from the last checkpoint.")
    assert classify_exit(-9, 0.95, job="eval")[1].startswith(
        "The machine ran out of memory and the system killed the evaluation (SIGKILL")
    assert classify_exit(None, job="augment")[1] == ("The augmentation was killed: its process is gone and left no "
                                                     "final record; start it again (accepted records are kept).")


def test_only_the_runner_opens_a_job_event_log_and_writes_its_end():
    """The jobs do not each write their own start and final events (they did, three ways, with a rewrite of the
    trainer's sentences to reconcile them)."""
    offenders = []
    for path in sorted((ROOT / "engine").rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        name = str(path.relative_to(ROOT))
        if name in ("engine/jobs/runner.py", "engine/jobs/event_log.py", "engine/jobs/failures.py"):
            continue
        if re.search(r"MetricsWriter\(|\bwrite_failure\(|\bclassify_exception\(|\"The trainer crashed\"", text):
            offenders.append(name)
        if re.search(r"write\(\"final\"", text) and name != "engine/jobs/heartbeat.py":
            offenders.append(name)
    assert not offenders, f"job ends written outside engine.jobs.runner: {offenders}"
