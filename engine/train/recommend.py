"""Recommendations for a run: which base model, which hyper-parameters (each with its reason), and how much memory.

Model facts come from a local folder's config.json and safetensors headers, or from the catalog
(engine/catalog/models.json); never from a network call. The rules follow the fine-tuning guidance: learning rate about
1e-5 for full fine-tuning of 7B+ models and about 1e-4 under 1B, LoRA 1e-4 to 2e-4; 1-3 epochs (more for small data,
with early stopping); LoRA r 8, alpha 2r, q/v, dropout 0.05 to start.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

GPU_CHOICES = {"CPU only (this machine)": 0, "16 GB (T4, V100)": 16, "24 GB (L4, A10, RTX 4090)": 24,
               "40 GB (A100 40G)": 40, "48 GB (L40S, A6000)": 48, "80 GB (A100/H100 80G)": 80, "141 GB (H200)": 141}
_DTYPE_BYTES = {"F32": 4, "F16": 2, "BF16": 2, "I8": 1, "U8": 1, "F64": 8, "I64": 8, "I32": 4}


@dataclass
class ModelFacts:
    name: str
    params: float          # parameters
    context: int | None
    hidden: int
    layers: int
    license: str | None
    commercial: bool | None
    source: str            # "folder", "catalog" or "unknown"

    def to_dict(self) -> dict:
        return asdict(self)


@lru_cache(maxsize=1)
def catalog() -> list[dict]:
    data = json.loads((Path(__file__).parent / "catalog" / "models.json").read_text(encoding="utf-8"))
    return data["models"]


def _safetensors_params(folder: Path) -> int:
    """Parameter count from the safetensors headers (8-byte length, then JSON): no weights are read."""
    total = 0
    for file in folder.glob("*.safetensors"):
        with file.open("rb") as f:
            (length,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(length))
        for name, meta in header.items():
            if name != "__metadata__":
                total += math.prod(meta["shape"]) if meta["shape"] else 1
    return total


def model_facts(name_or_path: str) -> ModelFacts:
    folder = Path(name_or_path).expanduser()
    if (folder / "config.json").is_file():
        cfg = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        cfg = cfg.get("text_config", cfg)
        hidden = int(cfg.get("hidden_size") or cfg.get("n_embd") or 0)
        layers = int(cfg.get("num_hidden_layers") or cfg.get("n_layer") or 0)
        params = _safetensors_params(folder)
        if not params and hidden and layers:
            vocab = int(cfg.get("vocab_size", 32000))
            inter = int(cfg.get("intermediate_size", 4 * hidden))
            params = layers * (4 * hidden * hidden + 3 * hidden * inter) + vocab * hidden
        return ModelFacts(str(folder), float(params), cfg.get("max_position_embeddings"), hidden, layers, None, None,
                          "folder")
    for entry in catalog():
        if entry["id"].lower() == name_or_path.lower():
            return ModelFacts(entry["id"], entry["params_b"] * 1e9, entry["context"], entry["hidden"],
                              entry["layers"], entry["license"], entry["commercial"], "catalog")
    return ModelFacts(name_or_path, 0.0, None, 0, 0, None, None, "unknown")


def recommend_models(complexity: str, latency: str, gpu_gb: float, commercial_only: bool = True) -> list[dict]:
    """Catalog models that suit the task, fastest first, each with why (QLoRA memory must fit the GPU)."""
    low, high = (1, 8) if complexity == "simple" else (13, 72)
    if latency == "realtime":
        high = min(high, 8 if complexity == "simple" else 14)
    picks = []
    for entry in catalog():
        b = entry["params_b"]
        if not (low * 0.9 <= b <= high * 1.05) or (commercial_only and not entry["commercial"]):
            continue
        need = qlora_gb(b)
        if gpu_gb and need > gpu_gb * 0.9:
            continue
        why = [f"{b:g}B parameters suit {'simple' if complexity == 'simple' else 'complex reasoning'} tasks "
               f"({low}-{high}B)"]
        if latency == "realtime":
            why.append("small enough for real-time answers")
        if gpu_gb:
            why.append(f"QLoRA needs about {need:.0f} GB of your {gpu_gb:g} GB")
        why.append(f"license: {entry['license']}")
        picks.append({**entry, "why": "; ".join(why) + "."})
    return sorted(picks, key=lambda e: e["params_b"])


def qlora_gb(params_b: float) -> float:
    return params_b * 0.7 + 2.0  # 4-bit weights with overhead, adapters, optimizer and a little activation memory


def lora_trainable(facts: ModelFacts, r: int, target_modules: list[str]) -> float:
    """Adapter parameters: r * (in + out) for each targeted projection in each layer."""
    h = facts.hidden or int(math.sqrt(max(facts.params, 1) / 12 / max(facts.layers, 1)))
    per_module = {"q_proj": 2 * h, "k_proj": 1.25 * h, "v_proj": 1.25 * h, "o_proj": 2 * h, "gate_proj": 4.5 * h,
                  "up_proj": 4.5 * h, "down_proj": 4.5 * h}
    modules = list(per_module) if target_modules == ["all-linear"] else target_modules
    return facts.layers * r * sum(per_module.get(m, 2 * h) for m in modules)


def memory_estimate(facts: ModelFacts, technique: str, batch: int, max_length: int, precision: str = "bf16",
                    r: int = 8, target_modules: list[str] | None = None, gpus: int = 1,
                    distributed: str = "ddp") -> dict:
    """GB per GPU for weights, trainable adapters, gradients + optimizer state, and activations (no checkpointing).
    With several GPUs, zero2 splits gradients and optimizer state across them; zero3 and fsdp the weights and
    adapters too; ddp keeps a full copy on each (activations are per GPU in every case)."""
    from engine.train.distributed import memory_divisors  # (the strategies' table lives with the launcher)

    gb = 1024 ** 3
    p = facts.params
    weight_bytes = {"fp32": 4, "bf16": 2, "fp16": 2}.get(precision, 2)
    weights = p * (0.55 if technique == "qlora" else weight_bytes)
    if technique == "full":
        trainable = p
    elif technique in ("lora", "qlora"):
        trainable = lora_trainable(facts, r, target_modules or ["q_proj", "v_proj"])
    else:  # prompt / prefix tuning: a few virtual tokens per layer
        trainable = 20 * facts.hidden * (2 * facts.layers if technique == "prefix_tuning" else 1)
    adapters = 0.0 if technique == "full" else trainable * 4
    optimizer = trainable * 12  # fp32 gradients (4) + AdamW moments (8)
    if gpus > 1:
        split_weights, split_grads, split_state = memory_divisors(distributed, gpus)
        weights, adapters = weights / split_weights, adapters / split_weights
        optimizer = trainable * 4 / split_grads + trainable * 8 / split_state
    activations = batch * max_length * facts.hidden * facts.layers * 34 * (2 if precision == "fp32" else 1) / 2
    parts = {"weights": weights / gb, "adapters": adapters / gb, "optimizer": optimizer / gb,
             "activations": activations / gb}
    # the framework's own share: 10% of the rest (allocator fragmentation, temporary buffers) plus 0.5 GB (the CUDA
    # context and the libraries' workspaces); named so that the parts add up to the total
    parts["overhead"] = sum(parts.values()) * 0.1 + 0.5
    rounded = {k: round(v, 3) for k, v in parts.items()}
    rounded["total"] = round(sum(rounded.values()), 3)
    return rounded


def memory_verdict(estimate: dict, gpu_gb: float, technique: str, batch: int) -> str:
    """A plain verdict: fits, or the one change that makes it fit."""
    if not gpu_gb:
        return "CPU: fine for the demo model and small models; a real model wants a GPU."
    total, budget = estimate["total"], gpu_gb * 0.9
    if total <= budget:
        return f"Fits: about {total:.1f} GB of {gpu_gb:g} GB."
    fixed = (estimate["weights"] + estimate["adapters"] + estimate["optimizer"]) * 1.1 + 0.5  # overhead included
    if fixed > budget:
        change = {"full": "use LoRA, or QLoRA", "lora": "use QLoRA (4-bit base weights)"}.get(
            technique, "choose a smaller model or a bigger GPU")
        return f"Does not fit ({total:.1f} GB of {gpu_gb:g} GB, {fixed:.1f} GB before activations): {change}."
    fit = int(batch * (budget - fixed) / (estimate["activations"] * 1.1))
    if fit >= 1:
        return (f"Does not fit ({total:.1f} GB of {gpu_gb:g} GB): lower the batch size to {fit} and raise gradient "
                "accumulation to keep the effective batch.")
    change = "use QLoRA, or lower the max length" if technique in ("lora", "full") else "lower the max length"
    return f"Does not fit ({total:.1f} GB of {gpu_gb:g} GB): {change}."


SMALL_MODEL_PARAMS = 50e6  # under this, LoRA's low rank leaves too little capacity; full fine-tuning costs little


def recommend_technique(facts: ModelFacts) -> tuple[str, str]:
    """(technique, reason) for the model in hand."""
    if 0 < facts.params < SMALL_MODEL_PARAMS:
        return "full", (f"a model of {facts.params / 1e6:.1f}M parameters is cheap to train fully, and LoRA's low "
                        "rank would leave it too little to learn with")
    return "lora", "LoRA: a fraction of the memory of full fine-tuning, with quality close to it"


def recommend_hyperparameters(facts: ModelFacts, technique: str, n_examples: int, p99_tokens: float | None = None,
                              gpu_gb: float = 0, length_source: str = "this model's tokenizer and chat template"
                              ) -> dict[str, tuple]:
    """field -> (value, reason), to pre-fill the Train page and the quick CLI form."""
    out: dict[str, tuple] = {"technique": recommend_technique(facts), "learning_rate": _learning_rate(facts, technique)}
    out["num_train_epochs"] = _epochs(n_examples, 0 < facts.params < SMALL_MODEL_PARAMS)
    if 0 < facts.params < SMALL_MODEL_PARAMS:
        out["lora_r"] = (32, f"a small model ({facts.params / 1e6:.1f}M parameters): a large rank, or the adapter "
                             "has almost nothing to learn with")
        out["lora_alpha"] = (64, "alpha = 2 x rank")
        out["target_modules"] = (["all-linear"], "every linear layer: a small model needs all the capacity it has")
    else:
        out["lora_r"] = (8, "rank 8 to start; raise to 16-64 if the task is hard and loss plateaus")
        out["lora_alpha"] = (16, "alpha = 2 x rank")
        out["target_modules"] = attention_targets(facts)
    out["lora_dropout"] = (0.05, "light regularization")
    if p99_tokens:
        out["max_length"] = _max_length(facts, p99_tokens, length_source)
    batch = 8
    if gpu_gb:
        for candidate in (16, 8, 4, 2, 1):
            est = memory_estimate(facts, technique, candidate, out.get("max_length", (1024,))[0])
            if est["total"] <= gpu_gb * 0.9:
                batch = candidate
                break
        else:
            batch = 1
        out["per_device_train_batch_size"] = (batch, f"the largest of 16/8/4/2/1 that fits {gpu_gb:g} GB")
    else:
        out["per_device_train_batch_size"] = (batch, "8 when no GPU is chosen; pick the target GPU for a "
                                                     "batch size that fits its memory")
    steps_per_epoch = max(1, n_examples // batch)
    total = int(steps_per_epoch * out["num_train_epochs"][0])
    every = max(5, total // 10)
    out["eval_steps"] = (every, "about ten evaluations per run")
    out["save_steps"] = (every, "a checkpoint at every evaluation (early stopping restores the best one)")
    out["logging_steps"] = (max(1, min(10, every // 2)), "several points between evaluations")
    return out


_DATA_REASONS = {
    "dpo": "the data holds preference pairs (a chosen and a rejected answer): DPO learns from both",
    "kto": "the data holds answers labelled good or bad, not pairs: KTO learns from them unpaired",
    "sft": "the data holds answers only: SFT learns them",
}


def recommend_preference(rec: dict[str, tuple], objective: str, n_records: int, labels: tuple[int, int],
                         data_default: str) -> dict[str, tuple]:
    """The recommendations for a preference run (dpo, orpo or kto) on `n_records` training records, from the SFT
    ones; labels: the answers labelled (good, bad), a pair counting one of each."""
    out = dict(rec)
    out["objective"] = (objective, _DATA_REASONS[objective] if objective == data_default else
                        f"as chosen ({_DATA_REASONS[data_default]}, the default)")
    if objective == "orpo":
        out["beta"] = (0.1, "ORPO's lambda from its paper: the weight of the preference term next to the SFT loss")
    elif n_records < 1000:
        out["beta"] = (0.2, f"{n_records:,} records is little data: a higher beta keeps the model nearer its "
                            "reference, so a few noisy examples cannot pull it far")
    else:
        out["beta"] = (0.1, f"{n_records:,} records: 0.1, the usual start (lower moves further from the reference)")
    out["learning_rate"] = _preference_step(rec, objective)
    if objective == "kto":
        out.update(_kto_weights(*labels))
    return out


def _preference_step(rec: dict[str, tuple], objective: str) -> tuple[float, str]:
    """ORPO takes the SFT step; DPO with an adapter half of it; DPO of every weight, and KTO, a tenth."""
    lr, why = rec["learning_rate"]
    if objective == "orpo":
        return lr, f"the SFT step ({why}): ORPO's loss includes SFT's, and it starts from the base model with no " \
                   "reference"
    if objective == "dpo" and rec["technique"][0] in ("lora", "qlora"):
        # bench/dpo.py --gain --pairs style, SmolLM2, 30 steps: at a tenth (2e-5) held-out preference accuracy went
        # 0.15 -> 0.20 (no detectable difference); at half (1e-4) 0.15 -> 1.00, interval [+0.70, +1.00]
        return lr / 2, f"half the SFT step ({lr:g}: {why}): an adapter moves little per step, and at a tenth 30 DPO " \
                       "steps left held-out preferences where they were (bench/dpo.py --gain)"
    return lr / 10, f"a tenth of the SFT step ({lr:g}: {why}); {objective.upper()} refines a model that already " \
                    "answers, and a large step over-optimises the margins"


def _kto_weights(good: int, bad: int) -> dict[str, tuple]:
    """KTO's loss weights: its authors keep desirable_weight x good / (undesirable_weight x bad) between 1 and 4/3,
    so the rarer label is weighed up just enough."""
    if not good or not bad:
        why = "every answer is labelled the same way, so there is nothing to balance (KTO needs both)"
        return {"desirable_weight": (1.0, why), "undesirable_weight": (1.0, why)}
    ratio = good / bad
    if 1 <= ratio <= 4 / 3:
        why = f"{good:,} good and {bad:,} bad answers are balanced (ratio {ratio:.2f}, within KTO's 1 to 4/3)"
        return {"desirable_weight": (1.0, why), "undesirable_weight": (1.0, why)}
    if ratio > 4 / 3:
        weight = math.floor(min(ratio, 100.0) * 100) / 100
        return {"desirable_weight": (1.0, "the good answers are the common label"),
                "undesirable_weight": (weight, f"{good:,} good and {bad:,} bad answers: the bad ones weigh {weight:g}x "
                                               f"so the weighted ratio is {good / (bad * weight):.2f}, within KTO's "
                                               "recommended 1 to 4/3")}
    weight = math.ceil(min(1 / ratio, 100.0) * 100) / 100
    return {"desirable_weight": (weight, f"{good:,} good and {bad:,} bad answers: the good ones weigh {weight:g}x so "
                                         f"the weighted ratio is {good * weight / bad:.2f}, within KTO's recommended "
                                         "1 to 4/3"),
            "undesirable_weight": (1.0, "the bad answers are the common label")}


def _learning_rate(facts: ModelFacts, technique: str) -> tuple[float, str]:
    b = facts.params / 1e9
    if 0 < b < 0.01:
        return 2e-3, "a tiny model (under 10M parameters, like the demo) learns with a larger step"
    if technique == "full":
        return (1e-5, "full fine-tuning of a 7B+ model: about 1e-5") if b >= 7 else \
               (1e-4, "full fine-tuning of a model under 1B: about 1e-4") if b < 1 else \
               (2e-5, "full fine-tuning of a 1-7B model: between 1e-4 (small) and 1e-5 (7B+)")
    if technique in ("lora", "qlora"):
        return 2e-4, "LoRA typically 1e-4 to 2e-4"
    return 3e-3, "prompt and prefix tuning train few parameters and want a large step (1e-3 to 1e-2)"


def _epochs(n_examples: int, small_model: bool) -> tuple[float, str]:
    if n_examples < 1000:
        return (8.0, f"{n_examples:,} examples is small data and a small model learns slowly: 8 epochs, early "
                     "stopping keeps the best checkpoint") if small_model else \
            (3.0, f"{n_examples:,} examples is small data: 3 epochs, with early stopping to catch overfitting")
    if n_examples < 10000:
        return (4.0 if small_model else 2.0, f"{n_examples:,} examples: "
                + ("4 epochs for a small model" if small_model else "2 epochs"))
    return (2.0 if small_model else 1.0, f"{n_examples:,} examples: "
            + ("2 passes for a small model" if small_model else "one pass is usually enough"))


def _max_length(facts: ModelFacts, p99_tokens: float, source: str) -> tuple[int, str]:
    """The 99th percentile of the examples' lengths, rounded up to a multiple of 64, never above the context: a
    longer max length only costs memory (and, with padding, time) for tokens no example has."""
    length = 64 * math.ceil(max(p99_tokens, 1) / 64)
    why = (f"99% of your examples fit ({p99_tokens:.0f} tokens at the 99th percentile under {source}, rounded up "
           "to a multiple of 64), so they are not cut")
    if facts.context and length > facts.context:
        length = facts.context
        why = (f"the model's context ({facts.context:,} tokens); over 1% of your examples are longer "
               f"({p99_tokens:.0f} tokens at the 99th percentile) and will be cut")
    return int(length), why


# Attention projections by the names architectures give them, preferred first: separate query and value
# projections (Llama, Mistral, Qwen, Gemma, SmolLM), else the fused query-key-value one (Phi-3, GPT-2, Falcon, MPT).
_SEPARATE = ("q_proj", "v_proj")
_FUSED = ("qkv_proj", "c_attn", "query_key_value", "Wqkv", "W_pack")


def linear_module_names(facts: ModelFacts) -> set[str]:
    """The last name part of every 2-D weight in the model folder's safetensors headers (no weights are read)."""
    folder = Path(facts.name)
    names: set[str] = set()
    for file in folder.glob("*.safetensors") if folder.is_dir() else []:
        with file.open("rb") as f:
            (length,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(length))
        names |= {key.rsplit(".", 2)[-2] for key, meta in header.items()
                  if key.endswith(".weight") and "." in key and len(meta.get("shape", [])) == 2}
    return names


def attention_targets(facts: ModelFacts) -> tuple[list[str], str]:
    """LoRA target modules from the model's real module names (a folder), else the Llama-family names."""
    names = linear_module_names(facts) if facts.source == "folder" else set()
    if not names or set(_SEPARATE) <= names:
        return list(_SEPARATE), "query and value projections to start; all-linear for more capacity"
    fused = next((n for n in _FUSED if n in names), None)
    if fused:
        return [fused], f"this model's fused query-key-value projection ({fused}); all-linear for more capacity"
    return ["all-linear"], "this model names its layers differently: every linear layer"
