"""`studio ui`, `users` and `db`: the dashboard, local accounts and database backups."""

from __future__ import annotations

import getpass
import importlib.util
import os
import sys
import time
from pathlib import Path

from engine.cli.common import EXIT_OK, UsageError
from engine.data import demo_project
from engine.store import backup, throttle, users
from engine.store.workspace import current


def dashboard_app() -> Path:
    """app.py: the installed studio_app package's (a wheel, or this checkout installed editable), else this checkout's
    (its .streamlit/config.toml sits beside it either way)."""
    spec = importlib.util.find_spec("studio_app")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        if (Path(folder) / "app.py").is_file():
            return Path(folder) / "app.py"
    return Path(__file__).resolve().parents[2] / "app.py"


def _say_job_backend() -> None:
    """Where jobs will run, and what a Ray cluster still lacks (checked at start; a launch checks again)."""
    from engine.jobs import ray_backend  # small; Ray itself loads only when the backend is ray
    from engine.store import db

    if ray_backend.configured() != "ray":
        return
    try:
        problems = ray_backend.check(db.get_engine().dialect.name, current().root)
    except ray_backend.RayError as err:
        problems = [str(err)]
    print(f"Jobs run on the Ray cluster at {ray_backend.address()}" + (": " + " ".join(problems) if problems
                                                                        else "."), flush=True)


def ui_command(args) -> int:
    if args.demo:
        started = time.monotonic()
        print("Preparing the demo workspace (sample data and demo model)...", flush=True)
        project = demo_project.ensure_demo(progress=lambda line: print(line, flush=True))
        from engine.evaluate import real_demo  # only the demo queues the real model's run

        real_demo.ensure_real_demo(project, progress=lambda line: print(line, flush=True))
        print(f"The demo is ready ({time.monotonic() - started:.0f} s).", flush=True)
    app = dashboard_app()
    cmd = [sys.executable, "-m", "streamlit", "run", str(app), "--server.port", str(args.port)]
    if args.address:
        cmd += ["--server.address", args.address]  # else .streamlit/config.toml's 127.0.0.1
    if args.headless:
        cmd += ["--server.headless", "true"]
    if args.secrets:
        if not args.secrets.is_file():
            raise UsageError(f"There is no secrets file at {args.secrets}.")
        default = app.parent / ".streamlit" / "secrets.toml"  # kept, read first: the named file wins
        cmd += [*(["--secrets.files", str(default)] if default.is_file() else []), "--secrets.files",
                str(args.secrets.resolve())]
    print(f"Workspace: {current().root}", flush=True)
    _say_job_backend()
    backup.backup_if_stale()
    token = users.new_setup_token()
    if token:
        print("No administrator yet: open the dashboard in a browser on this machine to create one, or from another "
              f"machine with this one-time setup token: {token}", flush=True)
    os.environ["STUDIO_HOME"] = str(current().root)  # absolute: the working directory changes below
    os.chdir(app.parent)  # .streamlit/config.toml is read from the working directory
    os.execv(sys.executable, cmd)
    return EXIT_OK


def users_command(args) -> int:
    if args.users_command == "list":
        for u in users.list_users():
            print(f"{u.name:<24} {u.role:<9} {u.email or ''}")
        return EXIT_OK
    if args.users_command == "unlock":
        cleared = throttle.unlock(args.name)
        print(f"Cleared {cleared} failed sign-in{'s' if cleared != 1 else ''} of {args.name}.")
        return EXIT_OK
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass(f"Password for {args.name}: ")
        if getpass.getpass("Again: ") != password:
            raise UsageError("The two passwords differ.")
    user = users.add_user(args.name, args.role, password, args.email)
    print(f"Added {user.name} ({user.role}).")  # never the password
    return EXIT_OK


def db_command(args) -> int:
    if args.db_command == "backup":
        print(f"Backed up the database to {backup.backup()}.")
        return EXIT_OK
    used, kept = backup.restore(args.file)
    print(f"Restored the database from {used}." + (f" The previous file is kept as {kept}." if kept else ""))
    return EXIT_OK
