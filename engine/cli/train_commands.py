"""`studio train`, `runs`, `cancel` and `resume`: training runs from the command line, followed until they end."""

from __future__ import annotations

import json
import sys
import time

from engine.cli.common import EXIT_BLOCKING, EXIT_OK, EXIT_UNUSABLE, UsageError
from engine.jobs import event_log, supervisor
from engine.store.projects import find_project
from engine.train import launcher


def base_command(args) -> int:
    from engine.train import base_models, recommend

    if args.base_command == "list":
        rows = [b.to_dict() for b in base_models.list_bases()]
        if args.json:
            print(json.dumps(rows, indent=2))
        elif not rows:
            print("No imported base models yet (studio base add FILE.gguf).")
        for r in [] if args.json else rows:
            size = f"{r['parameters'] / 1e6:,.1f}M" if r["parameters"] else "?"
            print(f"{r['source']}  {size} parameters  license {r['license'] or '?'}  sha256 {r['sha256'][:12]}  "
                  f"chat template {'yes' if r['chat_template'] else 'no (the default is used)'}\n  {r['folder']}")
        return EXIT_OK
    say = None if args.json else base_models.stage_lines(lambda line: print(line, file=sys.stderr, flush=True))
    resolved = base_models.resolve(args.model, progress=say)
    why = launcher.model_available(resolved.path)
    if why:
        print(why, file=sys.stderr)
        return EXIT_UNUSABLE
    facts = recommend.model_facts(resolved.path)
    record = base_models.record_of(resolved.path) or {}
    out = {"model": resolved.path, "note": resolved.note, "parameters": facts.params or None,
           "context": facts.context, "license": record.get("license", facts.license),
           "sha256": record.get("sha256"), "source": record.get("source", args.model)}
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        if resolved.note:
            print(resolved.note)
        print(f"Use it as --model {resolved.path}")
    return EXIT_OK


def train_command(args) -> int:
    from engine.cli import train_flags

    if args.config is not None and args.config_file is not None:
        raise UsageError("Give the run config once: as the argument or as --config, not both.")
    path = args.config_file or args.config
    if path is not None and path.is_dir():
        path = path / "config.json"  # a run folder: train again with its config
    file_values = train_flags.load_file(path) if path is not None else None
    overrides = train_flags.overrides(args)
    parent = overrides.get("parent_version") or (file_values or {}).get("parent_version")
    if parent and args.data and not args.model:  # the quick form from a registered version: its weights, merged
        from engine.models import lifecycle  # only runs that start from a version need the registry

        args.model = lifecycle.starting_weights(parent)
    run_config, project_id = launcher.resolve_config(file_values, args.model, args.data, args.project, overrides)
    if args.print_config:
        import yaml  # only this branch prints YAML

        print(yaml.safe_dump(run_config.model_dump(mode="json"), sort_keys=False).rstrip())
        return EXIT_OK
    if args.dry_run:
        run_dir = str(args.out or "RUN_DIR")
        command = launcher.trainer_command(run_config)
        print(" ".join(p.replace("{python}", sys.executable).replace("{run_dir}", run_dir) for p in command))
        if run_config.num_gpus > 1:
            import yaml  # only this branch prints YAML

            from engine.train import distributed

            print(f"# which writes {run_dir}/{distributed.CONFIG_NAME} and runs:")
            print(" ".join(distributed.accelerate_command(f"{run_dir}/{distributed.CONFIG_NAME}", run_dir)))
            print(f"# {distributed.CONFIG_NAME}:")
            print(yaml.safe_dump(distributed.cluster_config(run_config).to_dict(), sort_keys=True).rstrip())
        print(f"# time: {launcher.time_estimate(run_config, launcher.split_of(run_config)).sentence()}")
        return EXIT_OK
    run = launcher.launch_checked(run_config, project_id, run_dir=args.out)
    print(f"Run {run.id} ({run.status}) in {supervisor.run_path(run)}", flush=True)
    if args.detach:
        return EXIT_OK
    return _follow(run.id)


def _follow(run_id: int) -> int:
    """Print progress lines until the run ends; Ctrl-C cancels it (gracefully)."""
    shown = 0
    try:
        while True:
            supervisor.reconcile()
            run = supervisor.get_run(run_id)
            events = event_log.read_events(supervisor.run_path(run))
            for e in events[shown:]:
                if e["event"] == "log":
                    print(f"step {e['step']}/{e.get('max_steps') or '?'}  loss {e['loss']:.4f}  lr "
                          f"{e.get('learning_rate') or 0:.2e}", flush=True)
                elif e["event"] == "eval":
                    print(f"step {e['step']}  validation loss {e['eval_loss']:.4f}", flush=True)
            shown = len(events)
            if run.status not in supervisor.ACTIVE:
                break
            time.sleep(1)
    except KeyboardInterrupt:
        print("Cancelling (the trainer saves a checkpoint first)...", file=sys.stderr, flush=True)
        supervisor.cancel(run_id)
        run = supervisor.wait(run_id, timeout=supervisor.grace_seconds() + 5)
    print(f"Run {run.id} {run.status}" + (f": {run.error_message}" if run.error_message else "."))
    return EXIT_OK if run.status == "succeeded" else EXIT_BLOCKING


def runs_command(args) -> int:
    supervisor.reconcile()
    project_id = None
    if args.project:
        project_id = find_project(args.project).id
    rows = [{"id": r.id, "kind": r.kind, "name": r.name, "status": r.status, "step": r.step,
             "max_steps": r.max_steps, "error_kind": r.error_kind, "pid": r.pid, "backend": r.backend,
             "node": r.node}
            for r in supervisor.list_runs(project_id, kind=None)]
    if args.json:
        print(json.dumps(rows, indent=2))
    elif not rows:
        print("No runs yet.")
    else:
        print(f"{'id':>4}  {'kind':<5} {'status':<10} {'step':>11}  {'error':<12} {'pid':>7}  {'where':<16} name")
        for r in rows:
            step = f"{r['step']}/{r['max_steps'] or '?'}" if r["kind"] == "train" else f"{r['step']}%"
            where = "local" if r["backend"] == "local" else f"ray {r['node'] or ''}".strip()
            print(f"{r['id']:>4}  {r['kind']:<5} {r['status']:<10} {step:>11}  {r['error_kind'] or '':<12} "
                  f"{r['pid'] or '':>7}  {where:<16} {r['name']}")
    return EXIT_OK


def cancel_command(args) -> int:
    run = supervisor.cancel(args.run)
    if run.status in supervisor.ACTIVE:
        run = supervisor.wait(args.run, timeout=supervisor.grace_seconds() + 5)
    print(f"Run {run.id} is {run.status}.")
    return EXIT_OK


def resume_command(args) -> int:
    run = supervisor.resume(args.run)
    print(f"Run {run.id} is {run.status}; it continues from its last complete checkpoint.")
    return EXIT_OK
