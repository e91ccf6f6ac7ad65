"""Training on several GPUs (or several CPU processes): an Accelerate config written into the run folder from
Accelerate's own config classes, and `accelerate launch` of the trainer with it.

    python -m engine.train.distributed RUN_DIR [--resume]

is the command the supervisor runs for a config with num_gpus > 1: it writes <run>/accelerate.yaml from
<run>/config.json, then replaces itself with `accelerate launch --config_file <run>/accelerate.yaml -m engine.train
RUN_DIR` (exec: the supervisor's signals reach the launcher directly). Strategies: ddp (a full copy per GPU),
zero2 and zero3 (DeepSpeed: gradients and optimizer state sharded; zero3 the weights too), fsdp (PyTorch FSDP2:
everything sharded). Several CPU processes (device cpu) train with ddp over gloo (tests and CPU-only boxes).
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

from engine.train.config import RunConfig

CONFIG_NAME = "accelerate.yaml"
# What each strategy shards across the N processes: (weights, gradients, optimizer state).
SHARDED = {"ddp": (False, False, False), "zero2": (False, True, True), "zero3": (True, True, True),
           "fsdp": (True, True, True)}


def mixed_precision(config: RunConfig) -> str:
    if config.device == "cpu":
        return "no"
    return "fp16" if config.precision == "fp16" else "no" if config.precision == "fp32" else "bf16"


def cluster_config(config: RunConfig):
    """Accelerate's ClusterConfig for this run (one machine, num_gpus processes)."""
    from accelerate.commands.config.config_args import ClusterConfig  # Accelerate's own schema of its YAML
    from accelerate.utils import ComputeEnvironment, DistributedType  # (same)

    # ddp on CPU processes is launched as MULTI_GPU too: that is Accelerate's torchrun launcher (its CPU launcher
    # starts several processes only through MPI); the trainer runs them on the CPU (device cpu, use_cpu in the
    # trainer's arguments), and Accelerate joins them over gloo.
    kind = {"ddp": DistributedType.MULTI_GPU,
            "zero2": DistributedType.DEEPSPEED, "zero3": DistributedType.DEEPSPEED,
            "fsdp": DistributedType.FSDP}[config.distributed]
    deepspeed, fsdp = {}, {}
    if config.distributed in ("zero2", "zero3"):
        stage = 3 if config.distributed == "zero3" else 2
        deepspeed = {"zero_stage": stage, "gradient_accumulation_steps": config.gradient_accumulation_steps,
                     "gradient_clipping": 1.0, "offload_optimizer_device": "none", "offload_param_device": "none",
                     "zero3_init_flag": stage == 3, "zero3_save_16bit_model": stage == 3}
    if config.distributed == "fsdp":
        # FSDP2 wraps each decoder layer; FULL_STATE_DICT so the final save is one ordinary model (or adapter).
        fsdp = {"fsdp_version": 2, "fsdp_auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
                "fsdp_reshard_after_forward": True, "fsdp_state_dict_type": "FULL_STATE_DICT",
                "fsdp_cpu_ram_efficient_loading": True, "fsdp_offload_params": False,
                "fsdp_activation_checkpointing": False}
    return ClusterConfig(compute_environment=ComputeEnvironment.LOCAL_MACHINE, distributed_type=kind,
                         mixed_precision=mixed_precision(config), use_cpu=False, debug=False,
                         num_processes=config.num_gpus, num_machines=1, machine_rank=0,
                         main_training_function="main", rdzv_backend="static", same_network=True,
                         main_process_port=free_port(),
                         deepspeed_config=deepspeed, fsdp_config=fsdp)


def free_port() -> int:
    """A port free on this machine now: two runs at once must not meet at Accelerate's default 29500."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_config(config: RunConfig, run_dir: Path) -> Path:
    path = Path(run_dir) / CONFIG_NAME
    cluster_config(config).to_yaml_file(str(path))
    return path


def accelerate_command(config_file: Path | str, run_dir: Path | str, extra: list[str] | None = None) -> list[str]:
    return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config_file),
            "-m", "engine.train", str(run_dir), *(extra or [])]


def memory_divisors(strategy: str, processes: int) -> tuple[int, int, int]:
    """How many ways the weights, gradients and optimizer state are split (1: each GPU holds all of it)."""
    return tuple(processes if s else 1 for s in SHARDED[strategy])  # type: ignore[return-value]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        print("usage: python -m engine.train.distributed RUN_DIR [--resume]", file=sys.stderr)
        return 2
    run_dir = Path(argv[0]).resolve()
    config = RunConfig.load(run_dir / "config.json")
    command = accelerate_command(write_config(config, run_dir), run_dir, argv[1:])
    sys.stdout.flush()
    os.execv(command[0], command)
    return 0  # not reached: exec replaced this process


if __name__ == "__main__":
    sys.exit(main())
