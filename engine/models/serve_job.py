"""A serving job: prepares the version's model, starts the engine's server in this job's process group (a cancel
stops both), waits for its health check, runs the smoke test, then keeps serving until it is stopped.

    python -m engine.models.serve_job JOB_DIR

JOB_DIR holds config.json (engine.models.serving.ServeOptions); events go to metrics.jsonl (start, progress, smoke,
final) like any job's. The server's own output goes to train.log."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import traceback
from pathlib import Path

from engine.errors import StudioError
from engine.jobs import heartbeat
from engine.jobs.event_log import MetricsWriter
from engine.jobs.failures import classify_exception, write_failure
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
    writer = MetricsWriter(folder)
    heartbeat.start(folder, writer)
    writer.write("start", pid=os.getpid(), resume=False)
    server: subprocess.Popen | None = None
    try:
        with STOP.guarded():
            options = serving.ServeOptions.model_validate_json((folder / "config.json").read_text(encoding="utf-8"))
            version = registry.get_version(options.version_id)
            writer.write("progress", step=10, max_steps=100, label="Preparing the model (merging the adapter once)")
            model = export.served_model(version)
            command = serving.server_command(options, model)
            print("$ " + " ".join(command), flush=True)
            server = subprocess.Popen(command, stdin=subprocess.DEVNULL, cwd=model.parent)
            base_url = f"http://{options.host}:{options.port}"
            writer.write("progress", step=40, max_steps=100, label=f"Starting the {options.engine} server")
            serving.wait_healthy(base_url, lambda: server is not None and server.poll() is None)
            writer.write("progress", step=70, max_steps=100, label="Smoke test: the locked test prompts")
            name = options.label  # vLLM by --served-model-name, transformers by the folder's name
            smoke = serving.smoke_test(version, base_url, name, options.engine, options.smoke_examples,
                                       options.max_new_tokens)
            writer.write("smoke", step=100, max_steps=100, url=base_url, model=name, **smoke)
            registry.log_event(version, "smoke_test", "serving job", **smoke, url=base_url)
            print(f"Serving {version.label} at {base_url} (model name {name}); smoke test "
                  f"{'passed' if smoke['passed'] else 'FAILED'}: {smoke['same_as_evaluation']}/{smoke['prompts']} "
                  f"answers as in the evaluation, p50 {smoke['latency_p50_s']:.2f} s.", flush=True)
            while server.poll() is None:
                time.sleep(1)
            raise serving.ServeError(f"The {options.engine} server exited by itself (status {server.returncode}); its "
                                     "output is in train.log.")
    except Stopped:
        _end(server)
        writer.write("final", outcome="cancelled", message="Stopped; the server is down.")
        return 0
    except BaseException as err:  # noqa: BLE001 - every failure ends in a final event with one sentence
        _end(server)
        kind, message = classify_exception(err)
        if kind == "crashed" and isinstance(err, StudioError):
            kind, message = "config_error", str(err)
        else:
            message = message.replace("The trainer crashed", "The server crashed")
            traceback.print_exc()
        return write_failure(writer, kind, message)
    finally:
        writer.close()


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
