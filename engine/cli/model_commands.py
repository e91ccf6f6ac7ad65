"""`studio models`, `studio model register|promote|rollback|show|card|export` and `studio serve`: the model registry
from the command line."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from engine.cli.common import EXIT_BLOCKING, EXIT_OK
from engine.jobs import supervisor
from engine.models import card, evidence, export, lifecycle, registry, serve_status, serving
from engine.models.stages import PromotionBlocked
from engine.store import projects, users


def models_command(args) -> int:
    project_id = projects.find_project(args.project).id if args.project else None
    rows = [registry.summary_row(v) for v in registry.list_versions(project_id)]
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
    elif not rows:
        print("No model versions yet: `studio model register RUN` makes one from a succeeded run.")
    else:
        for r in rows:
            primary = next(iter(r["metrics"].items()), None)
            shown = f"{primary[0]} {primary[1]['finetuned']:.3f} ({primary[1]['verdict']})" if primary else "-"
            print(f"{r['version']:<40} {r['stage']:<10} run {r['run_id']:<5} {shown}")
    return EXIT_OK


def model_command(args) -> int:
    return {"register": _register, "promote": _promote, "rollback": _rollback, "show": _show, "card": _card,
            "export": _export}[args.model_command](args)


def _register(args) -> int:
    version = lifecycle.register(users.SYSTEM, args.run, args.name, args.number)
    print(f"Registered run {args.run} as {version.label} ({version.bump_reason}); stage candidate.")
    return EXIT_OK


def _promote(args) -> int:
    try:
        version = lifecycle.promote(users.SYSTEM, args.version, args.to, args.reason, args.override)
    except PromotionBlocked as blocked:
        print(f"studio: {registry.get_version(args.version).label} cannot go to production; missing evidence:",
              file=sys.stderr)
        for line in blocked.missing:
            print(f"  - {line}", file=sys.stderr)
        print("An administrator may override: --override --reason \"why\".", file=sys.stderr)
        return EXIT_BLOCKING
    print(f"{version.label} is now in {version.stage}.")
    return EXIT_OK


def _rollback(args) -> int:
    version = lifecycle.rollback(users.SYSTEM, projects.find_project(args.project).id, args.reason)
    print(f"Rolled back: {version.label} is in production again.")
    return EXIT_OK


def _show(args) -> int:
    version = registry.get_version(args.version)
    found = evidence.for_production(version) if version.stage != "production" else None
    audit: list[dict[str, Any]] = [{"at": e.at.isoformat(), "kind": e.kind, "actor": e.actor, "from": e.from_stage, "to": e.to_stage,
              "reason": e.reason, "override": e.override} for e in registry.events(version.id)]
    if args.json:
        print(json.dumps({**registry.summary_row(version), "lineage": registry.current_lineage(version),
                          "evidence": found.to_json() if found else None, "audit": audit}, indent=2, default=str))
        return EXIT_OK
    print(f"{version.label}: {version.stage}, from run {version.run_id} ({version.bump_reason}).")
    if found is not None:
        print("Evidence for production:" + ("" if found.ok else " (missing)"))
        for c in found.checks:
            print(f"  [{'ok' if c.ok else 'no'}] {c.sentence}")
    print("Audit log:")
    for a in audit:
        change = f"{a['from'] or '-'} -> {a['to']}" if a["to"] else a["kind"]
        print(f"  {a['at'][:19]}  {a['actor']:<16} {change}" + (" (override)" if a["override"] else "")
              + (f": {a['reason']}" if a["reason"] else ""))
    return EXIT_OK


def _card(args) -> int:
    sys.stdout.write(card.render(registry.get_version(args.version)))
    return EXIT_OK


def _export(args) -> int:
    out = export.export(users.SYSTEM, args.version, args.format, args.out)
    print(f"Exported {registry.get_version(args.version).label} ({args.format}) to {out}, with its model card.")
    return EXIT_OK


def serve_command(args) -> int:
    job = serving.serve(users.SYSTEM, args.version, args.port, args.engine, args.host, args.smoke_examples,
                        api_key_env=args.api_key_env, request_timeout_s=args.request_timeout)
    print(f"Serving job {job.id} ({job.status}); stop it with `studio cancel {job.id}`.", flush=True)
    if args.detach:
        return EXIT_OK
    try:
        shown = False
        while True:
            supervisor.reconcile()
            job = supervisor.get_run(job.id)
            status = serve_status.status_of(job)
            if status.url and not shown:
                print(f"Serving at {status.url} (model {status.model}). {status.smoke} Ctrl-C stops it.\n"
                      f"Call it:\n{status.call}", flush=True)
                shown = True
            if job.status not in supervisor.ACTIVE:
                break
            time.sleep(1)
    except KeyboardInterrupt:
        job = supervisor.wait(supervisor.cancel(job.id).id, timeout=supervisor.grace_seconds() + 20)
    print(f"Serving job {job.id} {job.status}" + (f": {job.error_message}" if job.error_message else "."))
    return EXIT_OK if job.status in ("cancelled", "succeeded") else EXIT_BLOCKING
