"""The `studio` entry point: parse, dispatch to the command's module, and the one boundary where every error becomes
a sentence on stderr (and exit 2), never a traceback."""

from __future__ import annotations

import errno
import importlib
import json
import sys

from engine.cli import parser
from engine.cli.common import EXIT_UNUSABLE
from engine.errors import StudioError, log_unexpected
from engine.store import db, workspace

# Each command's handler as "module:function", imported when the command runs (the data and review modules are not
# loaded to list runs).
COMMANDS = {
    "check": "data_commands:check_command", "split": "data_commands:split_command",
    "demo-model": "data_commands:demo_model_command", "sample": "data_commands:sample_command",
    "versions": "data_commands:versions_command", "export": "data_commands:export_command",
    "base": "train_commands:base_command",
    "train": "train_commands:train_command", "runs": "train_commands:runs_command",
    "cancel": "train_commands:cancel_command", "resume": "train_commands:resume_command",
    "eval": "eval_commands:eval_command",
    "review": "review_commands:review_command", "ab": "review_commands:ab_command",
    "prefs": "review_commands:prefs_command",
    "ui": "admin_commands:ui_command", "users": "admin_commands:users_command", "db": "admin_commands:db_command",
    "models": "model_commands:models_command", "model": "model_commands:model_command",
    "serve": "model_commands:serve_command", "monitor": "monitor_commands:monitor_command",
    "augment": "augment_commands:augment_command",
    "config": "workspace_commands:config_command", "project": "workspace_commands:project_command",
    "fix": "workspace_commands:fix_command", "chat": "workspace_commands:chat_command",
}
# Commands whose --project, when not given, is the current project (`studio project use`); listings show all.
PROJECT_SCOPED = {"split", "train", "model", "monitor", "prefs"}
# Commands that only read: they never create a workspace, a database or a project.
READ_ONLY = {("runs",), ("versions",), ("review", "results"), ("review", "export"), ("users", "list"), ("models",),
             ("model", "show"), ("model", "card"), ("monitor", "report"),
             ("base", "list"), ("project", "list")}


def _reads_only(args) -> bool:
    sub = getattr(args, f"{args.command}_command", None)
    return (args.command,) in READ_ONLY or (args.command, sub) in READ_ONLY


def _handler(command: str):
    module, function = COMMANDS[command].split(":")
    return getattr(importlib.import_module(f"engine.cli.{module}"), function)


def main(argv: list[str] | None = None) -> int:
    args = parser.build(argv).parse_args(argv)
    try:
        if _reads_only(args):
            workspace.existing()
            db.read_only()
        workspace.apply_library_env(workspace.Workspace(workspace.root()))  # variables only: nothing is created
        if args.command in PROJECT_SCOPED and getattr(args, "project", "") is None:
            from engine.store import projects

            args.project = projects.current_name()
        return _handler(args.command)(args)
    except KeyboardInterrupt:
        return 130
    except Exception as err:  # noqa: BLE001 - the boundary where every error becomes one sentence
        return report_error(err, bool(getattr(args, "json", False)))


def report_error(err: Exception, as_json: bool = False) -> int:
    """One sentence on stderr (and, for --json, {"error": sentence} on stdout) and exit 2, whatever went wrong;
    unexpected errors go to the workspace's error log (when even that cannot be written, the sentence says so)."""
    try:
        sentence = explain(err)
    except Exception as inner:  # noqa: BLE001 - explaining must never end in a traceback
        sentence = f"unexpected error ({type(err).__name__}; {type(inner).__name__} while reporting it)."
    print(f"studio: {sentence}", file=sys.stderr)
    if as_json:
        print(json.dumps({"error": sentence}))
    return EXIT_UNUSABLE


def explain(err: Exception) -> str:
    """The sentence for an error: a StudioError's own; a system error's in words; anything else logged under an id."""
    problem = db.explain(err)
    if problem is not None:
        err = problem
    if isinstance(err, StudioError):
        return str(err)
    if isinstance(err, OSError):
        if err.errno == errno.ENOSPC:
            return f"the disk is full ({err.filename or 'the workspace'}); free some space and try again."
        return f"{err.strerror or err} ({err.filename or 'file'})."
    log = workspace.root() / "logs" / "cli-errors.log"
    try:
        if not workspace.root().is_dir():
            raise FileNotFoundError(workspace.root())
        error_id = log_unexpected(err, log)
    except OSError as io:
        return (f"unexpected error ({type(err).__name__}); the error log could not be written either "
                f"({io.strerror or type(io).__name__}).")
    return f"unexpected error ({type(err).__name__}, error {error_id}); details are under that id in {log}."
