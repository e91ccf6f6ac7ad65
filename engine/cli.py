"""The `studio` command: the engine headless, with the same results as the dashboard.

    studio ui [--demo]                  the dashboard (--demo seeds the demo project and model first)
    studio check FILE [--json]          the quality report; exit 1 when the data has blocking errors
    studio split FILE --out DIR         a leakage-free split with a locked test part
    studio demo-model DIR               build the tiny offline demo model
    studio sample FILE                  write the built-in sample dataset

Exit codes: 0 ok, 1 the input has blocking problems, 2 the input could not be read or the command was misused.
Errors are one sentence on stderr, never a traceback (unexpected ones are logged to the workspace).
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import sys
import traceback
from pathlib import Path

EXIT_OK, EXIT_BLOCKING, EXIT_UNUSABLE = 0, 1, 2
LOCATION_WORD = {"jsonl": "line", "json": "record", "csv": "row", "tsv": "row", "parquet": "row"}


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    """argparse, but a misuse is one sentence (and exit 2) instead of a usage dump."""

    def error(self, message: str):
        self.exit(EXIT_UNUSABLE, f"{self.prog}: {message.rstrip('.')}. Run '{self.prog} --help' for usage.\n")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="studio", description="Finetune Studio: fine-tune open LLMs by the book.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    ui = sub.add_parser("ui", help="start the dashboard")
    ui.add_argument("--demo", action="store_true", help="seed the demo project, sample data and demo model first")
    ui.add_argument("--port", type=int, default=8501)
    ui.add_argument("--address", help="the interface to listen on (default 127.0.0.1: this machine only; 0.0.0.0 "
                                      "opens it to the network, put a TLS reverse proxy in front)")
    ui.add_argument("--headless", action="store_true", help="do not open a browser")

    def data_args(sp):
        sp.add_argument("file", type=Path)
        sp.add_argument("--format", dest="shape", help="record shape, when detection guesses wrong: openai, "
                        "sharegpt, sharegpt_preference, preference, alpaca, prompt_completion, input_output")
        sp.add_argument("--map", dest="mapping", metavar="prompt=COL,completion=COL[,system=COL]",
                        help="map columns (CSV/Parquet, or unknown keys) to the conversation")

    check = sub.add_parser("check", help="check a data file and print its quality report")
    data_args(check)
    check.add_argument("--json", action="store_true", help="machine-readable report (stable keys, see README)")
    check.add_argument("--tokenizer", help="model folder or tokenizer.json for token counts (default: demo model)")
    check.add_argument("--max-length", type=int, default=2048, help="training max length in tokens (default 2048)")
    check.add_argument("--task", default="chat", help="task type for the readiness verdict")

    split = sub.add_parser("split", help="split a data file into train/validation/test without leakage")
    data_args(split)
    split.add_argument("--out", type=Path, required=True, help="folder for train/validation/test.jsonl")
    split.add_argument("--ratios", default="0.8,0.1,0.1")
    split.add_argument("--seed", type=int, default=0)
    split.add_argument("--test", type=Path, help="your own test file: checked for contamination against train")
    split.add_argument("--project", default="default", help="project to register the dataset and split in")
    split.add_argument("--json", action="store_true")

    dm = sub.add_parser("demo-model", help="build the tiny demo model (offline, deterministic)")
    dm.add_argument("dir", type=Path)
    dm.add_argument("--pretrain-steps", type=int, default=300)
    dm.add_argument("--quiet", action="store_true", help="no progress lines")

    sample = sub.add_parser("sample", help="write the built-in sample dataset (JSONL)")
    sample.add_argument("file", type=Path)

    train = sub.add_parser("train", help="train in the foreground: from a config file, or quickly from a data file")
    train.add_argument("config", nargs="?", type=Path, help="a run config JSON (or a folder holding config.json)")
    train.add_argument("--model", help="quick form: base model folder or hub id")
    train.add_argument("--data", type=Path, help="quick form: a data file (registered and split like the wizard)")
    train.add_argument("--technique", help="quick form: lora, qlora, full, prompt_tuning, prefix_tuning (default: "
                                           "the recommendation for the model: full under 50M parameters, else lora)")
    train.add_argument("--max-steps", type=int, default=-1, help="quick form: stop after N steps")
    train.add_argument("--out", type=Path, help="quick form: the run folder (default: inside the workspace)")
    train.add_argument("--project", default="default")
    train.add_argument("--dry-run", action="store_true", help="print the trainer command and exit")
    train.add_argument("--detach", action="store_true", help="start (or queue) the run and return")

    ev = sub.add_parser("eval", help="compare a run with its base model on its locked test split")
    ev.add_argument("run", type=int, nargs="+", help="one run, or several (queued one after another)")
    ev.add_argument("--json", action="store_true")
    ev.add_argument("--limit", type=int, help="evaluate only the first N test examples")
    ev.add_argument("--max-new-tokens", type=int, default=128)
    ev.add_argument("--general", type=Path, help="your own general-skills set (chat JSONL) for the forgetting check")
    ev.add_argument("--baseline", default="base",
                    help='what the run is compared with: "base" (its base model, the default) or another run id '
                         "trained on the same split")
    ev.add_argument("--schema", type=Path, help="a JSON Schema file the answers should match (structured output)")
    ev.add_argument("--batch-size", type=int, default=16)
    ev.add_argument("--allow-weak-sandbox", action="store_true",
                    help="run code tests even without a real sandbox (bubblewrap or unshare); unsafe on shared machines")

    versions = sub.add_parser("versions", help="list dataset versions (the ids `studio export` takes)")
    versions.add_argument("--project", help="only this project's versions")
    versions.add_argument("--json", action="store_true")
    export = sub.add_parser("export", help="write a dataset version as OpenAI JSONL or a `datasets` folder")
    export.add_argument("version", type=int)
    export.add_argument("--format", choices=["jsonl", "hf"], default="jsonl")
    export.add_argument("--out", type=Path, required=True, help="the file (jsonl) or folder (hf) to write")

    users_p = sub.add_parser("users", help="local accounts: add or list users")
    users_sub = users_p.add_subparsers(dest="users_command", required=True)
    add = users_sub.add_parser("add", help="create a local account (the password is asked for)")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=["admin", "analyst", "reviewer"])
    add.add_argument("--email", help="also match this email when Streamlit's OIDC sign-in is configured")
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin (scripts)")
    users_sub.add_parser("list", help="list active users and their roles")
    unlock = users_sub.add_parser("unlock", help="clear an account's failed sign-ins (after a lockout)")
    unlock.add_argument("name")

    review_p = sub.add_parser("review", help="human review campaigns")
    review_sub = review_p.add_subparsers(dest="review_command", required=True)
    create = review_sub.add_parser("create", help="a review campaign over a run's stored evaluation outputs")
    create.add_argument("run", type=int)
    create.add_argument("--kind", choices=["rating", "pairwise"], default="rating")
    create.add_argument("--reviewers", required=True, help="comma-separated user names")
    create.add_argument("--sample", type=int, default=150, help="examples to review (default 150)")
    create.add_argument("--overlap", type=int, default=2, help="reviewers per item (default 2)")
    create.add_argument("--baseline", default="base", help='the evaluation to review: "base" or a run id')
    create.add_argument("--per-criterion", action="store_true", help="pairwise: also vote per criterion")
    create.add_argument("--gold", default="", help='known answers, e.g. "3:finetuned,7:tie" or "3:5"')
    create.add_argument("--name")
    create.add_argument("--seed", type=int, default=0)
    results = review_sub.add_parser("results", help="a campaign's statistics (ratings or pairwise)")
    results.add_argument("campaign", type=int)
    results.add_argument("--json", action="store_true")
    exp = review_sub.add_parser("export", help="a campaign's ratings as CSV or JSON (model names included)")
    exp.add_argument("campaign", type=int)
    exp.add_argument("--format", choices=["csv", "json"], default="csv")
    exp.add_argument("--out", type=Path, help="write to this file instead of stdout")

    ab_p = sub.add_parser("ab", help="A/B results")
    ab_sub = ab_p.add_subparsers(dest="ab_command", required=True)
    analyze = ab_sub.add_parser("analyze", help="analyze a production traffic log (CSV or JSONL)")
    analyze.add_argument("log", type=Path)
    analyze.add_argument("--split", type=float, required=True,
                         help="the planned share of traffic sent to the new model (e.g. 0.1)")
    analyze.add_argument("--treatment", help="the new model's variant name (default: detected)")
    analyze.add_argument("--primary", help="the metric to decide on (default: satisfaction, resolved, ...)")
    analyze.add_argument("--map", dest="mapping", metavar="variant=COL,user=COL,time=COL",
                         help="name the variant, user and time columns when their names are not the usual ones")
    analyze.add_argument("--json", action="store_true")

    db_p = sub.add_parser("db", help="back up or restore the workspace's SQLite database")
    db_sub = db_p.add_subparsers(dest="db_command", required=True)
    db_sub.add_parser("backup", help="a consistent copy in <workspace>/backups (the last 5 are kept)")
    restore = db_sub.add_parser("restore", help="put back the newest backup (or FILE); the current file is kept")
    restore.add_argument("file", nargs="?", type=Path)

    runs_p = sub.add_parser("runs", help="list runs (state reconciled with their processes)")
    runs_p.add_argument("--json", action="store_true")
    runs_p.add_argument("--project", help="only this project's runs")
    for name, text in (("cancel", "stop a run (it saves a checkpoint first)"),
                       ("resume", "continue a failed or cancelled run from its last checkpoint")):
        sp = sub.add_parser(name, help=text)
        sp.add_argument("run", type=int)
    return p


# Commands that only read: they never create a workspace, a database or a project.
READ_ONLY = {("runs",), ("versions",), ("review", "results"), ("review", "export"), ("users", "list")}


def _reads_only(args) -> bool:
    sub = getattr(args, f"{args.command}_command", None)
    return (args.command,) in READ_ONLY or (args.command, sub) in READ_ONLY


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from engine.store import workspace

    try:
        if _reads_only(args):
            workspace.existing()
            from engine.store import db

            db.read_only()
        workspace.apply_library_env(workspace.Workspace(workspace.root()))  # variables only: nothing is created
        return _COMMANDS[args.command](args)
    except KeyboardInterrupt:
        return 130
    except Exception as err:  # noqa: BLE001 - the boundary where every error becomes one sentence
        return _report_error(err, bool(getattr(args, "json", False)))


def _report_error(err: Exception, as_json: bool = False) -> int:
    """One sentence on stderr (and, for --json, {"error": sentence} on stdout) and exit 2, whatever went wrong;
    unexpected errors go to the workspace's error log (when even that cannot be written, the sentence says so)."""
    try:
        sentence = _explain(err)
    except Exception as inner:  # noqa: BLE001 - explaining must never end in a traceback
        sentence = f"unexpected error ({type(err).__name__}; {type(inner).__name__} while reporting it)."
    print(f"studio: {sentence}", file=sys.stderr)
    if as_json:
        print(json.dumps({"error": sentence}))
    return EXIT_UNUSABLE


def _explain(err: Exception) -> str:
    from engine.review.ab_traffic import TrafficError
    from engine.evaluate.comparison import EvalError
    from engine.data.fixes import FixError
    from engine.train.launcher import LaunchRefused
    from engine.store.projects import ProjectError
    from engine.data.readers import InputError
    from engine.review.campaigns import ReviewError
    from engine.train.config import ConfigError
    from engine.jobs.supervisor import RunError
    from engine.data.split import LockedTestError, SplitError
    from engine.data.tokens import TokenizerError
    from engine.store.users import UserError

    from engine.store import db
    from engine.evaluate.code_checks import SandboxUnavailable
    from engine.store.backup import BackupError
    from engine.store.workspace import WorkspaceMissing

    problem = db.explain(err)
    if problem is not None:
        err = problem
    if isinstance(err, (InputError, SplitError, TokenizerError, ProjectError, FixError, LockedTestError, UsageError,
                        ConfigError, RunError, LaunchRefused, EvalError, UserError, ReviewError, TrafficError,
                        db.DatabaseProblem, WorkspaceMissing, BackupError, SandboxUnavailable)):
        return str(err)
    if isinstance(err, OSError):
        if err.errno == errno.ENOSPC:
            return f"the disk is full ({err.filename or 'the workspace'}); free some space and try again."
        return f"{err.strerror or err} ({err.filename or 'file'})."
    from engine.store import workspace

    log = workspace.root() / "logs" / "cli-errors.log"
    try:
        if not workspace.root().is_dir():
            raise FileNotFoundError(workspace.root())
        log.parent.mkdir(mode=0o700, exist_ok=True)
        with log.open("a", encoding="utf-8") as f:
            f.write("".join(traceback.format_exception(err)) + "\n")
    except OSError as io:
        return (f"unexpected error ({type(err).__name__}); the error log could not be written either "
                f"({io.strerror or type(io).__name__}).")
    return f"unexpected error ({type(err).__name__}); details were written to {log}."


def _check_options(args):
    from engine.data.loading import parse_mapping
    from engine.data.quality import CheckOptions

    return CheckOptions(shape=args.shape, mapping=parse_mapping(args.mapping),
                        tokenizer=getattr(args, "tokenizer", None),
                        max_length=getattr(args, "max_length", 2048), task=getattr(args, "task", "chat"))


def cmd_check(args) -> int:
    from engine.data.quality import check_file

    if args.max_length < 1:
        raise UsageError("--max-length must be a positive number of tokens.")
    report = check_file(args.file, _check_options(args))
    if args.json:
        print(json.dumps(report.to_json(), indent=2, ensure_ascii=False))
    else:
        print(render_report(report))
    return EXIT_BLOCKING if report.blocking else EXIT_OK


def render_report(report) -> str:
    from engine.data.quality import describe_format

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


def cmd_split(args) -> int:
    from engine.data import versions
    from engine.store import projects
    from engine.data import split
    from engine.data.loading import load_records
    from engine.data.quality import usable

    ratios = split.parse_ratios(args.ratios)
    options = _check_options(args)
    project = projects.ensure_project(args.project)
    version = versions.import_file(project.id, args.file, args.file.name, shape=options.shape,
                                   mapping=options.mapping)
    made = split.create_split(version, ratios, args.seed, copy_to=args.out)
    result = {"out": str(args.out), "dataset_version": version.id, "split": made.id, "counts": made.counts,
              "overlap": made.overlap, "test_sha256": made.test_sha256, "locked": True}
    status = EXIT_OK
    if args.test:
        train = usable(load_records(args.out / "train.jsonl").records)
        test = usable(load_records(args.test).records)
        result["contamination"] = split.contamination(train, test)
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


def cmd_demo_model(args) -> int:
    from engine.demo.model import build_demo_model

    out = build_demo_model(args.dir, pretrain_steps=args.pretrain_steps,
                           progress=None if args.quiet else lambda line: print(line, flush=True))
    print(f"Built the demo model in {out}.")
    return EXIT_OK


def cmd_sample(args) -> int:
    from engine.demo.sample import write_sample

    write_sample(args.file)
    print(f"Wrote the sample dataset to {args.file}.")
    return EXIT_OK


def cmd_ui(args) -> int:
    from engine.data import demo_project
    from engine.store.workspace import current

    if args.demo:
        import time

        started = time.monotonic()
        print("Preparing the demo workspace (sample data and demo model)...", flush=True)
        demo_project.ensure_demo(progress=lambda line: print(line, flush=True))
        print(f"The demo is ready ({time.monotonic() - started:.0f} s).", flush=True)
    app = Path(__file__).resolve().parent.parent / "app.py"
    cmd = [sys.executable, "-m", "streamlit", "run", str(app), "--server.port", str(args.port)]
    if args.address:
        cmd += ["--server.address", args.address]  # else .streamlit/config.toml's 127.0.0.1
    if args.headless:
        cmd += ["--server.headless", "true"]
    print(f"Workspace: {current().root}", flush=True)
    from engine.store import backup
    from engine.store import users

    backup.backup_if_stale()
    token = users.new_setup_token()
    if token:
        print("No administrator yet: open the dashboard in a browser on this machine to create one, or from another "
              f"machine with this one-time setup token: {token}", flush=True)
    os.environ["STUDIO_HOME"] = str(current().root)  # absolute: the working directory changes below
    os.chdir(app.parent)  # .streamlit/config.toml is read from the working directory
    os.execv(sys.executable, cmd)
    return EXIT_OK


def cmd_train(args) -> int:
    from engine.train import launcher
    from engine.jobs import supervisor

    run_config, project_id = launcher.config_from_cli(args)
    if args.dry_run:
        command = launcher.trainer_command(run_config)
        print(" ".join(p.replace("{python}", sys.executable).replace("{run_dir}", str(args.out or "RUN_DIR"))
                       for p in command))
        return EXIT_OK
    run = launcher.launch_checked(run_config, project_id, run_dir=args.out)
    print(f"Run {run.id} ({run.status}) in {supervisor.run_path(run)}", flush=True)
    if args.detach:
        return EXIT_OK
    return _follow(run.id)


def _follow(run_id: int) -> int:
    """Print progress lines until the run ends; Ctrl-C cancels it (gracefully)."""
    import time

    from engine.jobs import event_log

    from engine.jobs import supervisor

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


def cmd_eval(args) -> int:
    """Queue the evaluation of each run with the supervisor (it waits for a training run on the same device), follow
    them, print the reports. Ctrl-C cancels them."""
    import time

    from engine.evaluate import comparison

    from engine.jobs import supervisor
    from engine.evaluate.job import EvalOptions

    jobs = []
    for run_id in args.run:
        options = EvalOptions(run_id=run_id, baseline=str(args.baseline), limit=args.limit,
                              max_new_tokens=args.max_new_tokens, batch_size=args.batch_size,
                              general=str(args.general.resolve()) if args.general else None,
                              json_schema=str(args.schema.resolve()) if args.schema else None,
                              allow_weak_sandbox=args.allow_weak_sandbox)
        jobs.append(comparison.queue(options))
    shown: dict[int, str] = {}
    try:
        while True:
            supervisor.reconcile()
            jobs = [supervisor.get_run(j.id) for j in jobs]
            for job in jobs:
                state = comparison.job_state(job)
                line = f"[{state['progress']:4.0%}] run {job.target_run_id}: {state['label']}"
                if line != shown.get(job.id) and not args.json:
                    print(line, file=sys.stderr, flush=True)
                    shown[job.id] = line
            if all(j.status not in supervisor.ACTIVE for j in jobs):
                break
            time.sleep(0.5)
    except KeyboardInterrupt:
        print("Cancelling the evaluations...", file=sys.stderr, flush=True)
        jobs = [supervisor.wait(supervisor.cancel(j.id).id, timeout=supervisor.grace_seconds() + 5) for j in jobs]
    failed = [j for j in jobs if j.status != "succeeded"]
    for job in failed:
        print(f"studio: the evaluation of run {job.target_run_id} {job.status}"
              + (f": {job.error_message}" if job.error_message else "."), file=sys.stderr)
    reports = [comparison.load_report(supervisor.get_run(j.target_run_id), str(args.baseline)) for j in jobs
               if j.status == "succeeded"]
    if args.json:  # one run: its report; several: the list of reports
        print(json.dumps(reports[0] if len(args.run) == 1 and reports else reports, indent=2))
    else:
        print("\n\n".join(comparison.render(r) for r in reports))
    return EXIT_BLOCKING if failed else EXIT_OK


def cmd_runs(args) -> int:
    from engine.jobs import supervisor

    supervisor.reconcile()
    project_id = None
    if args.project:
        from engine.store.projects import find_project

        project_id = find_project(args.project).id
    rows = [{"id": r.id, "kind": r.kind, "name": r.name, "status": r.status, "step": r.step,
             "max_steps": r.max_steps, "error_kind": r.error_kind, "pid": r.pid}
            for r in supervisor.list_runs(project_id, kind=None)]
    if args.json:
        print(json.dumps(rows, indent=2))
    elif not rows:
        print("No runs yet.")
    else:
        print(f"{'id':>4}  {'kind':<5} {'status':<10} {'step':>11}  {'error':<12} {'pid':>7}  name")
        for r in rows:
            step = f"{r['step']}/{r['max_steps'] or '?'}" if r["kind"] == "train" else f"{r['step']}%"
            print(f"{r['id']:>4}  {r['kind']:<5} {r['status']:<10} {step:>11}  {r['error_kind'] or '':<12} "
                  f"{r['pid'] or '':>7}  {r['name']}")
    return EXIT_OK


def cmd_cancel(args) -> int:
    from engine.jobs import supervisor

    run = supervisor.cancel(args.run)
    if run.status in supervisor.ACTIVE:
        run = supervisor.wait(args.run, timeout=supervisor.grace_seconds() + 5)
    print(f"Run {run.id} is {run.status}.")
    return EXIT_OK


def cmd_resume(args) -> int:
    from engine.jobs import supervisor

    run = supervisor.resume(args.run)
    print(f"Run {run.id} is {run.status}; it continues from its last complete checkpoint.")
    return EXIT_OK


def cmd_versions(args) -> int:
    from engine.data import versions
    from engine.store import projects

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


def cmd_export(args) -> int:
    from engine.data import versions

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


def cmd_users(args) -> int:
    from engine.store import users

    if args.users_command == "list":
        for u in users.list_users():
            print(f"{u.name:<24} {u.role:<9} {u.email or ''}")
        return EXIT_OK
    if args.users_command == "unlock":
        from engine.store import throttle

        cleared = throttle.unlock(args.name)
        print(f"Cleared {cleared} failed sign-in{'s' if cleared != 1 else ''} of {args.name}.")
        return EXIT_OK
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        import getpass

        password = getpass.getpass(f"Password for {args.name}: ")
        if getpass.getpass("Again: ") != password:
            raise UsageError("The two passwords differ.")
    user = users.add_user(args.name, args.role, password, args.email)
    print(f"Added {user.name} ({user.role}).")  # never the password
    return EXIT_OK


def cmd_review(args) -> int:
    from engine.review import campaigns
    from engine.review import stats
    from engine.store import users

    if args.review_command == "create":
        names = [n.strip() for n in args.reviewers.split(",") if n.strip()]
        known = {u.name: u.id for u in users.list_users()}
        missing = [n for n in names if n not in known]
        if missing:
            raise UsageError(f"No such user: {', '.join(missing)} (add them with `studio users add`).")
        made = campaigns.create_campaign(users.SYSTEM, args.run, args.kind, [known[n] for n in names], args.sample,
                                      args.overlap, args.baseline, args.name, args.per_criterion,
                                      campaigns.parse_gold(args.gold, args.kind), args.seed)
        total = sum(p["total"] for p in campaigns.progress(users.SYSTEM, made.id))
        print(f"Campaign {made.id} created: {total} items across {len(names)} reviewers.")
        return EXIT_OK
    if args.review_command == "results":
        result = stats.campaign_results(users.SYSTEM, args.campaign)
        if args.json:
            print(json.dumps(result, indent=2, default=str))
        elif result["kind"] == "pairwise":
            print(result["verdict"])
            if result["n"]:
                print(f"  {result['wins']} wins, {result['losses']} losses, {result['ties']} ties, "
                      f"{result['both_bad']} both bad; sign test p = {result['sign_test_p']}")
        else:
            print(f"{result['n_ratings']} ratings from {len(result['reviewers'])} reviewers.")
            for c, e in result["criteria"].items():
                b, f = e["models"]["base"], e["models"]["finetuned"]
                if b["mean"] is None or f["mean"] is None:
                    continue
                alpha = "-" if e["alpha"] is None else f"{e['alpha']:.3f}"
                print(f"  {c:<12} base {b['mean']:.2f} [{b['ci_low']:.2f}, {b['ci_high']:.2f}]  fine-tuned "
                      f"{f['mean']:.2f} [{f['ci_low']:.2f}, {f['ci_high']:.2f}]  alpha {alpha} "
                      f"({e['band'] or 'not enough overlap'})")
        return EXIT_OK
    text = campaigns.export(users.SYSTEM, args.campaign, args.format)
    if args.out:
        args.out.write_text(text, encoding="utf-8", newline="")
        print(f"Wrote {args.out}.")
    else:
        sys.stdout.write(text)
    return EXIT_OK


def cmd_ab(args) -> int:
    from engine.review import ab_traffic

    result = ab_traffic.analyze(args.log, args.split, args.treatment, args.primary,
                                ab_traffic.parse_mapping(args.mapping))
    if args.json:
        print(json.dumps(result, indent=2, default=str))
        return EXIT_OK
    n, s = result["n"], result["srm"]
    print(f"Users: control {n['control']:,}, treatment {n['treatment']:,} (planned {s['expected_share']:.0%} "
          f"treatment, observed {s['observed_share']:.2%}; sample-ratio p = {s['p_value']:.3g}"
          f"{', MISMATCH' if s['alert'] else ''}).")
    for name, m in result["metrics"].items():
        lift = f"{m['relative_lift']:+.1%}" if m["relative_lift"] is not None else "n/a"
        print(f"  {name:<14} control {m['control']:.4g}  treatment {m['treatment']:.4g}  diff {m['diff']:+.4g} "
              f"[{m['ci_low']:+.4g}, {m['ci_high']:+.4g}]  lift {lift}  p {m['p_value']:.3g}")
    issues = result["data_issues"]
    if issues["duplicate_rows_dropped"] or issues["users_in_both_variants"]:
        print(f"Data issues: {issues['duplicate_rows_dropped']:,} exact duplicate rows dropped; "
              f"{issues['users_in_both_variants']:,} users in both variants left out "
              f"({issues['rows_of_those_users_excluded']:,} rows).")
    print(f"Decision: {result['decision']}.")
    for r in result["reasons"]:
        print(f"  - {r}")
    return EXIT_OK


def cmd_db(args) -> int:
    from engine.store import backup

    if args.db_command == "backup":
        print(f"Backed up the database to {backup.backup()}.")
        return EXIT_OK
    used, kept = backup.restore(args.file)
    print(f"Restored the database from {used}." + (f" The previous file is kept as {kept}." if kept else ""))
    return EXIT_OK


_COMMANDS = {"check": cmd_check, "split": cmd_split, "demo-model": cmd_demo_model, "sample": cmd_sample,
             "ui": cmd_ui, "train": cmd_train, "runs": cmd_runs, "cancel": cmd_cancel, "resume": cmd_resume,
             "eval": cmd_eval, "versions": cmd_versions, "export": cmd_export, "users": cmd_users, "review": cmd_review, "ab": cmd_ab,
             "db": cmd_db}

if __name__ == "__main__":
    sys.exit(main())
