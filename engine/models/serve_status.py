"""What a serving job is doing, in the words the Models page and `studio serve` show: its phase, its address once the
server answers, the smoke test's result, and the command that calls it. Read from the job's row and its events, so
every page and process sees the same thing."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass

from engine.jobs import event_log, supervisor
from engine.store.tables import Run


@dataclass
class ServeStatus:
    job_id: int
    phase: str  # one sentence: what the job is doing now
    url: str | None  # the OpenAI-compatible base URL, once the server answered and while it runs
    model: str | None  # the model name clients send
    smoke: str | None  # the smoke test's result in one sentence
    smoke_passed: bool | None
    call: str | None  # a curl command that asks the server one question
    active: bool


def smoke_sentence(smoke: dict) -> str:
    p50, p95 = smoke.get("latency_p50_s"), smoke.get("latency_p95_s")
    latency = f", latency p50 {p50:.2f} s, p95 {p95:.2f} s" if p50 is not None and p95 is not None else ""
    return (f"Smoke test {'passed' if smoke['passed'] else 'FAILED'}: {smoke['same_as_evaluation']}/"
            f"{smoke['prompts']} answers as in the evaluation{latency}.")


def call_command(url: str, model: str, api_key_env: str = "") -> str:
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 64})
    key = f" -H \"Authorization: Bearer ${api_key_env}\"" if api_key_env else ""
    return (f"curl -s {url}/chat/completions -H 'Content-Type: application/json'{key} \\\n"
            f"  -d {shlex.quote(body)}")


def status_of(job: Run) -> ServeStatus:
    events = event_log.read_events(supervisor.run_path(job))
    smoke = next((e for e in events if e["event"] == "smoke"), None)
    progress = next((e for e in reversed(events) if e["event"] == "progress"), None)
    active = job.status in supervisor.ACTIVE
    if job.status == "queued":
        phase = "Queued: it starts when its port and device are free."
    elif active and smoke:
        phase = "Serving."
    elif active:
        phase = (progress or {}).get("label") or "Starting."
        phase = phase if phase.endswith(".") else phase + "."
    elif job.status == "cancelled":
        phase = "Stopped; the server is down."
    else:
        phase = f"Ended ({job.status})" + (f": {job.error_message}" if job.error_message else ".")
    url = f"{smoke['url']}/v1" if smoke and active else None
    model = smoke["model"] if smoke else None
    return ServeStatus(job_id=job.id, phase=phase, url=url, model=model,
                       smoke=smoke_sentence(smoke) if smoke else None,
                       smoke_passed=bool(smoke["passed"]) if smoke else None,
                       call=call_command(url, model, str((job.config or {}).get("api_key_env") or ""))
                       if url and model else None, active=active)
