"""Ray as the job backend, for real: a local Ray head (2 CPUs, its job server on 127.0.0.1) started by a fixture; a
training run and its evaluation submitted through Ray's Job Submission API succeed and show where they ran; cancel
stops a Ray job the way it stops a local one; a killed trainer is classified as locally; a head that is down is one
sentence."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from conftest import app_as, run_studio

from engine.evaluate import queue
from engine.evaluate.options import EvalOptions
from engine.jobs import event_log, ray_backend, supervisor
from engine.jobs.checkpoints import complete_checkpoints
from engine.train import launcher

pytestmark = pytest.mark.xdist_group("ray")
RAY = str(Path(sys.executable).parent / "ray")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ray_head():
    if not Path(RAY).exists():
        pytest.skip("Ray is not installed (pip install -e '.[ray]')")
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths live under it
    dashboard = _free_port()
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    subprocess.run([RAY, "start", "--head", "--num-cpus", "2", "--num-gpus", "0", "--port", str(_free_port()),
                    "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dashboard), "--include-dashboard",
                    "true", "--temp-dir", temp, "--disable-usage-stats"], check=True, env=env, timeout=180,
                   capture_output=True)
    yield f"http://127.0.0.1:{dashboard}"
    subprocess.run([RAY, "stop", "--force"], timeout=120, capture_output=True)
    if not os.environ.get("STUDIO_KEEP_RAY_LOGS"):
        shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture
def on_ray(ray_head, monkeypatch):
    monkeypatch.setenv("STUDIO_JOB_BACKEND", "ray")
    monkeypatch.setenv("STUDIO_RAY_ADDRESS", ray_head)
    return ray_head


def _wait_for(run_id: int, predicate, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        supervisor.reconcile()
        run = supervisor.get_run(run_id)
        if predicate(run):
            return
        assert run.status in supervisor.ACTIVE, (run.status, run.error_message, run.log_tail)
        time.sleep(0.3)
    run = supervisor.get_run(run_id)
    raise AssertionError(f"not reached in time: {run.status} step {run.step} pid {run.pid} job {run.backend_job} "
                         f"{ray_backend.info(run.backend_job) if run.backend_job else ''}")


def test_a_training_run_and_its_evaluation_run_on_ray_and_say_where(setup, ws, on_ray):
    project, made, config = setup
    run = supervisor.wait(launcher.launch_checked(config(max_steps=8), project.id).id, timeout=300)
    assert run.status == "succeeded", (run.error_message, run.log_tail)
    assert run.backend == "ray" and run.backend_job and run.node
    assert (supervisor.run_path(run) / "final").is_dir()
    job = supervisor.wait(queue.queue(EvalOptions(run_id=run.id, limit=8, max_new_tokens=16)).id, timeout=300)
    assert job.status == "succeeded" and job.backend == "ray", (job.error_message, job.log_tail)
    proc = run_studio("runs", "--json", env_home=ws.root, STUDIO_JOB_BACKEND="ray", STUDIO_RAY_ADDRESS=on_ray)
    assert proc.returncode == 0, proc.stderr
    shown = {r["id"]: r for r in json.loads(proc.stdout)}
    assert shown[run.id]["backend"] == "ray" and shown[run.id]["node"] == run.node
    assert shown[job.id]["status"] == "succeeded" and shown[job.id]["backend"] == "ray"
    at = app_as("analyst")
    at.switch_page("pages/runs.py")
    at.run()
    assert not at.exception
    assert any("Ray cluster" in c.value and "1 node(s)" in c.value for c in at.caption)
    assert f"ray {run.node}" in set(at.dataframe[0].value["where"])


def test_cancel_stops_a_ray_job_after_it_saves(setup, on_ray):
    project, made, config = setup
    run = launcher.launch(config(max_steps=400), project.id)
    _wait_for(run.id, lambda r: r.step >= 3, 240)
    supervisor.cancel(run.id)
    final = supervisor.wait(run.id, timeout=90)
    assert final.status == "cancelled", (final.error_message, final.log_tail)
    assert event_log.final_event(event_log.read_events(supervisor.run_path(final)))["outcome"] == "cancelled"
    assert complete_checkpoints(supervisor.run_path(final))


def test_a_killed_trainer_on_ray_is_classified_as_a_local_kill_is(setup, on_ray):
    project, made, config = setup
    run = launcher.launch(config(max_steps=400), project.id)
    _wait_for(run.id, lambda r: r.step >= 2 and r.pid, 240)
    os.kill(supervisor.get_run(run.id).pid, signal.SIGKILL)
    final = supervisor.wait(run.id, timeout=60)
    assert (final.status, final.error_kind) == ("failed", "killed"), final.error_message
    assert "SIGKILL" in final.error_message


def test_the_workspace_probe_finds_a_node_that_cannot_see_the_workspace(ws, on_ray):
    """The probe behind the multi-node check, on the one node there is: the workspace is seen; a path the node
    cannot see is named."""
    ip = ray_backend.nodes()[0]["node"]
    assert ray_backend.workspace_probe(ws.root, [ip]) == []
    missing = ray_backend.workspace_probe(ws.root, [ip], marker=ws.root / "not-on-this-node")
    assert len(missing) == 1 and f"Node {ip} does not see the workspace" in missing[0]


def test_a_ray_head_that_is_down_is_one_sentence(setup, ws, monkeypatch):
    project, made, config = setup
    monkeypatch.setenv("STUDIO_JOB_BACKEND", "ray")
    monkeypatch.setenv("STUDIO_RAY_ADDRESS", f"http://127.0.0.1:{_free_port()}")
    with pytest.raises(ray_backend.RayError, match="cannot be reached") as err:
        launcher.launch(config(max_steps=4), project.id)
    assert "\n" not in str(err.value) and not supervisor.list_runs(project.id)


class _BusyJobServer:
    """A job server that refuses the first `busy` submissions as Ray's does right after `ray start` (HTTP 500, "No
    available agent to submit job, please try again later"), then accepts; it records when each one came."""

    def __init__(self, busy: int):
        import http.server
        import threading

        self.busy, self.attempts = busy, []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _json(self, status: int, body: dict | str) -> None:
                data = (json.dumps(body) if isinstance(body, dict) else body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json" if isinstance(body, dict) else "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                self._json(200, {"ray_version": "2.49.0", "version": "4", "session_name": "busy"})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.attempts.append(time.monotonic())
                if len(outer.attempts) <= outer.busy:
                    self._json(500, "No available agent to submit job, please try again later.")
                else:
                    self._json(200, {"submission_id": body["submission_id"], "job_id": None})

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


def test_a_submission_refused_as_temporary_is_retried_with_backoff(monkeypatch):
    busy = _BusyJobServer(busy=3)
    monkeypatch.setenv("STUDIO_RAY_ADDRESS", busy.url)
    try:
        submission = ray_backend.submit(7, "/tmp/none", ["true"], {}, 0, 1)
        assert submission.startswith("studio-7-") and len(busy.attempts) == 4
        gaps = [b - a for a, b in zip(busy.attempts, busy.attempts[1:])]
        assert gaps[0] >= 0.4 and gaps[2] > gaps[0] * 1.5  # waits that grow, not a hammering
    finally:
        busy.server.shutdown()
    never = _BusyJobServer(busy=10 ** 6)
    monkeypatch.setenv("STUDIO_RAY_ADDRESS", never.url)
    monkeypatch.setattr(ray_backend, "SUBMIT_PATIENCE_S", 3.0)  # the minute of patience, shortened for the test
    try:
        with pytest.raises(ray_backend.RayError, match="No available agent"):
            ray_backend.submit(8, "/tmp/none", ["true"], {}, 0, 1)
        assert 2 <= len(never.attempts) <= 4
    finally:
        never.server.shutdown()
