"""`studio monitor import|watch|report|corrections|retrain`: production logs in, what they say, reviewers' corrections
of low-rated answers, and retraining on drift."""

from __future__ import annotations

import json
import sys

from engine.cli.common import EXIT_OK, UsageError
from engine.monitor import feedback, ingest, report, retrain, watch
from engine.review import corrections
from engine.store import projects, users


def monitor_command(args) -> int:
    return {"import": _import, "watch": _watch, "report": _report, "corrections": _corrections,
            "retrain": _retrain}[args.monitor_command](args)


def _project_id(args, create: bool) -> int:
    return (projects.ensure_project(args.project) if create else projects.find_project(args.project)).id


def _import(args) -> int:
    result = ingest.import_log(_project_id(args, True), args.log, args.model, ingest.parse_mapping(args.mapping))
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
    else:
        print(result.summary())
        for line in result.bad_lines:
            print(f"  {line}", file=sys.stderr)
    return EXIT_OK


def _watch(args) -> int:
    print(f"Watching {args.folder} every {args.interval:g} s (Ctrl-C stops).", flush=True)
    try:
        watch.watch(_project_id(args, True), args.folder, args.interval, args.model,
                    ingest.parse_mapping(args.mapping), say=lambda line: print(line, flush=True))
    except KeyboardInterrupt:
        pass
    return EXIT_OK


def _report(args) -> int:
    found = report.report(_project_id(args, False), args.model, args.window_days)
    if args.json:
        print(json.dumps({k: v for k, v in found.items() if k != "daily"} | {"daily": found["daily"]}, indent=2,
                         default=str))
        return EXIT_OK
    print(render(found))
    return EXIT_OK


def render(r) -> str:
    lat, err, sat, d = r["latency"], r["error_rate"], r["satisfaction"], r["drift"]
    lines = [f"{r['model']}: {r['requests']:,} requests from {r['window']['start'][:19]} to {r['window']['end'][:19]}"]
    if lat["mean"] is not None:
        lines.append(f"  latency mean {lat['mean']:.0f} ms, p95 {lat['p95']:.0f} ms")
    if err:
        lines.append(f"  error rate {err['value']:.2%} [{err['ci_low']:.2%}, {err['ci_high']:.2%}]")
    if sat:
        lines.append(f"  satisfaction ({sat['kind']}) {sat['value']:.3g} [{sat['ci_low']:.3g}, {sat['ci_high']:.3g}]")
    fallback, rule = r["fallback_rate"], r["routing"]
    if fallback:
        lines.append(f"  fallback rate {fallback['value']:.1%} [{fallback['ci_low']:.1%}, {fallback['ci_high']:.1%}]"
                     + (f" (routing rule: confidence < {rule['threshold']:g}; the evaluation expected "
                        f"{rule['expected']:.1%})" if rule else ""))
    if d:
        lines.append(f"  drift: {d['sentence']}")
        lines.append("  PSI " + ", ".join(f"{k} {v:.3f} (unchanged traffic: {d['noise'][k]:.3f})"
                                          for k, v in d["features"].items()))
    elif not r["registered"]:
        lines.append("  drift: not measured (not a registered model version: no training data to compare with)")
    lines += [f"  alert: {a['sentence']}" for a in r["alerts"]]
    lines.append("Retraining recommended: " + " ".join(r["reasons"]) if r["retrain_recommended"]
                 else "No retraining needed.")
    return "\n".join(lines)


def _corrections(args) -> int:
    names = [n.strip() for n in args.reviewers.split(",") if n.strip()]
    known = {u.name: u.id for u in users.list_users()}
    missing = [n for n in names if n not in known]
    if missing:
        raise UsageError(f"No such user: {', '.join(missing)} (add them with `studio users add`).")
    made = feedback.send_for_correction(users.SYSTEM, _project_id(args, False), args.model, [known[n] for n in names],
                                        args.limit, args.overlap)
    items = corrections.summary(users.SYSTEM, made.id)["items"]
    if args.json:
        print(json.dumps({"campaign": made.id, "items": items, "reviewers": names}, indent=2))
    else:
        print(f"Campaign {made.id}: {items} low-rated answers sent to {', '.join(names)}; their corrections go into "
              "the next retraining candidate.")
    return EXIT_OK


def _retrain(args) -> int:
    made = retrain.build(users.SYSTEM, _project_id(args, False), args.model, confirmed=args.yes)
    if args.json:
        print(json.dumps(made, indent=2))
    else:
        print(f"Retraining candidate for {made['model']}: {made['added_examples']} production examples added "
              f"({made['corrected_examples']} corrected by reviewers) "
              f"(drifted on {made['feature']}, {made['drift']:.2f}) as dataset version {made['dataset_version']} "
              f"(parent {made['parent_version']}); split {made['split']} keeps {made['kept_in_test']} locked test "
              f"records on the test side; run {made['run']} is queued and registers itself when it succeeds.")
    return EXIT_OK
