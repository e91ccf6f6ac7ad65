"""Training runs for real: TRL's SFTTrainer on the demo model, in supervised subprocesses, with real signals.

Fault injection (STUDIO_FAULT, read by engine.train.trainer) makes a trainer ignore SIGTERM or raise a chosen error at a step,
so the classification and the escalation are tested on the real code paths.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import ROOT, app_as, run_studio

from engine.data import split, versions
from engine.demo import sample
from engine.jobs import event_log, supervisor
from engine.train import launcher, summary


def wait_until(predicate, timeout: float, poll: float = 0.2):
    """conftest.eventually, reconciling the supervisor before each look."""
    from conftest import eventually

    return eventually(lambda: supervisor.reconcile() or predicate(), timeout, poll)


def test_short_run_through_the_cli_learns_and_saves(setup, ws):
    project, made, config = setup
    cfg = config(max_steps=24, wandb_mode="offline")
    path = ws.root / "cfg.json"
    cfg.save(path)
    proc = run_studio("train", path, env_home=ws.root, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run = supervisor.list_runs()[0]
    assert run.status == "succeeded" and run.step == 24
    folder = supervisor.run_path(run)
    c = event_log.curves(event_log.read_events(folder))
    losses = [p["loss"] for p in c["log"]]
    half = len(losses) // 2
    assert sum(losses[half:]) / (len(losses) - half) < sum(losses[:half]) / half  # single batches are noisy
    assert c["eval"][-1]["eval_loss"] < c["eval"][0]["eval_loss"]
    weights = "model.safetensors" if run.config["technique"] == "full" else "adapter_model.safetensors"
    assert run.config["technique"] == "full" and (folder / "final" / weights).is_file()  # recommended for the demo
    # the W&B offline run holds the same loss history, read back without a network
    wandb_dir = next((folder / "wandb").glob("offline-run-*"))
    out = subprocess.run([str(ROOT / ".venv" / "bin" / "wandb") if (ROOT / ".venv").exists() else "wandb",
                          "leet", "inspect", "--json", str(wandb_dir)], capture_output=True, text=True, timeout=120)
    history = {}
    for line in out.stdout.splitlines():
        rec = json.loads(line)
        if rec.get("type") == "history" and "train/loss" in rec["history"]["item"]:
            item = rec["history"]["item"]
            history[int(item["train/global_step"])] = item["train/loss"]
    ours = {p["step"]: p["loss"] for p in c["log"]}
    assert history and history == pytest.approx(ours)
    listed = json.loads(run_studio("runs", "--json", env_home=ws.root).stdout)
    assert listed[0]["status"] == "succeeded" and listed[0]["step"] == 24
    # the next estimate on this machine uses the speed this run achieved
    from engine.train import estimate
    from engine.train.recommend import model_facts

    speed, basis = estimate.machine_speed("cpu", model_facts(cfg.base_model).params)
    assert speed > 0 and "achieved on this machine" in basis


def test_kill_9_is_failed_killed_then_resume_reaches_the_same_final_step(setup):
    project, made, config = setup
    run = launcher.launch(config(max_steps=20), project.id)
    wait_until(lambda: supervisor.get_run(run.id).step >= 9, 120)
    os.kill(supervisor.get_run(run.id).pid, signal.SIGKILL)
    killed_at = time.monotonic()
    done = wait_until(lambda: (r := supervisor.get_run(run.id)).status != "running" and r, 10)
    assert time.monotonic() - killed_at < 5
    assert (done.status, done.error_kind) == ("failed", "killed")
    resumed = supervisor.resume(run.id)
    assert resumed.status == "running"
    final = supervisor.wait(run.id, timeout=180)
    assert final.status == "succeeded" and final.step == 20
    events = event_log.read_events(supervisor.run_path(final))
    resumed_from = next(e["checkpoint"] for e in events if e["event"] == "resume")
    step = int(resumed_from.split("-")[1])  # the last complete checkpoint before the kill (every 4 steps)
    assert step >= 8 and step % 4 == 0
    steps = [p["step"] for p in event_log.curves(events)["log"]]
    assert steps == sorted(set(steps)) and steps[-1] == 20


def test_cancel_stops_saves_and_a_second_cancel_is_harmless(setup):
    project, made, config = setup
    run = launcher.launch(config(max_steps=400), project.id)
    wait_until(lambda: event_log.curves(event_log.read_events(supervisor.run_path(run)))["eval"], 120)
    supervisor.cancel(run.id)
    supervisor.cancel(run.id)
    final = supervisor.wait(run.id, timeout=60)
    assert final.status == "cancelled"
    assert event_log.final_event(event_log.read_events(supervisor.run_path(final)))["outcome"] == "cancelled"
    from engine.train.trainer import complete_checkpoints

    assert complete_checkpoints(supervisor.run_path(final))  # it saved on the way out
    supervisor.cancel(run.id)  # harmless once it has ended
    assert supervisor.get_run(run.id).status == "cancelled"
    # the Notebook's best validation loss counts the validation points of a run that did not succeed
    best = summary.best_validation(supervisor.list_runs(project.id))
    assert best is not None and best[0].run.id == run.id and best[1] > 0


def test_a_trainer_ignoring_sigterm_is_killed_with_its_group(setup, monkeypatch):
    project, made, config = setup
    monkeypatch.setenv("STUDIO_FAULT", "ignore_sigterm")
    monkeypatch.setenv("STUDIO_CANCEL_GRACE", "2")
    run = launcher.launch(config(max_steps=400), project.id)
    wait_until(lambda: supervisor.get_run(run.id).step >= 2, 120)
    pid = supervisor.get_run(run.id).pid
    supervisor.cancel(run.id)
    start = time.monotonic()
    final = supervisor.wait(run.id, timeout=10, poll=0.2)
    assert final.status == "cancelled" and time.monotonic() - start < 2 + 2
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)  # the whole group is gone


@pytest.mark.parametrize("fault,kind", [("raise:gpu_oom:3", "gpu_oom"), ("raise:disk_full:3", "disk_full"),
                                        ("raise:crash:3", "crashed")])
def test_injected_failures_are_classified(setup, monkeypatch, fault, kind):
    project, made, config = setup
    monkeypatch.setenv("STUDIO_FAULT", fault)
    run = launcher.launch(config(max_steps=30), project.id)
    final = supervisor.wait(run.id, timeout=120)
    assert (final.status, final.error_kind) == ("failed", kind)
    assert final.error_message and "\n" not in final.error_message.strip()
    assert final.log_tail


def test_wandb_at_a_dead_address_does_not_fail_the_run(setup, monkeypatch):
    project, made, config = setup
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.setenv("STUDIO_WANDB_INIT_TIMEOUT", "5")
    run = launcher.launch(config(max_steps=6, wandb_mode="online"), project.id)
    final = supervisor.wait(run.id, timeout=180)
    assert final.status == "succeeded"
    events = event_log.read_events(supervisor.run_path(final))
    assert any(e["event"] == "note" and "W&B online failed" in e["message"] for e in events)
    config_text = (supervisor.run_path(final) / "config.json").read_text()
    assert "x" * 40 not in config_text and "x" * 40 not in (final.log_tail or "")


def test_a_machine_without_wandb_still_trains(setup, monkeypatch, tmp_path):
    """Seen on a lent GPU machine whose image has no wandb: the trainer crashed at `import wandb`."""
    project, made, config = setup
    shadow = tmp_path / "no-wandb"
    shadow.mkdir()
    # None in sys.modules is how Python spells "not importable": `import wandb` raises ModuleNotFoundError and
    # importlib.util.find_spec("wandb") is None, as on a machine where it was never installed
    (shadow / "sitecustomize.py").write_text("import sys\nsys.modules['wandb'] = None\n")
    monkeypatch.setenv("PYTHONPATH", str(shadow))
    run = launcher.launch(config(max_steps=2, wandb_mode="offline"), project.id)
    final = supervisor.wait(run.id, timeout=180)
    assert final.status == "succeeded", final.error_message
    events = event_log.read_events(supervisor.run_path(final))
    assert any(e["event"] == "note" and "W&B is not installed" in e["message"] for e in events)


def test_queue_is_fifo_and_a_double_launch_is_one_run(setup):
    project, made, config = setup
    first = launcher.launch(config(max_steps=6), project.id, request_key="click-1")
    again = launcher.launch(config(max_steps=6), project.id, request_key="click-1")
    second = launcher.launch(config(max_steps=6), project.id, request_key="click-2")
    assert first.id == again.id and len(supervisor.list_runs()) == 2
    assert (first.status, second.status) == ("running", "queued")
    assert supervisor.wait(first.id, timeout=120).status == "succeeded"
    assert supervisor.wait(second.id, timeout=120).status == "succeeded"


def test_launch_refusals(setup, ws, tmp_path):
    project, made, config = setup
    with pytest.raises(launcher.LaunchRefused, match="no config.json"):
        launcher.launch_checked(config(base_model=str(tmp_path / "missing")), project.id)
    with pytest.raises(launcher.LaunchRefused, match="not in the Hugging Face cache"):
        launcher.launch_checked(config(base_model="meta-llama/Llama-3.1-8B-Instruct"), project.id)
    with pytest.raises(launcher.LaunchRefused, match="locked test split"):
        launcher.launch_checked(config(eval_file=str(split.split_path(made, "test"))), project.id)
    with pytest.raises(launcher.LaunchRefused, match="QLoRA needs a CUDA GPU"):
        launcher.launch_checked(config(technique="qlora"), project.id)
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{oops\n" + "\n".join(json.dumps(r) for r in sample.generate(20)) + "\n")
    version = versions.import_file(project.id, bad, "bad.jsonl")
    with pytest.raises(launcher.LaunchRefused, match="blocking errors"):
        launcher.launch_checked(config(dataset_version_id=version.id), project.id)
    assert supervisor.list_runs() == []


def test_short_disk_is_refused(setup, monkeypatch):
    project, made, config = setup
    import shutil as real_shutil

    usage = real_shutil.disk_usage("/")
    monkeypatch.setattr(launcher.shutil, "disk_usage", lambda path: usage._replace(free=1000))
    with pytest.raises(launcher.LaunchRefused, match=r"The disk has 0\.0 MB free; the checkpoints need about \d+ MB\."):
        launcher.launch_checked(config(), project.id)
    assert launcher.size_text(3.2e9) == "3.2 GB" and launcher.size_text(250e6) == "250 MB"


def test_mix_in_adds_the_requested_share(setup, ws):
    project, made, config = setup
    general = ws.root / "general.jsonl"
    general.write_text("".join(json.dumps({"messages": [{"role": "user", "content": f"What is {i} plus {i}?"},
                                                        {"role": "assistant", "content": f"It is {2 * i}."}]}) + "\n"
                               for i in range(200)))
    from engine.train.examples import training_rows

    base = training_rows(config())
    mixed = training_rows(config(mix_file=str(general), mix_share=0.2))
    added = len(mixed) - len(base)
    assert added == round(len(base) * 0.2 / 0.8)
    assert mixed[:len(base)] == base


def test_a_restarted_dashboard_sees_the_run_still_going(setup, ws):
    """The process that launched the run exits (as a dashboard would die); a new one sees it running, same pid."""
    project, made, config = setup
    cfg = config(max_steps=400)
    path = ws.root / "cfg.json"
    cfg.save(path)
    code = ("import sys\nfrom engine.train import launcher\nfrom engine.train.config import RunConfig\n"
            f"r = launcher.launch(RunConfig.load({str(path)!r}), {project.id})\nprint(r.id, r.pid)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60,
                         env={**os.environ, "STUDIO_HOME": str(ws.root)})
    run_id, pid = map(int, out.stdout.split())
    first = wait_until(lambda: (r := supervisor.get_run(run_id)).step >= 2 and r, 120)
    assert first.status == "running" and first.pid == pid
    later = wait_until(lambda: (r := supervisor.get_run(run_id)).step > first.step + 2 and r, 60)
    assert later.status == "running" and later.pid == pid

    at = app_as("analyst", timeout=60).run()
    at.switch_page("pages/runs.py").run()
    row = at.dataframe[0].value.iloc[0]
    assert "running" in row["status"] and row["pid"] == pid
    supervisor.cancel(run_id)
    assert supervisor.wait(run_id, timeout=60).status == "cancelled"


def test_early_stopping_stops_and_keeps_the_best(setup):
    project, made, config = setup
    # A learning rate far too high: validation loss rises after the first evaluations, patience 1 stops the run.
    run = launcher.launch(config(max_steps=80, learning_rate=0.5, early_stopping=True, early_stopping_patience=1,
                             eval_steps=2, save_steps=2), project.id)
    final = supervisor.wait(run.id, timeout=180)
    assert final.status == "succeeded" and final.step < 80
    from engine.train.summary import summarize

    summary = summarize(final)
    assert summary.stopped_early and summary.best_step is not None
    evals = summary.curves["eval"]
    assert min(evals, key=lambda e: e["eval_loss"])["step"] == summary.best_step


def test_locked_test_records_in_training_data_fail_as_data_error(setup, ws):
    """Even a run started without the launcher's checks cannot train on the locked test split."""
    project, made, config = setup
    sneaky = ws.root / "sneaky.jsonl"
    sneaky.write_text(split.split_path(made, "train").read_text() + split.split_path(made, "test").read_text())
    run = launcher.launch(config(train_file=str(sneaky)), project.id)
    final = supervisor.wait(run.id, timeout=120)
    assert (final.status, final.error_kind) == ("failed", "data_error")
    assert "locked test split" in final.error_message


def test_exit_classification():
    from engine.jobs.failures import classify_exit

    assert classify_exit(-signal.SIGKILL, rss_fraction=0.95)[0] == "host_oom"
    assert classify_exit(-signal.SIGKILL, rss_fraction=0.2)[0] == "killed"
    assert classify_exit(-signal.SIGTERM)[0] == "killed"
    assert classify_exit(None)[0] == "killed"
    assert classify_exit(3)[0] == "crashed"


def test_truncated_metrics_line_is_skipped(tmp_path):
    path = tmp_path / event_log.METRICS_FILE
    lines = [{"event": "log", "step": i, "loss": 3 - i * 0.1} for i in range(1, 5)]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines) + '{"event": "log", "step": 5, "lo')
    c = event_log.curves(event_log.read_events(tmp_path))
    assert [p["step"] for p in c["log"]] == [1, 2, 3, 4]


def test_overfitting_alarm():
    events = [{"event": "log", "step": s, "loss": 2.0 - s * 0.05} for s in range(0, 40, 2)]
    events += [{"event": "eval", "step": s, "eval_loss": v} for s, v in ((10, 1.5), (20, 1.6), (30, 1.7), (38, 1.8))]
    assert "memorizing" in event_log.overfitting_alarm(events)
    events[-1]["eval_loss"] = 1.4
    assert event_log.overfitting_alarm(events) is None
