"""`studio check`, `split`, `versions`, `export`, `sample` and `demo-model`: data files in, reports and splits out."""

from __future__ import annotations

import json
from typing import Any

from engine.cli.common import EXIT_BLOCKING, EXIT_OK, UsageError
from engine.data import split, versions
from engine.data.loading import parse_mapping
from engine.data.quality import CheckOptions, check_file, describe_format
from engine.demo.model import build_demo_model
from engine.demo.sample import write_sample
from engine.store import projects

# What a location is called in each container, for the report's "lines: 3, 7" lists
LOCATION_WORD = {"jsonl": "line", "json": "record", "csv": "row", "tsv": "row", "parquet": "row"}


def _check_options(args):
    return CheckOptions(shape=args.shape, mapping=parse_mapping(args.mapping),
                        tokenizer=getattr(args, "tokenizer", None),
                        max_length=getattr(args, "max_length", 2048), task=getattr(args, "task", "chat"))


def check_command(args) -> int:
    if args.max_length < 1:
        raise UsageError("--max-length must be a positive number of tokens.")
    report = check_file(args.file, _check_options(args))
    if args.json:
        print(json.dumps(report.to_json(), indent=2, ensure_ascii=False))
    else:
        print(render_report(report))
    return EXIT_BLOCKING if report.blocking else EXIT_OK


def render_report(report) -> str:
    where = LOCATION_WORD.get(report.container, "record")
    out = [f"{report.file}: {report.records:,} records, {describe_format(report.format)} ({report.container})"]
    mapping = report.stats.get("mapping")
    if mapping:
        cols = mapping["columns"]
        how = "detected from the column names; --map overrides" if mapping["detected"] else "as given"
        out.append("Columns: " + ", ".join(f"{k} = {v}" for k, v in cols.items()) + f" ({how})")
    if report.stats.get("encoding"):
        out.append(f"Encoding: {report.stats['encoding']} (read as such)")
    out.append(f"Verdict: {report.readiness['label']}")
    out += [f"  - {r}" for r in report.readiness["reasons"]]
    for title, findings in (("Errors (block training)", report.errors), ("Warnings", report.warnings)):
        out.append(f"\n{title}: {len(findings) or 'none'}")
        for f in findings:
            out.append(f"  [{f.code}] {f.message}")
            if f.locations:
                shown = ", ".join(str(x) for x in f.locations[:20])
                more = f" and {f.count - 20} more" if f.count > 20 else ""
                out.append(f"      {where}s: {shown}{more}")
            if f.fix:
                out.append(f"      fix: {f.fix.label}")
    s = report.stats
    if s.get("tokens_per_example"):
        t, a = s["tokens_per_example"], s["assistant_tokens_per_example"]
        out.append(f"\nTokens per example ({s['tokenizer']}): min {t['min']}, median {t['median']:g}, "
                   f"p95 {t['p95']:g}, max {t['max']}; assistant tokens median {a['median']:g}")
        out.append(f"Training tokens per epoch (at max length {s['max_length']}): "
                   f"{s['training_tokens_per_epoch']:,}")
    return "\n".join(out)


def split_command(args) -> int:
    ratios = split.parse_ratios(args.ratios)
    options = _check_options(args)
    project = projects.ensure_project(args.project)
    version = versions.import_file(project.id, args.file, args.file.name, shape=options.shape,
                                   mapping=options.mapping)
    made = split.create_split(version, ratios, args.seed, copy_to=args.out)
    result: dict[str, Any] = {"out": str(args.out), "dataset_version": version.id, "split": made.id, "counts": made.counts,
              "overlap": made.overlap, "test_sha256": made.test_sha256, "locked": True}
    status = EXIT_OK
    if args.test:
        result["contamination"] = split.check_test_file(made, args.test)
        if not result["contamination"]["clean"]:
            status = EXIT_BLOCKING
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        c, o = made.counts, made.overlap
        print(f"Split {args.file.name} into train {c['train']}, validation {c['validation']}, test {c['test']} "
              f"(seed {args.seed}) in {args.out}.")
        print(f"Overlap with train: test {o['exact']} exact / {o['near']} near, validation "
              f"{o['validation_exact']} exact / {o['validation_near']} near. The test split is locked.")
        if o.get("kept_in_test"):
            print(f"Kept {o['kept_in_test']} records on the test side: they are copies or near copies of this "
                  "project's locked test records (from the versions this one derives from), so the locked test set "
                  "stays locked.")
        if args.test:
            ct = result["contamination"]
            print(f"Your test file ({ct['test_records']} records): {len(ct['exact'])} exact copies, "
                  f"{len(ct['near'])} near copies and {len(ct['ngram13'])} records sharing a 13-word sequence "
                  "with train." + (" Clean." if ct["clean"] else f" Contaminated: {ct['exact'] + ct['near']}"))
    return status


def demo_model_command(args) -> int:
    out = build_demo_model(args.dir, pretrain_steps=args.pretrain_steps,
                           progress=None if args.quiet else lambda line: print(line, flush=True))
    print(f"Built the demo model in {out}.")
    return EXIT_OK


def sample_command(args) -> int:
    write_sample(args.file)
    print(f"Wrote the sample dataset to {args.file}.")
    return EXIT_OK


def versions_command(args) -> int:
    chosen = [projects.find_project(args.project)] if args.project else projects.list_projects()
    rows = [{"id": v.id, "project": p.name, "version": v.version, "name": v.name, "records": v.records,
             "parent_id": v.parent_id, "sha256": v.sha256} for p in chosen for v in versions.list_versions(p.id)]
    if args.json:
        print(json.dumps(rows, indent=2))
    elif not rows:
        print("No dataset versions yet.")
    else:
        for r in rows:
            print(f"{r['id']:>4}  {r['project']:<20} v{r['version']:<3} {r['records']:>8,} records  {r['name']}")
    return EXIT_OK


def export_command(args) -> int:
    version = versions.get_version(args.version)
    out = args.out.resolve()
    if out.exists() and (out.is_dir() and any(out.iterdir()) or out.is_file()):
        raise UsageError(f"{out} already exists; choose a new path.")
    if args.format == "jsonl":
        versions.export_jsonl(version, out)
    else:
        versions.export_hf_dataset(version, out)
    print(f"Wrote version {version.id} (v{version.version} of {version.name}) to {out}.")
    return EXIT_OK
