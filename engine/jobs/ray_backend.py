"""Ray as the job backend, for a team's GPU hosts: training and evaluation jobs go to a Ray cluster through Ray's Job
Submission API instead of starting on this machine.

    STUDIO_JOB_BACKEND=local|ray      (default local: the studio's own supervisor on this machine)
    STUDIO_RAY_ADDRESS=http://HEAD:8265   the cluster's job server (the head node's dashboard port)

A job is submitted with its resources (entrypoint_num_gpus, CPUs) and runs the same command as locally, under the
same monitor (engine.jobs.monitor), which records its start, progress and end in the shared database and hands over
to the next job: Ray's queue replaces the studio's first-in-first-out per device. The environment travels in Ray's
runtime_env (never on the command line, where `ps` would show a token). A cancel is Ray's stop_job: SIGTERM to the
monitor, which passes it to the job and escalates to SIGKILL after the same grace as locally.

More than one node needs a shared filesystem for STUDIO_HOME (the same path on every node) and PostgreSQL for the
database; check() says what is missing. A single-node Ray on the studio's machine may keep SQLite.
"""

from __future__ import annotations

import os
import shlex
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from engine import settings
from engine.errors import StudioError

BACKENDS = ("local", "ray")
RAY_KINDS = ("train", "eval")  # servers stay on the studio's machine: their port is here
# Ray's job states -> the studio's (a stopped job is cancelled; pending waits for resources: queued)
STATES = {"PENDING": "queued", "RUNNING": "running", "SUCCEEDED": "succeeded", "FAILED": "failed",
          "STOPPED": "cancelled"}
# The environment a job needs, forwarded through runtime_env: the studio's and the libraries' settings and keys.
FORWARDED_PREFIXES = ("STUDIO_", "HF_", "WANDB_", "TRANSFORMERS_", "CUDA_", "NCCL_", "OMP_")
# A head that has just started answers "No available agent to submit job" for a few seconds: retried this long.
SUBMIT_PATIENCE_S = 60.0
PROBE_PATIENCE_S = 60.0


class RayError(StudioError, ValueError):
    """The Ray cluster cannot take the job; the message says why."""


def configured() -> str:
    return settings.current().job_backend


def backend_for(kind: str) -> str:
    """The backend a new job of this kind runs on."""
    return configured() if kind in RAY_KINDS else "local"


def address() -> str:
    value = settings.current().ray_address.strip()
    return value if "://" in value else f"http://{value}"


def client():
    """Ray's JobSubmissionClient for the configured cluster; a cluster that cannot be reached is one sentence."""
    try:
        from ray.job_submission import JobSubmissionClient  # only the ray backend needs Ray (the `ray` extra)
    except ImportError:
        raise RayError("STUDIO_JOB_BACKEND=ray needs Ray: `.venv/bin/pip install -e '.[ray]'`.") from None
    try:
        return JobSubmissionClient(address())
    except (ConnectionError, RuntimeError, ValueError) as err:
        raise RayError(f"The Ray cluster at {address()} cannot be reached ({str(err).splitlines()[0][:160]}); "
                       "start it with `ray start --head`, or set STUDIO_JOB_BACKEND=local.") from None


def _call(what: str, fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except (ConnectionError, RuntimeError, OSError) as err:
        raise RayError(f"The Ray cluster at {address()} did not answer ({what}: "
                       f"{str(err).splitlines()[0][:160] if str(err) else type(err).__name__}).") from None


def nodes() -> list[dict]:
    """The cluster's alive nodes: [{"node", "gpus", "cpus"}]."""
    from ray.util.state import list_nodes  # only the ray backend needs Ray

    alive = _call("list nodes", list_nodes, address=address(), filters=[("state", "=", "ALIVE")],
                  raise_on_missing_output=False)
    return [{"node": n.node_ip, "gpus": float((n.resources_total or {}).get("GPU", 0)),
             "cpus": float((n.resources_total or {}).get("CPU", 0))} for n in alive]


def cluster_gpus(runs) -> dict:
    """{"nodes", "gpus", "in_use", "free"}: the cluster's GPUs, and those the studio's running Ray jobs hold."""
    found = nodes()
    total = sum(n["gpus"] for n in found)
    in_use = sum(int((r.config or {}).get("num_gpus") or 1) for r in runs
                 if r.backend == "ray" and r.status == "running" and r.device == "cuda")
    return {"nodes": len(found), "gpus": total, "in_use": in_use, "free": max(0.0, total - in_use)}


def check(database_dialect: str, workspace_root: Path) -> list[str]:
    """What keeps this cluster from running the studio's jobs (an empty list: nothing). With more than one node:
    the database must be a server, and every node must see the workspace at the same path (probed)."""
    client()
    found = nodes()
    problems = []
    if not found:
        problems.append(f"The Ray cluster at {address()} has no alive node.")
    if len(found) > 1 and database_dialect == "sqlite":
        problems.append(f"The Ray cluster has {len(found)} nodes: jobs on other nodes need the database on a server "
                        "(set STUDIO_DB_URL to PostgreSQL).")
    if len(found) > 1:
        problems += workspace_probe(workspace_root, [n["node"] for n in found])
    return problems


def workspace_probe(workspace_root: Path, node_ips: list[str], marker: Path | None = None) -> list[str]:
    """A tiny job on each node (pinned by Ray's node:IP resource) looks for a file the studio just wrote in the
    workspace: the nodes that cannot see it, in one sentence each."""
    probe = marker or Path(workspace_root) / "runs" / f".ray-probe-{uuid.uuid4().hex[:8]}"
    probe.parent.mkdir(parents=True, exist_ok=True)
    if marker is None:
        probe.write_text("probe")
    jobs = client()
    look = shlex.join([sys.executable, "-c", f"import os, sys; sys.exit(0 if os.path.exists({str(probe)!r}) else 3)"])
    submitted = {ip: _call("probe", jobs.submit_job, entrypoint=look, entrypoint_num_cpus=0,
                           entrypoint_resources={f"node:{ip}": 0.001}) for ip in node_ips}
    deadline, seen = time.monotonic() + PROBE_PATIENCE_S, dict[str, str]()
    while time.monotonic() < deadline and len(seen) < len(submitted):
        for ip, job in submitted.items():
            state = str(getattr(_call("probe", jobs.get_job_status, job), "value", ""))
            if state in ("SUCCEEDED", "FAILED", "STOPPED"):
                seen[ip] = state
        time.sleep(0.5)
    if marker is None:
        probe.unlink(missing_ok=True)
    return [f"Node {ip} does not see the workspace at {workspace_root} (STUDIO_HOME must be on a filesystem every "
            "node mounts at the same path)." if seen.get(ip) == "FAILED" else
            f"Node {ip} did not run a probe job within {PROBE_PATIENCE_S:.0f} s." for ip in submitted
            if seen.get(ip) != "SUCCEEDED"]


def job_env(base: dict[str, str], grace: float) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k.startswith(FORWARDED_PREFIXES)}
    env.update(base)
    # Ray's stop_job: SIGTERM, then SIGKILL after this; the monitor escalates itself after the studio's grace.
    env["RAY_JOB_STOP_WAIT_TIME_S"] = str(int(grace) + 15)
    return env


def submit(run_id: int, folder: str, command: list[str], env: dict[str, str], gpus: int, cpus: float) -> str:
    """Submit the job (under its monitor); returns Ray's submission id."""
    entry = [sys.executable, "-m", "engine.jobs.monitor", str(run_id), folder, "--", *command]
    submission = f"studio-{run_id}-{uuid.uuid4().hex[:8]}"
    jobs = client()
    deadline, wait = time.monotonic() + SUBMIT_PATIENCE_S, 0.5
    while True:
        try:
            _call("submit", jobs.submit_job, entrypoint=shlex.join(entry), submission_id=submission,
                  runtime_env={"env_vars": env}, entrypoint_num_gpus=gpus or None, entrypoint_num_cpus=cpus,
                  metadata={"studio_run": str(run_id)})
            return submission
        except RayError as err:
            if not _temporary(str(err)) or time.monotonic() + wait > deadline:
                raise
            time.sleep(wait)
            wait = min(wait * 2, 8.0)  # backoff: a head that has just started needs seconds, not a hammering


def _temporary(message: str) -> bool:
    """A refusal the job server itself calls temporary (right after `ray start`: "No available agent to submit job,
    please try again later")."""
    lowered = message.lower()
    return "no available agent" in lowered or "try again later" in lowered


def info(submission: str) -> dict[str, Any]:
    """{"state" (the studio's), "ray_state", "exit_code", "node", "message"} of a submitted job."""
    found = _call("job status", client().get_job_info, submission)
    ray_state = str(getattr(found.status, "value", found.status))
    node = (found.driver_agent_http_address or "").split("://")[-1].split(":")[0] or None
    return {"state": STATES.get(ray_state, "running"), "ray_state": ray_state, "exit_code": found.driver_exit_code,
            "node": node, "message": found.message}


def stop(submission: str) -> None:
    _call("stop job", client().stop_job, submission)
