"""`studio config show`, `project`, `fix` and `chat`."""

from __future__ import annotations

import json
import sys

from engine import settings
from engine.cli.common import EXIT_OK, UsageError
from engine.store import projects


def config_command(args) -> int:
    if args.markdown:
        print(settings.markdown_table())
        return EXIT_OK
    rows = settings.rows()
    if args.json:
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    width = max(len(r["variable"]) for r in rows)
    for r in rows:
        value = "(unset)" if r["value"] in (None, "") else r["value"]
        print(f"{r['variable']:<{width}}  {value}  [{r['source']}]")
    return EXIT_OK


def project_command(args) -> int:
    if args.project_command == "create":
        project = projects.create_project(args.name, args.task, args.system_prompt)
        projects.use(project.name)
        print(f"Created project {project.name!r} (id {project.id}); it is the current project.")
        return EXIT_OK
    if args.project_command == "use":
        project = projects.use(args.name)
        print(f"The current project is {project.name!r}.")
        return EXIT_OK
    current = projects.current_name()
    rows = [{"id": p.id, "name": p.name, "task": p.task_type, "current": p.name == current}
            for p in projects.list_projects()]
    if args.json:
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    if not rows:
        print("No projects yet (studio project create NAME).")
    for r in rows:
        print(f"{'*' if r['current'] else ' '} {r['id']:>4}  {r['name']}  ({r['task']})")
    return EXIT_OK


def fix_command(args) -> int:
    from engine.data import fixes, versions
    from engine.data.quality import DEFAULT_MAX_LENGTH, CheckOptions, report_for_version

    version = versions.get_version(args.version)
    tokenizer = str(args.tokenizer) if args.tokenizer else None
    report = report_for_version(version, CheckOptions(max_length=args.max_length or DEFAULT_MAX_LENGTH,
                                                      tokenizer=tokenizer))
    offered = fixes.offered(report)
    if not args.fix_id:
        rows = [{"fix": fix_id, "label": label, "finding": finding.code, "records": finding.count}
                for fix_id, (label, finding) in offered.items()]
        if args.json:
            print(json.dumps(rows, indent=2))
        elif not rows:
            print(f"The report of version {version.id} offers no fix.")
        for r in [] if args.json else rows:
            print(f"{r['fix']:<28} {r['label']} ({r['finding']}, {r['records']:,} records)")
        return EXIT_OK
    if args.fix_id not in offered:
        raise UsageError(f"The report of version {version.id} offers no fix {args.fix_id!r}; `studio fix "
                         f"{version.id}` lists those it offers.")
    params: dict = {}
    if args.fix_id == "set_system_prompt":
        if not (args.prompt or "").strip():
            raise UsageError("set_system_prompt needs --prompt TEXT.")
        params = {"prompt": args.prompt}
    elif args.fix_id == "truncate_too_long":
        params = {"max_length": report.stats.get("max_length"), "tokenizer": tokenizer}
    child = fixes.apply_fix(version, report, args.fix_id, **params)
    if args.json:
        print(json.dumps({"version": child.id, "number": child.version, "records": child.records,
                          "removed": child.removed}))
    else:
        print(f"Created version {child.id} (v{child.version} of its dataset: {child.records:,} records, "
              f"{child.removed:,} removed in all).")
    return EXIT_OK


def chat_command(args) -> int:
    from engine.evaluate import playground
    from engine.jobs import supervisor

    run_id = _run_of(args.model)
    system = args.system if args.system is not None else playground.default_system(supervisor.get_run(run_id))
    prompts = [args.prompt] if args.prompt is not None else [line.rstrip("\n") for line in sys.stdin if line.strip()]
    for prompt in prompts:
        answers: dict[str, dict] = {}
        shown = {side: 0 for side in playground.SIDES}
        for side, text, stats in playground.stream(run_id, prompt, system, args.max_new_tokens):
            if not args.json:
                if shown[side] == 0 and text:
                    print(f"--- {'base model' if side == 'base' else 'fine-tuned'} ---", flush=True)
                print(text[shown[side]:], end="", flush=True)
                shown[side] = len(text)
            if stats:
                answers[side] = {"text": text, **stats}
                if not args.json:
                    print(f"\n({stats['new_tokens']} tokens in {stats['seconds']:.1f} s)", flush=True)
        if args.json:
            print(json.dumps({"prompt": prompt, **answers}, ensure_ascii=False), flush=True)
    return EXIT_OK


def _run_of(ref: str) -> int:
    """A run id, or the run a model version was registered from."""
    if ref.isdigit():
        return int(ref)
    from engine.models import registry

    return registry.get_version(ref).run_id
