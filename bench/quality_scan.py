"""Benchmark: the full quality check on generated chat data, at 10k and 100k examples, and on adversarial records,
in the same run.

Budgets (issue 2): 100,000 examples (~3 turns, ~150 tokens each) in at most 30 s on 2 cores with at most 2 GB peak
memory, and time(100k) / time(10k) at most 12. Each size runs in its own process, so its peak memory (max RSS) is its
own; the time is the wall time of `check_file` (read, normalize, every check, stats).

The floor (issue 10): in the same process, the same file read line by line with json.loads and every message
tokenized with the same tokenizer (encode_batch_fast, both cores): the least any check that counts tokens must do.
Budget: the check at most 1.5x its floor at 100,000 examples.

Adversarial (issue 9): a file whose records are single lines of 1 MB and 10 MB, built from the shapes that make
pattern scans backtrack (long runs of letters and digits, of digits and dashes, of dotted numbers, of colons and
hex, of at signs, of one digit, of digit groups between spaces, keywords, whitespace), against the same number of bytes spread over normal records:
at most 3x the time, and a peak memory of at most 10x the file size (the peak above the process's memory after the
checks' models are loaded, which does not depend on the data, is printed too).

    .venv/bin/python bench/quality_scan.py [--sizes 10000,100000] [--adversarial-mb 1x20,10x8]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORDS = ("order delivery refund return parcel courier invoice account password warranty table sofa lamp chair "
         "kettle rug shelf desk mug vase knife skillet grinder frame wardrobe curtain pillow stool rack toaster "
         "city week day hour minute price discount coupon payment card bank email phone address label box photo "
         "damage crack scratch replacement repair colour size stock store tracking link page button form team "
         "please thanks hello sorry help check send open choose enter print follow update cancel change arrive "
         "ship reach pack wait need want like know think find bring keep give take make tell ask show try "
         "the a an to of in on for with from at by about after before within under over and or but if when "
         "your our my their this that these those it we you they is are was be will can should may").split()


def conversation(rng: random.Random, i: int) -> dict:
    def sentence(n: int) -> str:
        words = [rng.choice(WORDS) for _ in range(n)]
        return " ".join(words).capitalize() + f" (ref {rng.randint(10000, 99999)})."

    return {"messages": [
        {"role": "system", "content": "You are the support assistant of a home goods shop. Be brief and precise."},
        {"role": "user", "content": f"Ticket {i}: " + sentence(rng.randint(8, 14))},
        {"role": "assistant", "content": sentence(rng.randint(16, 24)) + " " + sentence(rng.randint(5, 10))},
    ]}


def write_data(path: Path, n: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as f:
        for i in range(n):
            f.write(json.dumps(conversation(rng, i)) + "\n")


def hostile_text(n_chars: int, seed: int) -> str:
    """Text made of the runs that make naive patterns backtrack (see the module docstring)."""
    rng = random.Random(seed)
    makers = [
        lambda: "".join(rng.choice("abcdef0123456789") for _ in range(20000)),
        lambda: "-".join(str(rng.randint(100, 9999)) for _ in range(4000)),
        lambda: ".".join(str(rng.randint(0, 255)) for _ in range(5000)),
        lambda: ":".join(f"{rng.randint(0, 65535):x}" for _ in range(4000)),
        lambda: "@".join("x" * rng.randint(1, 5) for _ in range(5000)),
        lambda: " ".join(rng.choice(["the", "order", "refund", "password:", "token=", "{{", "}}", "[your", "as an ai"])
                         for _ in range(4000)),
        lambda: "9" * 20000,
        lambda: " ".join(str(rng.randint(0, 99)) for _ in range(6000)),  # digit groups: phone-number candidates
        lambda: " " * 5000 + "a" * 20000,
    ]
    parts, size = [], 0
    while size < n_chars:
        part = rng.choice(makers)()
        parts.append(part)
        size += len(part) + 1
    return " ".join(parts)[:n_chars]


def write_adversarial(path: Path, sizes_mb: list[float]) -> None:
    with path.open("w", encoding="utf-8") as f:
        for i, mb in enumerate(sizes_mb):
            f.write(json.dumps({"messages": [{"role": "user", "content": f"Question {i}: what does this log say?"},
                                             {"role": "assistant", "content": hostile_text(int(mb * 1e6), i)}]})
                    + "\n")


def write_normal_bytes(path: Path, n_bytes: int, seed: int = 1) -> int:
    """Normal conversations until the file holds n_bytes; returns how many records."""
    rng = random.Random(seed)
    written = i = 0
    with path.open("w", encoding="utf-8") as f:
        while written < n_bytes:
            line = json.dumps(conversation(rng, i)) + "\n"
            f.write(line)
            written += len(line.encode())
            i += 1
    return i


def floor_seconds(path: Path, counter) -> float:
    """Read every record and tokenize every message: the floor of a check that counts tokens."""
    start = time.perf_counter()
    texts = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            texts += [m["content"] for m in json.loads(line)["messages"]]
    counter.tokenizer.encode_batch_fast(texts, add_special_tokens=False)
    return time.perf_counter() - start


def measure(path: str) -> None:
    """Child process: run the check once and print its figures as JSON."""
    from engine.data.checks import language
    from engine.data.quality import check_file
    from engine.data.tokens import load_counter

    counter = load_counter(None)  # the fixed cost of the models, before the data: the memory baseline
    language._fasttext()
    base_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    report = check_file(Path(path))
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # the check's own (the floor comes after)
    helper_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # the forked helper (shares pages)
    floor = floor_seconds(Path(path), counter)
    stats = report.stats
    print(json.dumps({"seconds": seconds, "floor": floor, "peak_mb": peak_mb, "helper_mb": helper_mb, "base_mb": base_mb,
                      "records": report.records,
                      "median_tokens": stats["tokens_per_example"]["median"],
                      "warnings": {f.code: f.count for f in report.warnings}}))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--adversarial-mb", default="1x20,10x8",
                        help="record sizes in MB as SIZExCOUNT pairs (default: 20 of 1 MB and 8 of 10 MB)")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        measure(args.measure)
        return 0
    sizes = [int(s) for s in args.sizes.split(",")]
    home = Path(os.environ.setdefault("STUDIO_HOME", tempfile.mkdtemp(prefix="studio-bench-")))
    data_dir = home / "bench"
    data_dir.mkdir(parents=True, exist_ok=True)
    # Warm-up: builds the default tokenizer once so neither size pays for it.
    warm = data_dir / "warm.jsonl"
    write_data(warm, 50)
    subprocess.run([sys.executable, __file__, "--measure", str(warm)], check=True, capture_output=True)
    results = {}
    for n in sizes:
        path = data_dir / f"chat-{n}.jsonl"
        write_data(path, n)
        out = subprocess.run([sys.executable, __file__, "--measure", str(path)], check=True, capture_output=True,
                             text=True, env={**os.environ, "STUDIO_HOME": str(home)})
        results[n] = json.loads(out.stdout.strip().splitlines()[-1])
        r = results[n]
        print(f"{n:>7,} examples ({path.stat().st_size / 1e6:.0f} MB, median {r['median_tokens']:.0f} tokens): "
              f"{r['seconds']:.2f} s, peak {r['peak_mb']:.0f} MB, {n / r['seconds']:,.0f} examples/s; floor "
              f"(read + tokenize every message) {r['floor']:.2f} s, check / floor = {r['seconds'] / r['floor']:.2f}")
    if len(sizes) >= 2:
        small, big = sizes[0], sizes[-1]
        ratio = results[big]["seconds"] / results[small]["seconds"]
        print(f"time({big:,}) / time({small:,}) = {ratio:.2f} (linear would be {big / small:.0f}; budget 12)")
    big = results[sizes[-1]]
    print(f"findings at {sizes[-1]:,}: {big['warnings'] or 'none'}")
    print(f"budget check at {sizes[-1]:,}: {big['seconds']:.1f} s of 30 s, {big['peak_mb']:.0f} MB of 2048 MB (the "
          f"helper process that checks personal data, secrets and languages meanwhile: {big['helper_mb']:.0f} MB, "
          "mostly pages shared with the first), "
          f"{big['seconds'] / big['floor']:.2f}x the floor (budget 1.5)")
    if args.adversarial_mb:
        adversarial(data_dir, home, args.adversarial_mb)
    return 0


def run_measure(path: Path, home: Path) -> dict:
    out = subprocess.run([sys.executable, __file__, "--measure", str(path)], check=True, capture_output=True,
                         text=True, env={**os.environ, "STUDIO_HOME": str(home)})
    return json.loads(out.stdout.strip().splitlines()[-1])


def adversarial(data_dir: Path, home: Path, spec: str) -> None:
    sizes = [float(size) for pair in spec.split(",") for size, count in [pair.split("x")] for _ in range(int(count))]
    hostile = data_dir / "adversarial.jsonl"
    write_adversarial(hostile, sizes)
    n_bytes = hostile.stat().st_size
    normal = data_dir / "adversarial-baseline.jsonl"
    n_normal = write_normal_bytes(normal, n_bytes)
    base = run_measure(normal, home)
    bad = run_measure(hostile, home)
    mb = n_bytes / 1e6
    print(f"adversarial: {len(sizes)} single-line records ({spec} MB), {mb:.0f} MB: {bad['seconds']:.2f} s, peak "
          f"{bad['peak_mb']:.0f} MB ({bad['peak_mb'] - bad['base_mb']:.0f} MB above the {bad['base_mb']:.0f} MB of "
          f"the loaded models)")
    print(f"baseline: the same {mb:.0f} MB as {n_normal:,} normal records: {base['seconds']:.2f} s, peak "
          f"{base['peak_mb']:.0f} MB")
    print(f"adversarial / baseline time = {bad['seconds'] / base['seconds']:.2f} (budget 3); peak memory / file size = "
          f"{bad['peak_mb'] / mb:.1f}x (budget 10x; {(bad['peak_mb'] - bad['base_mb']) / mb:.1f}x above the models); "
          f"peak memory adversarial / baseline = {bad['peak_mb'] / base['peak_mb']:.2f}")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    sys.exit(main())
