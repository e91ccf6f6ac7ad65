"""The supervisor with nobody watching, and the faults an unlucky operator meets: killed jobs, a full disk, a deleted
workspace, read-only commands on a missing workspace, a damaged database. Real processes, real signals, no watcher:
the test reads the database directly and never reconciles."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest
from conftest import eventually, run_studio, running, small_workspace

from engine.data import split, versions
from engine.demo import sample
from engine.jobs import event_log, supervisor
from engine.store import db, projects
from engine.store.tables import Run
from engine.train import launcher

pytestmark = pytest.mark.xdist_group("jobs")


def stored(run_id: int) -> Run:
    """The run as the database has it, without reconciling anything."""
    with db.session() as s:
        return s.get(Run, run_id)


@pytest.fixture
def made_split(ws, demo_model, tmp_path):
    project = projects.create_project("Jobs")
    rows = sample.generate(600, seed=3)[300:420]
    data = tmp_path / "support.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    version = versions.import_file(project.id, data, "support.jsonl")
    return project, split.create_split(version), demo_model


def logged_steps(run_id: int) -> int:
    """The trainer's own progress, from its metrics file."""
    return max([e.get("step", 0) for e in event_log.read_events(supervisor.run_path(stored(run_id)))], default=0)


def detached(ws, config, tmp_path, name: str, **env) -> int:
    """Launch through `studio train CONFIG --detach`: the launching process exits at once."""
    path = tmp_path / f"{name}.json"
    config.save(path)
    proc = run_studio("train", path, "--detach", env_home=ws.root, timeout=120, **env)
    assert proc.returncode == 0, proc.stderr
    return int(proc.stdout.split()[1])


def test_jobs_end_fail_and_hand_over_with_nobody_watching(made_split, ws, tmp_path):
    """A run killed with kill -9, one that fails and one that succeeds, all launched by commands that exited at
    once: each end is recorded within 10 s and the next queued run starts within 10 s, with no dashboard and no
    command running."""
    project, made, model = made_split
    killed = detached(ws, launcher.config_for_split(made, str(model), name="killed", max_steps=400), tmp_path, "a")
    doomed_data = tmp_path / "doomed.jsonl"
    shutil.copyfile(split.split_path(made, "train"), doomed_data)
    doomed_cfg = launcher.config_for_split(made, str(model), name="doomed", max_steps=10)
    doomed = detached(ws, doomed_cfg.model_copy(update={"train_file": str(doomed_data)}), tmp_path, "b")
    finished = detached(ws, launcher.config_for_split(made, str(model), name="finished", max_steps=6), tmp_path, "c")
    assert [stored(r).status for r in (killed, doomed, finished)] == ["running", "queued", "queued"]
    doomed_data.unlink()  # it fails when it starts: its data is gone

    eventually(lambda: logged_steps(killed) > 0, 60)
    os.kill(stored(killed).pid, signal.SIGKILL)
    t0 = time.monotonic()
    run = eventually(lambda: (r := stored(killed)).status != "running" and r, 10)
    assert (run.status, run.error_kind) == ("failed", "killed") and run.exit_code == -signal.SIGKILL
    eventually(lambda: stored(doomed).status == "running" or stored(doomed).status == "failed", 10 - (time.monotonic() - t0))
    run = eventually(lambda: (r := stored(doomed)).status == "failed" and r, 60)
    assert run.error_kind == "data_error" and "doomed.jsonl" in run.error_message
    pid = eventually(lambda: stored(finished).status == "running" and stored(finished).pid, 10)
    eventually(lambda: not running(pid), 120)
    t1 = time.monotonic()
    run = eventually(lambda: (r := stored(finished)).status != "running" and r, 10)
    assert run.status == "succeeded" and run.step == 6, run.error_message
    assert time.monotonic() - t1 < 10
    monitors = [stored(r).monitor_pid for r in (killed, doomed, finished)]
    eventually(lambda: not any(running(p) for p in monitors), 10)  # the monitors end with their jobs


def test_a_deleted_workspace_stops_its_job_and_is_not_recreated(made_split, ws, tmp_path):
    project, made, model = made_split
    run_id = detached(ws, launcher.config_for_split(made, str(model), name="orphan", max_steps=2000), tmp_path, "o")
    eventually(lambda: logged_steps(run_id) > 0, 60)
    run = stored(run_id)
    job = psutil.Process(run.pid)
    db._engines.pop(db.database_url()).dispose()  # this test process lets go of the file too
    monitor = run.monitor_pid
    # the trainer may still add a file to a folder while rmtree walks the tree: delete again until it is gone
    eventually(lambda: shutil.rmtree(ws.root, ignore_errors=True) or not ws.root.exists(), 5)
    eventually(lambda: not running(job.pid), 10)
    eventually(lambda: not monitor or not running(monitor), 30)  # the monitor has recorded what it could
    assert not ws.root.exists()  # nobody recreated it
    for args in (["runs"], ["versions"], ["review", "results", "1"], ["users", "list"], ["runs", "--json"]):
        proc = run_studio(*args, env_home=ws.root)
        assert proc.returncode == 2 and "There is no workspace at" in proc.stderr, (args, proc.stderr)
        assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1
    assert not ws.root.exists()


def test_read_only_commands_never_create_anything(tmp_path):
    home = tmp_path / "nothing-here"
    for args in (["runs"], ["versions", "--json"], ["review", "export", "1"], ["users", "list"]):
        proc = run_studio(*args, env_home=home)
        assert proc.returncode == 2 and proc.stderr.startswith("studio: There is no workspace at"), proc.stderr
    assert not home.exists()
    home.mkdir()
    proc = run_studio("runs", env_home=home)
    if os.environ.get("STUDIO_DB_URL"):  # the server's maintenance database: no studio tables, and none made
        assert proc.returncode == 2 and "has no studio tables; nothing was created" in proc.stderr, proc.stderr
    else:
        assert proc.returncode == 2 and "has no database" in proc.stderr
    assert list(home.iterdir()) == []


def test_unknown_project_is_a_sentence_and_is_not_created(ws):
    projects.create_project("real")
    proc = run_studio("runs", "--project", "imaginary", env_home=ws.root)
    assert proc.returncode == 2 and "There is no project named 'imaginary'" in proc.stderr
    assert [p.name for p in projects.list_projects()] == ["real"]


@pytest.mark.skipif(bool(os.environ.get("STUDIO_DB_URL")), reason="the SQLite file's own damage and backups")
def test_a_damaged_database_is_one_actionable_sentence(ws):
    projects.create_project("before the damage")
    made = run_studio("db", "backup", env_home=ws.root)
    assert made.returncode == 0, made.stderr
    backup = Path(made.stdout.split(" to ")[1].strip().rstrip("."))
    db._engines.pop(db.database_url()).dispose()
    database = ws.root / "studio.db"
    database.write_bytes(b"this is not a database at all " * 200)
    for suffix in ("-wal", "-shm"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    proc = run_studio("runs", env_home=ws.root)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    sentence = proc.stderr.strip()
    assert sentence.count("\n") == 0 and f"The database {database} is damaged" in sentence
    assert str(backup) in sentence and "`studio db restore`" in sentence
    restored = run_studio("db", "restore", env_home=ws.root)
    assert restored.returncode == 0 and "is kept as" in restored.stdout
    listing = run_studio("runs", env_home=ws.root)
    assert listing.returncode == 0, listing.stderr
    assert any(p.name.startswith("studio.db.damaged-") for p in ws.root.iterdir())


def test_the_cli_never_prints_a_traceback_even_when_its_error_log_cannot_be_written(ws, capsys):
    from engine.cli import entry

    (ws.root / "logs").write_text("a file where the log folder should be")
    assert entry.report_error(RuntimeError("something unforeseen")) == 2
    err = capsys.readouterr().err
    assert err.strip() == ("studio: unexpected error (RuntimeError); the error log could not be written either "
                           "(File exists).")


@pytest.mark.skipif(bool(os.environ.get("STUDIO_DB_URL")), reason="the database must live on the full disk")
def test_a_full_disk_is_disk_full_and_nothing_prints_a_traceback(demo_model, tmp_path, monkeypatch):
    """The workspace on a small tmpfs (as root in CI), filled while a run trains: the run is disk_full with its
    sentence, recorded by its monitor, and `studio runs` answers without a traceback."""
    with small_workspace(tmp_path / "small", "48m", monkeypatch) as home:
        project = projects.create_project("Full disk")
        rows = sample.generate(600, seed=3)[300:420]
        data = tmp_path / "support.jsonl"
        data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
        made = split.create_split(versions.import_file(project.id, data, "support.jsonl"))
        run_id = detached(type("W", (), {"root": home}), launcher.config_for_split(
            made, str(demo_model), name="filling", max_steps=2000), tmp_path, "f")
        eventually(lambda: logged_steps(run_id) > 0, 60)
        free = shutil.disk_usage(home).free
        with (home / "filler.bin").open("wb") as f:  # leave almost nothing: the next checkpoint cannot be written
            try:
                f.write(b"\0" * max(free - 64 * 1024, 0))
            except OSError:
                pass
        run = eventually(lambda: (r := stored(run_id)).status != "running" and r, 120)
        assert (run.status, run.error_kind) == ("failed", "disk_full"), (run.error_message, run.log_tail)
        assert run.error_message.startswith("The disk is full")
        proc = run_studio("runs", env_home=home)
        assert "Traceback" not in proc.stdout + proc.stderr
        assert proc.returncode == 0 and "disk_full" in proc.stdout, proc.stderr


def test_a_process_is_known_by_its_start_since_boot_not_by_the_wall_clock():
    """A job's process is recognised by when it started counted from boot (/proc/<pid>/stat), which a step of the
    wall clock (NTP, a resumed virtual machine) does not move; a pid that later belongs to another process, and the
    wall-clock start times recorded by earlier versions, are still told apart."""
    import sys

    from engine.jobs import processes

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        started = processes.create_time(psutil, child.pid)
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        assert 0 < started <= uptime
        assert started == pytest.approx(psutil.Process(child.pid).create_time() - psutil.boot_time(), abs=1.01)
        assert processes.process_alive(child.pid, started)
        assert not processes.process_alive(child.pid, started + 1)  # the same pid, another start: another process
        assert processes.process_alive(child.pid, psutil.Process(child.pid).create_time())  # recorded before
    finally:
        child.kill()
        child.wait()
    assert not processes.process_alive(child.pid, started)


def test_the_scheduler_of_a_finishing_job_never_recreates_a_deleted_workspace(tmp_path, monkeypatch):
    """A job's monitor finishes with nobody watching; if the workspace was deleted meanwhile (after its check that
    the workspace exists), taking the scheduler's lock or scheduling the next job must not make it again."""
    from engine.jobs import monitor
    from engine.store import workspace

    gone = tmp_path / "deleted-workspace"
    monkeypatch.setenv("STUDIO_HOME", str(gone))
    with pytest.raises(workspace.WorkspaceMissing):
        with supervisor.scheduler_lock(create=False):
            pass
    with pytest.raises(workspace.WorkspaceMissing):
        supervisor.schedule(create=False)
    monitor.record_exit(1, 12345, 0)
    assert not gone.exists()


def _catches_sigterm(pid: int) -> bool:
    """Whether the process has a SIGTERM handler of its own yet (its SigCgt mask in /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (signal.SIGTERM - 1) & 1)
    return False


@pytest.mark.parametrize("module", ["engine.evaluate.job", "engine.models.serve_job"])
def test_a_cancel_while_a_job_starts_up_is_recorded_as_cancelled_not_as_a_crash(module, ws, tmp_path):
    """A cancel that arrives the moment the job's SIGTERM handler exists - during its own imports and while it opens
    its event log, where nothing can catch an exception - ends the job as cancelled with its final event, not with a
    traceback and exit status 1 (which the supervisor recorded as failed: CI saw it)."""
    import sys

    folder = tmp_path / "job"
    folder.mkdir()
    (folder / "config.json").write_text("{}", encoding="utf-8")
    child = subprocess.Popen([sys.executable, "-m", module, str(folder)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not _catches_sigterm(child.pid):
        assert child.poll() is None and time.monotonic() < deadline
        time.sleep(0.0005)
    child.send_signal(signal.SIGTERM)
    out, err = child.communicate(timeout=120)
    assert child.returncode == 0, err
    assert "Traceback" not in err
    final = event_log.final_event(event_log.read_events(folder))
    assert final is not None and final["outcome"] == "cancelled"


def test_a_deferred_cancel_is_raised_only_where_the_job_can_record_it():
    from engine.jobs.stop_signal import Deferred

    class Stop(BaseException):
        pass

    before = signal.getsignal(signal.SIGTERM)
    stop = Deferred(Stop)
    stop.install()
    try:
        os.kill(os.getpid(), signal.SIGTERM)  # before the guarded work: kept
        time.sleep(0.01)
        with pytest.raises(Stop):
            with stop.guarded():
                raise AssertionError("a cancel that came before must stop the work before it starts")
        with pytest.raises(Stop):  # during it: at once
            with stop.guarded():
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(5)
        os.kill(os.getpid(), signal.SIGTERM)  # after it (the outcome is being written): nothing is raised
        time.sleep(0.01)
    finally:
        signal.signal(signal.SIGTERM, before)
