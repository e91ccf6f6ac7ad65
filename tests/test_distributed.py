"""Several processes for one run: the Accelerate config written for each strategy (from Accelerate's own classes),
the command that starts it, the memory estimate with sharding, and a real 2-process DDP run of the demo model on the
CPU (gloo) whose loss curve matches a 1-process run with the same global batch."""

from __future__ import annotations

import json

import pytest
import yaml
from conftest import eventually, run_studio, running

from engine.jobs import event_log, supervisor
from engine.jobs.checkpoints import complete_checkpoints
from engine.train import distributed, launcher, recommend

pytestmark = pytest.mark.xdist_group("distributed")


def test_the_dry_run_shows_the_accelerate_command_and_its_config(setup, ws, tmp_path):
    from accelerate.commands.launch import launch_command_parser

    project, made, config = setup
    path = tmp_path / "cfg.json"
    config(num_gpus=2, distributed="fsdp").save(path)
    proc = run_studio("train", path, "--dry-run", env_home=ws.root)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split()[1:] == ["-m", "engine.train.distributed", "RUN_DIR"]
    parsed = launch_command_parser().parse_args(lines[2].split()[3:])
    assert parsed.config_file == "RUN_DIR/accelerate.yaml" and parsed.module and parsed.training_script == \
        "engine.train"
    assert lines[-1].startswith("# time: About ") and "on this machine's CPU" in lines[-1]
    shown = yaml.safe_load("\n".join(lines[lines.index("# accelerate.yaml:") + 1:-1]))
    assert shown["distributed_type"] == "FSDP" and shown["num_processes"] == 2


@pytest.mark.parametrize("strategy,kind", [("ddp", "MULTI_GPU"), ("zero2", "DEEPSPEED"), ("zero3", "DEEPSPEED"),
                                           ("fsdp", "FSDP")])
def test_each_strategy_writes_a_config_accelerate_reads_back(setup, tmp_path, strategy, kind):
    from accelerate.commands.config.config_args import ClusterConfig

    project, made, config = setup
    path = distributed.write_config(config(num_gpus=2, distributed=strategy), tmp_path)
    loaded = ClusterConfig.from_yaml_file(str(path))
    assert loaded.distributed_type == kind and loaded.num_processes == 2 and loaded.mixed_precision == "bf16"
    assert loaded.deepspeed_config.get("zero_stage") == {"zero2": 2, "zero3": 3}.get(strategy)
    assert loaded.fsdp_config.get("fsdp_version") == (2 if strategy == "fsdp" else None)
    assert 1024 < loaded.main_process_port < 65536


def test_the_memory_estimate_divides_what_each_strategy_shards():
    facts = recommend.model_facts("meta-llama/Llama-3.1-8B-Instruct")
    one = recommend.memory_estimate(facts, "full", 1, 1024)
    ddp = recommend.memory_estimate(facts, "full", 1, 1024, gpus=4, distributed="ddp")
    zero2 = recommend.memory_estimate(facts, "full", 1, 1024, gpus=4, distributed="zero2")
    zero3 = recommend.memory_estimate(facts, "full", 1, 1024, gpus=4, distributed="zero3")
    assert ddp == one  # a full copy on each GPU
    assert zero2["weights"] == one["weights"] and zero2["optimizer"] == pytest.approx(one["optimizer"] / 4, rel=1e-3)
    assert zero3["weights"] == pytest.approx(one["weights"] / 4, rel=1e-3) and zero3["total"] < zero2["total"]
    assert zero3["activations"] == one["activations"]  # activations stay per GPU


def test_a_sharding_strategy_on_cpu_processes_is_refused_in_one_sentence(setup):
    project, made, config = setup
    with pytest.raises(Exception, match="several CPU processes train with ddp"):
        config(num_gpus=2, device="cpu", distributed="fsdp")


def _losses(run) -> dict[int, float]:
    logs = [e for e in event_log.read_events(supervisor.run_path(run)) if e["event"] == "log"]
    assert len({e["step"] for e in logs}) == len(logs)  # one line per step: only rank 0 writes the run's metrics
    return {e["step"]: e["loss"] for e in logs}


def test_two_cpu_processes_train_like_one_with_the_same_global_batch(setup, ws, demo_model):
    """Recommended settings, 12 steps: one process with batch B, two gloo DDP processes with B/2 each."""
    project, made, _ = setup
    base = launcher.config_for_split(made, str(demo_model), name="one", max_steps=12, logging_steps=1,
                                     wandb_mode="disabled")
    batch = base.per_device_train_batch_size
    assert batch % 2 == 0
    two = base.model_copy(update={"name": "two", "num_gpus": 2, "device": "cpu",
                                  "per_device_train_batch_size": batch // 2})
    first = supervisor.wait(launcher.launch_checked(base, project.id).id, timeout=600)
    second = supervisor.wait(launcher.launch_checked(two, project.id).id, timeout=600)
    assert (first.status, second.status) == ("succeeded", "succeeded"), (first.error_message, second.error_message)
    folder = supervisor.run_path(second)
    assert yaml.safe_load((folder / "accelerate.yaml").read_text())["distributed_type"] == "MULTI_GPU"  # torchrun
    starts = [e for e in event_log.read_events(folder) if e["event"] == "start"]
    assert starts[0]["world_size"] == 2 and starts[0]["rank"] == 0
    assert json.loads((folder / "rank-1" / "metrics.jsonl").read_text().splitlines()[0])["rank"] == 1
    assert (folder / "final" / "adapter_model.safetensors").is_file() or (folder / "final").is_dir()
    a, b = _losses(first), _losses(second)
    assert sorted(a) == sorted(b) and len(a) == 12  # one metrics stream, every step logged once
    relative = [abs(a[s] - b[s]) / a[s] for s in a]
    # The same global batch: the same curve (TRL logs the loss averaged over the ranks' tokens), up to float order
    # and dropout; measured identical to the 4 decimals logged with the recommended settings.
    assert max(relative) < 0.05, relative
    assert a[12] < a[1] and b[12] < b[1]  # and both learned


def test_cancelling_a_two_process_run_stops_both_ranks_at_one_step_and_saves(setup):
    """SIGTERM reaches the launcher and both ranks; they agree on the step to stop at, save, and end."""

    project, made, config = setup
    run = launcher.launch(config(max_steps=400, num_gpus=2, device="cpu", per_device_train_batch_size=2), project.id)
    eventually(lambda: supervisor.reconcile() or supervisor.get_run(run.id).step >= 3, 180, 0.2)
    folder = supervisor.run_path(supervisor.get_run(run.id))
    ranks = [json.loads(line)["pid"] for line in [(folder / "metrics.jsonl").read_text().splitlines()[0],
                                                  (folder / "rank-1" / "metrics.jsonl").read_text().splitlines()[0]]]
    supervisor.cancel(run.id)
    final = supervisor.wait(run.id, timeout=90)
    assert final.status == "cancelled"
    assert event_log.final_event(event_log.read_events(folder))["outcome"] == "cancelled"
    assert complete_checkpoints(folder)  # saved on the way out
    assert not [p for p in ranks if running(p)]
