"""Serving a model version through an existing engine, never a home-made server: vLLM when it is installed and CUDA
is present, otherwise `transformers serve`; both speak the OpenAI API. The server runs as a supervised job (kind
"serve", engine.models.serve_job): listed by `studio runs`, stopped by `studio cancel`, with a smoke test after
start. This module queues it, builds the engine's command, runs the smoke test, and writes the commands to serve the
version elsewhere."""

from __future__ import annotations

import importlib.util
import json
import os
import shlex
import socket
import sys
import time
import urllib.request
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from engine.errors import StudioError
from engine.evaluate import queue, results
from engine.jobs import processes, supervisor
from engine.models import registry
from engine.stat_helpers import nearest_rank
from engine.store import users
from engine.store.tables import ModelVersion, Run, User

ENGINES = ("auto", "vllm", "transformers")
SMOKE_AGREEMENT = 0.8  # the same engine family should give the evaluation's greedy answer on 80%+ of the prompts


class ServeError(StudioError, ValueError):
    """A server that cannot start; the message says why."""


class ServeOptions(BaseModel):
    """A serving job's config.json."""
    model_config = ConfigDict(extra="forbid")
    version_id: int
    label: str
    engine: str = "transformers"
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1024, le=65535)
    smoke_examples: int = Field(20, ge=1, le=500)
    max_new_tokens: int = Field(128, ge=1, le=4096)
    name: str = ""
    device: str = "cpu"
    max_steps: int = 100
    api_key_env: str = ""  # the environment variable holding the API key clients must send ("" = none)
    request_timeout_s: float = Field(default=120.0, gt=0, le=3600)
    max_tokens_cap: int = Field(default=1024, ge=1, le=32768)

    def save(self, path: Path) -> None:
        path.write_text(self.model_dump_json(indent=2) + "\n", encoding="utf-8")


def api_key(variable: str) -> str:
    """The API key held by the environment variable named; ServeError when the name or the key will not do."""
    if not variable.isidentifier():
        raise ServeError("--api-key-env takes the name of an environment variable (letters, digits and _).")
    key = os.environ.get(variable, "")
    if len(key) < 16:
        raise ServeError(f"The environment variable {variable[:60]} does not hold an API key of at least 16 "
                         "characters; set it before serving.")
    return key


def pick_engine(engine: str) -> str:
    if engine not in ENGINES:
        raise ServeError(f"Unknown serving engine {engine!r}; choose auto, vllm or transformers.")
    has_vllm = importlib.util.find_spec("vllm") is not None
    if engine == "vllm" and not (has_vllm and processes.cuda_count() > 0):
        raise ServeError("vLLM needs its package (`pip install vllm`) and a CUDA GPU; neither is here. Use "
                         "--engine transformers (or auto).")
    if engine == "auto":
        return "vllm" if has_vllm and processes.cuda_count() > 0 else "transformers"
    return engine


LOOPBACK = ("127.0.0.1", "localhost", "::1")
SERVE_MODULES = ("fastapi", "uvicorn", "starlette", "httpx", "rich")  # the serve extra


def serve(actor: User, ref: int | str, port: int = 8000, engine: str = "auto", host: str = "127.0.0.1",
          smoke_examples: int = 20, api_key_env: str = "", request_timeout_s: float = 120.0) -> Run:
    """Queue a serving job for a version (it starts when its device is free: a GPU server holds the GPU). Bound
    beyond this machine it needs an API key (the name of the environment variable that holds it)."""
    actor = users.require(actor, "admin", "analyst")
    missing = [m for m in SERVE_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        raise ServeError(f"Serving needs the serve extra ({', '.join(missing)} missing here): pip install "
                         "'finetune-studio[serve]'.")
    version = registry.get_version(ref)
    chosen = pick_engine(engine)
    api_key_env = api_key_env.strip()
    if host not in LOOPBACK and not api_key_env:
        raise ServeError(f"Serving on {host} opens the model to other machines; it needs an API key: put one in an "
                         "environment variable and name it with --api-key-env (or serve on 127.0.0.1).")
    if api_key_env:
        api_key(api_key_env)  # refused now, not when the job starts
    if not _port_free(host, port):
        raise ServeError(f"Port {port} on {host} is in use; choose another with --port.")
    run = registry.run_of(version)
    eval_job = queue.latest_job(run.id, "base", succeeded=True)  # the answers the smoke test compares with
    options = ServeOptions(version_id=version.id, label=version.label, engine=chosen, host=host, port=port,
                           smoke_examples=smoke_examples, name=f"serve {version.label} on :{port}",
                           api_key_env=api_key_env, request_timeout_s=request_timeout_s,
                           max_new_tokens=int(eval_job.config.get("max_new_tokens", 128)) if eval_job else 128,
                           device="cuda" if chosen == "vllm" else f"serve:{port}")
    job = supervisor.launch(options, ["{python}", "-m", "engine.models.serve_job", "{run_dir}"], version.project_id,
                            kind="serve", target_run_id=run.id, device=options.device)
    registry.log_event(version, "serve", actor.name, job=job.id, engine=chosen, port=port, host=host)
    return job


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def server_command(options: ServeOptions, model: Path, port: int, adapter: Path | None = None) -> list[str]:
    """The engine's own server on 127.0.0.1:port, behind the gateway (engine.models.gateway) that clients call:
    `transformers serve` on a merged folder, or vLLM (LoRA through --enable-lora). Run it in the model folder's
    parent: `transformers serve` names the model after the folder it was given, so the clients call it by the
    version's label."""
    if options.engine == "vllm":
        cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model), "--host",
               "127.0.0.1", "--port", str(port), "--served-model-name", options.label]
        if adapter is not None:
            cmd[cmd.index("--served-model-name") + 1] = f"{options.label}-base"
            cmd += ["--enable-lora", "--lora-modules", f"{options.label}={adapter}"]
        return cmd
    return [sys.executable, "-m", "transformers.cli.transformers", "serve", model.name, "--host", "127.0.0.1",
            "--port", str(port), "--device", "auto", "--log-level", "warning"]


def wait_healthy(base_url: str, alive, timeout: float = 600) -> None:
    """Wait for /health to answer 200 (vLLM and transformers both have it); fail when the server process dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            raise ServeError("The server process ended before it answered its health check (see train.log).")
        try:
            with urllib.request.urlopen(f"{base_url}/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise ServeError(f"The server did not answer its health check within {timeout:.0f} s.")


def chat(base_url: str, model: str, messages: list[dict], max_tokens: int, timeout: float = 120,
         api_key: str | None = None) -> tuple[str, float]:
    """(answer, seconds) of one greedy chat completion."""
    body = json.dumps({"model": model, "messages": messages, "max_tokens": max_tokens, "temperature": 0,
                       "stream": False}).encode("utf-8")
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    request = urllib.request.Request(f"{base_url}/v1/chat/completions", data=body, headers=headers)
    started = time.monotonic()
    with urllib.request.urlopen(request, timeout=timeout) as r:
        reply = json.loads(r.read())
    return reply["choices"][0]["message"]["content"] or "", time.monotonic() - started


def smoke_test(version: ModelVersion, base_url: str, model: str, engine: str, examples: int,
               max_new_tokens: int, api_key: str | None = None) -> dict:
    """The locked test prompts through the endpoint, compared with the evaluation's greedy answers."""
    rows = _evaluated_rows(version, examples)
    answers, latencies = [], []
    for row in rows:
        text, seconds = chat(base_url, model, row["prompt"], max_new_tokens, api_key=api_key)
        answers.append(text)
        latencies.append(seconds)
    same = sum(1 for a, row in zip(answers, rows) if a.strip() == row["finetuned"]["answer"].strip())
    agreement = same / len(rows) if rows else 0.0
    ordered = sorted(latencies)
    passed = bool(rows) and len(answers) == len(rows) and (engine != "transformers" or agreement >= SMOKE_AGREEMENT)
    return {"prompts": len(rows), "answered": len(answers), "same_as_evaluation": same, "agreement": agreement,
            "latency_p50_s": nearest_rank(ordered, 0.5), "latency_p95_s": nearest_rank(ordered, 0.95), "engine": engine,
            "passed": passed, "compared_with": "the evaluation's greedy answers (transformers, batched)"}


def _evaluated_rows(version: ModelVersion, examples: int) -> list[dict]:
    path = results.eval_dir(registry.run_of(version)) / "outputs.jsonl"
    if not path.is_file():
        raise ServeError(f"{version.label} has no evaluation against its base model, so there are no greedy answers "
                         "to compare the server with: evaluate it first.")
    rows = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                rows.append(json.loads(line))
            if len(rows) >= examples:
                break
    return rows


def elsewhere(version: ModelVersion) -> dict[str, str]:
    """Commands to serve this version on another machine (the paths are the exported folders' names)."""
    label = version.label
    technique = version.lineage["facts"]["technique"]
    base = version.lineage["facts"]["base_model"]
    out = {"export merged": f"studio model export {label} --format merged --out ./{label}-merged",
           "vLLM (merged)": f"vllm serve ./{label}-merged --served-model-name {label} --generation-config auto",
           "TGI (docker, merged)": ("docker run --gpus all -p 8080:80 -v $PWD/" + f"{label}-merged:/model "
                                    "ghcr.io/huggingface/text-generation-inference --model-id /model"),
           "transformers (CPU or GPU)": f"transformers serve ./{label}-merged --port 8000"}
    if technique in ("lora", "qlora"):
        out["vLLM (adapter)"] = (f"vllm serve {shlex.quote(str(base))} --enable-lora --lora-modules "
                                 f"{label}=./{label}-adapter")
    return out
