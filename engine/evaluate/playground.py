"""Playground: one prompt, the base model's and the fine-tuned model's answers, streamed as they are generated.

    stream(run_id, prompt, system=None, max_new_tokens=256) -> iterator of (side, text so far)

The models load in a separate process (`python -m engine.evaluate.playground`, the request on its stdin), never in the
dashboard's: it prints one JSON line per decoded piece, {"side": "base" | "finetuned", "delta": text}, then
{"side", "done": true, "new_tokens", "seconds"} for each side. Closing the iterator (the user leaves the page) kills
the process. The base answer comes first, then the fine-tuned one: both models share one loaded base (the adapter is
switched off for the base answer), so a large model is loaded once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path

from engine.errors import StudioError
from engine.evaluate import comparison
from engine.jobs import supervisor
from engine.store import workspace

SIDES = ("base", "finetuned")


class PlaygroundError(StudioError, ValueError):
    pass


def default_system(run) -> str:
    """The system prompt the run was trained with (its first training example's), or ""."""
    try:
        first = comparison.split_part(run, "train", 1)[0]
    except comparison.EvalError:
        return ""
    return next((m["content"] for m in first if m["role"] == "system"), "")


def stream(run_id: int, prompt: str, system: str | None = None, max_new_tokens: int = 256,
           timeout: float = 600.0) -> Iterator[tuple[str, str, dict]]:
    """(side, that side's text so far, stats once the side is done else {}) as the answers are generated."""
    if not prompt.strip():
        raise PlaygroundError("Write a prompt first.")
    run, final = comparison.check_run(run_id)
    messages = ([{"role": "system", "content": system}] if system and system.strip() else []) + \
        [{"role": "user", "content": prompt}]
    ws = workspace.current()
    logs = ws.root / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **ws.library_env(), "STUDIO_HOME": str(ws.root), "TMPDIR": str(ws.tmp),
           "TOKENIZERS_PARALLELISM": "false"}
    request = {"base_model": run.config["base_model"], "adapter": str(final), "messages": messages,
               "max_new_tokens": int(max_new_tokens)}
    with (logs / "playground.log").open("ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "engine.evaluate.playground"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=log, env=env, cwd=supervisor.run_path(run),
                                start_new_session=True)
    texts = {side: "" for side in SIDES}
    deadline = time.monotonic() + timeout
    assert proc.stdin is not None and proc.stdout is not None  # both are pipes
    try:
        proc.stdin.write(json.dumps(request).encode("utf-8"))
        proc.stdin.close()
        for raw in proc.stdout:
            event = json.loads(raw)
            if "error" in event:
                raise PlaygroundError(event["error"])
            side = event["side"]
            if event.get("done"):
                yield side, texts[side], {k: event[k] for k in ("new_tokens", "seconds")}
            else:
                texts[side] += event["delta"]
                yield side, texts[side], {}
            if time.monotonic() > deadline:
                raise PlaygroundError(f"The answers took longer than {timeout:g} s and were stopped.")
        if proc.wait() != 0:
            raise PlaygroundError(f"The playground process stopped (exit status {proc.returncode}); see "
                                  f"{logs / 'playground.log'}.")
    finally:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            proc.wait()


def _emit(**event) -> None:
    sys.stdout.write(json.dumps(event, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def main() -> int:
    request = json.loads(sys.stdin.read())
    try:
        import torch  # the ML stack loads in seconds: only jobs that train or generate import it
        from transformers.generation.streamers import TextStreamer  # heavy: loaded on first use

        from engine.evaluate import generation  # the worker process only: generation brings torch
        from engine.store.workspace import apply_library_env, current  # (with the worker's other imports)

        apply_library_env(current())

        class LineStreamer(TextStreamer):
            def __init__(self, tokenizer, side: str):
                super().__init__(tokenizer, skip_prompt=True, skip_special_tokens=True)
                self.side = side
                self.count = 0

            def put(self, value):
                if not self.next_tokens_are_prompt:
                    self.count += int(value.numel())
                super().put(value)

            def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
                if text:
                    _emit(side=self.side, delta=text)

        from engine.data.chat_template import ModelTemplate, template_messages

        model, tokenizer = generation.load(request["base_model"], Path(request["adapter"]))
        template = ModelTemplate.from_transformers(tokenizer)  # a template without a system role gets it folded
        text = template.render(template_messages(request["messages"], template), add_generation_prompt=True)
        enc = tokenizer(text, return_tensors="pt", add_special_tokens=False).to(model.device)
        for side in SIDES:
            if side == "base" and not hasattr(model, "disable_adapter"):  # a full fine-tune: load the base itself
                base, _ = generation.load(request["base_model"])
                context, target = _nullcontext(), base
            elif side == "base":
                context, target = model.disable_adapter(), model
            else:
                context, target = _nullcontext(), model
            streamer = LineStreamer(tokenizer, side)
            began = time.perf_counter()
            with context, torch.no_grad():
                target.generate(**enc, max_new_tokens=request["max_new_tokens"], do_sample=False,
                                pad_token_id=tokenizer.pad_token_id, streamer=streamer)
            _emit(side=side, done=True, new_tokens=streamer.count, seconds=round(time.perf_counter() - began, 3))
        return 0
    except Exception as err:  # noqa: BLE001 - one sentence back to the page; the details go to the log

        traceback.print_exc()
        _emit(error=f"The models could not answer: {type(err).__name__}: {str(err)[:200]}")
        return 1


def _nullcontext():

    return nullcontext()


if __name__ == "__main__":
    sys.exit(main())
