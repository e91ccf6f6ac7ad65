"""A serving job: prepares the version's model, starts the engine's server in this job's process group (a cancel
stops both) on 127.0.0.1 at a private port, puts the gateway (engine.models.gateway: API key, caps, timeout, a
truthful /health) on the address clients call, waits for its health check, runs the smoke test through it, then keeps
serving until it is stopped.

    python -m engine.models.serve_job JOB_DIR

JOB_DIR holds config.json (engine.models.serving.ServeOptions); events go to metrics.jsonl (start, progress, smoke,
final) like any job's. The server's own output goes to train.log."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from engine.errors import StudioError
from engine.jobs import runner
from engine.jobs.event_log import MetricsWriter
from engine.jobs.stop_signal import Deferred
from engine.models import export, registry, serving
from engine.store import workspace


class Stopped(BaseException):
    """Raised for SIGTERM (BaseException: no `except Exception` on the way swallows it)."""


STOP = Deferred(Stopped)  # a stop during start-up is kept and acted on as the work begins


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    STOP.install()
    folder = Path(argv[0]).resolve()
    workspace.apply_library_env(workspace.current())
    return runner.run(folder, "serve", lambda writer: _serve(folder, writer), stopped=(Stopped,),
                      stopped_message="Stopped; the server is down.", own_errors=(StudioError,))


def _serve(folder: Path, writer: MetricsWriter) -> dict:
    """Serves until stopped (Stopped) or the server exits by itself (ServeError); the server is down either way."""
    server: subprocess.Popen | None = None
    try:
        with STOP.guarded():
            options = serving.ServeOptions.model_validate_json((folder / "config.json").read_text(encoding="utf-8"))
            version = registry.get_version(options.version_id)
            writer.write("progress", step=10, max_steps=100, label="Preparing the model (merging the adapter once)")
            model = export.served_model(version)
            api_key = _api_key(options)
            engine_port = _free_port()
            command = serving.server_command(options, model, engine_port)
            print("$ " + " ".join(command), flush=True)
            server = subprocess.Popen(command, stdin=subprocess.DEVNULL, cwd=model.parent)
            gateway = _start_gateway(options, model, f"http://127.0.0.1:{engine_port}", api_key)
            base_url = f"http://{_url_host(options.host)}:{options.port}"
            writer.write("progress", step=40, max_steps=100, label=f"Starting the {options.engine} server")
            serving.wait_healthy(base_url, lambda: server is not None and server.poll() is None
                                 and gateway.is_alive())
            writer.write("progress", step=70, max_steps=100, label="Smoke test: the locked test prompts")
            name = options.label  # vLLM by --served-model-name, transformers by the folder's name
            smoke = serving.smoke_test(version, base_url, name, options.engine, options.smoke_examples,
                                       options.max_new_tokens, api_key=api_key)
            writer.write("smoke", step=100, max_steps=100, url=base_url, model=name, **smoke)
            registry.log_event(version, "smoke_test", "serving job", **smoke, url=base_url)
            print(f"Serving {version.label} at {base_url} (model name {name}); smoke test "
                  f"{'passed' if smoke['passed'] else 'FAILED'}: {smoke['same_as_evaluation']}/{smoke['prompts']} "
                  f"answers as in the evaluation, p50 {smoke['latency_p50_s']:.2f} s.", flush=True)
            while server.poll() is None:
                time.sleep(1)
            raise serving.ServeError(f"The {options.engine} server exited by itself (status {server.returncode}); its "
                                     "output is in train.log.")
    finally:
        _end(server)


def _api_key(options: serving.ServeOptions) -> str | None:
    return serving.api_key(options.api_key_env) if options.api_key_env else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _url_host(host: str) -> str:
    """The host to call the gateway at from this machine (a wildcard bind answers on loopback too)."""
    if host in ("0.0.0.0", "::", ""):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def _start_gateway(options: serving.ServeOptions, model: Path, upstream: str, api_key: str | None):
    """The gateway's uvicorn server, serving on its own thread (it stops with this process)."""
    import uvicorn  # only the serving job needs the web stack

    from engine.models import gateway
    from engine.train.recommend import model_facts

    context = int(model_facts(str(model)).context or 2048)
    limits = gateway.Limits(context_tokens=context, max_tokens_cap=min(options.max_tokens_cap, context),
                            request_timeout_s=options.request_timeout_s)
    app = gateway.build_app(upstream, limits, gateway.PromptCounter(model), api_key)
    app.state.model_name = options.label
    server = uvicorn.Server(uvicorn.Config(app, host=options.host, port=options.port, log_level="warning",
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True, name="gateway")
    thread.start()
    return thread  # it ends only when its port cannot be bound: the wait for health then fails at once


def _end(server: subprocess.Popen | None) -> None:
    if server is None or server.poll() is not None:
        return
    server.terminate()
    try:
        server.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


if __name__ == "__main__":
    sys.exit(main())
