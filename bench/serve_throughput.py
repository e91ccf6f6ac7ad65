"""Benchmark: a served model (`transformers serve`, the CPU serving engine, one request at a time as a client sends
them) against the studio's own batched generation on the same prompts, in the same run: generated tokens per second
of each and the ratio, plus the server's start-up time and its latency p50/p95. On a GPU machine with vLLM installed,
pass --engine vllm to measure vLLM instead (with concurrent requests: --concurrency 16).

    .venv/bin/python bench/serve_throughput.py [--prompts 64] [--max-new-tokens 64] [--engine transformers]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--engine", choices=["transformers", "vllm"], default="transformers")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--model", type=Path, help="a model folder (default: the demo model, built here)")
    args = parser.parse_args()
    os.environ.setdefault("STUDIO_HOME", tempfile.mkdtemp(prefix="studio-serve-bench-"))
    from engine.demo import sample
    from engine.demo.model import build_demo_model
    from engine.evaluate import generation
    from engine.models import serving

    model_dir = args.model or build_demo_model(Path(os.environ["STUDIO_HOME"]) / "demo-model")
    prompts = [generation.prompt_of(r["messages"]) for r in sample.generate(args.prompts, seed=11)]

    model, tokenizer = generation.load(str(model_dir))
    began = time.perf_counter()
    answers = generation.generate(model, tokenizer, prompts, batch_size=16, max_new_tokens=args.max_new_tokens)
    batched_s = time.perf_counter() - began
    batched_tps = sum(a.new_tokens for a in answers) / batched_s
    del model

    options = serving.ServeOptions(version_id=0, label=Path(model_dir).name, engine=args.engine,
                                   port=free_port(), max_new_tokens=args.max_new_tokens)
    command = serving.server_command(options, Path(model_dir).resolve())
    started = time.perf_counter()
    server = subprocess.Popen(command, cwd=Path(model_dir).resolve().parent, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{options.port}"
    try:
        serving.wait_healthy(url, lambda: server.poll() is None, timeout=300)
        startup_s = time.perf_counter() - started
        serving.chat(url, options.label, prompts[0], 4)  # the first request loads what is lazy
        began = time.perf_counter()
        with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
            done = list(pool.map(lambda p: serving.chat(url, options.label, p, args.max_new_tokens), prompts))
        served_s = time.perf_counter() - began
    finally:
        server.terminate()
        server.wait(timeout=30)
    tokens = sum(len(tokenizer(text, add_special_tokens=False)["input_ids"]) for text, _ in done)
    latencies = sorted(seconds for _, seconds in done)
    served_tps = tokens / served_s
    print(f"prompts {len(prompts)}, max new tokens {args.max_new_tokens}, engine {args.engine}, "
          f"concurrency {args.concurrency}")
    print(f"studio batched generation (batch 16): {batched_tps:,.0f} tokens/s ({batched_s:.2f} s)")
    print(f"served ({args.engine}): {served_tps:,.0f} tokens/s ({served_s:.2f} s); start-up {startup_s:.1f} s; "
          f"latency p50 {latencies[len(latencies) // 2]:.3f} s, p95 {latencies[int(0.95 * (len(latencies) - 1))]:.3f} s")
    print(f"ratio served / batched: {served_tps / batched_tps:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
