"""The model card of a version, in the Hugging Face format (YAML metadata with base_model, license, datasets, tags
and model-index metrics, then Markdown sections), written from its lineage: intended use, training data with counts
and quality findings, training settings, evaluation with intervals, human review, forgetting, A/B decisions,
limitations. Shown on the Models page and written with every export.

Every string a user or a model gave (project and dataset names, system prompt, reasons, user names, base model) goes
into the body through engine.markdown (escaped, on one line) and into the metadata through the YAML writer (quoted
as YAML needs); base_model is a hub id or absent, never a path on this machine."""

from __future__ import annotations

from typing import Any

from engine.data import quality, versions
from engine.markdown import md_inline as _t
from engine.models import registry
from engine.store import projects
from engine.store.tables import ModelVersion
from engine.train import base_models

# Hugging Face license identifiers for the names the catalog uses; anything else is "other" with its name.
_LICENSES = {"apache-2.0": "apache-2.0", "mit": "mit", "gemma": "gemma", "llama 3.2 community license": "llama3.2",
             "llama 3.1 community license": "llama3.1", "llama 3 community license": "llama3"}
_SETTINGS = ("technique", "learning_rate", "num_train_epochs", "max_steps", "per_device_train_batch_size",
             "gradient_accumulation_steps", "max_length", "lora_r", "lora_alpha", "lora_dropout", "target_modules",
             "num_virtual_tokens", "lr_scheduler_type", "warmup_steps", "weight_decay", "early_stopping", "seed")


def render(version: ModelVersion) -> str:
    """The card as Markdown with YAML front matter."""
    from huggingface_hub import ModelCard, ModelCardData  # only the card needs the hub client

    found = registry.current_lineage(version)
    license_id, license_name = _license(found["base_model"].get("license"))
    data = ModelCardData(model_name=version.label, base_model=base_models.hub_id_of(_origin(found)),
                         datasets=[_dataset_id(found)] if found.get("dataset") else None,
                         tags=["finetune-studio", found["facts"]["technique"] or "fine-tuned", found["facts"]["task"]],
                         eval_results=_eval_results(found) or None, library_name=_library(found),
                         pipeline_tag="text-generation", license=license_id, license_name=license_name)
    body = "\n\n".join(part for part in (
        f"# {_t(version.label)}",
        f"Stage: **{_t(version.stage)}**. Registered by {_t(found['registered']['by'])} on "
        f"{found['registered']['at'][:10]} from run {found['run']['id']} ({_t(found['registered']['bump_reason'])}).",
        _intended_use(version), _parent(found), _training_data(found), _settings(found), _evaluation(found), _review(found),
        _forgetting(found), _ab(found), _limitations(found)) if part)
    return str(ModelCard(f"---\n{data.to_yaml()}\n---\n\n{body}\n"))


def _origin(found: dict) -> str:
    """The base model the version's line began with (a DPO child's own base is its parent, merged)."""
    return str(found["facts"].get("origin") or found["facts"]["base_model"] or "")


def _parent(found: dict) -> str:
    parent = found["facts"].get("parent_version")
    if not parent:
        return ""
    objective = str(found["facts"].get("objective") or "sft").upper()
    beta = found["facts"].get("config", {}).get("beta")
    how = f"{objective} (beta {beta:g})" if objective != "SFT" and isinstance(beta, float | int) else objective
    reference = ", and its reference model" if objective in ("DPO", "KTO") else ""
    return (f"## Starting point\n\nTrained with {how} from {_t(parent)}: that version's weights, merged, are this "
            f"model's starting point{reference}.")


def _base_name(found: dict) -> str:
    """The base model as the card names it: its hub id, else only the last part of a local path."""
    name = _origin(found)
    return base_models.hub_id_of(name) or _shown(name)


def _shown(name: str) -> str:
    from pathlib import PurePath

    return PurePath(name).name if "/" in name and not base_models.hub_id_of(name) else name


def _license(name: str | None) -> tuple[str, str | None]:
    """(Hugging Face license id, the license's own name when the id is "other")."""
    if not name:
        return "unknown", None
    known = _LICENSES.get(name.strip().lower())
    return (known, None) if known else ("other", name.strip()[:100])


def _library(found: dict) -> str:
    return "peft" if found["facts"]["technique"] in ("lora", "qlora", "prompt_tuning", "prefix_tuning") \
        else "transformers"


def _dataset_id(found: dict) -> str:
    d = found["dataset"]
    return f"{d['name'][:200]} (dataset version {d['id']}, sha256 {d['sha256'][:12]})"


def _eval_results(found: dict) -> list:
    from huggingface_hub import EvalResult  # only the card needs the hub client

    out = []
    for e in found.get("evaluations", []):
        if e["baseline"] != "base":
            continue
        for name, m in e["metrics"].items():
            out.append(EvalResult(task_type="text-generation", dataset_type="locked-test-split",
                                  dataset_name=f"locked test split ({e['n_examples']} examples)",
                                  metric_type=name, metric_value=round(float(m["finetuned"]), 4),
                                  metric_name=f"{name} (base {m['base']:.4f}; diff 95% interval "
                                              f"{m['ci_low']:+.4f} to {m['ci_high']:+.4f})"))
    return out


def _intended_use(version: ModelVersion) -> str:
    project = projects.get_project(version.project_id)
    prompt = (project.system_prompt or "").strip()
    lines = ["## Intended use", f"The {_t(project.task_type or 'chat')} task of the project \"{_t(project.name)}\"."]
    if prompt:
        lines.append(f"Production system prompt: \"{_t(prompt)}\".")
    lines.append("Use it on inputs like its training data; it was not evaluated outside that distribution.")
    return "\n\n".join(lines)


def _training_data(found: dict) -> str:
    d, s = found.get("dataset"), found.get("split")
    if not d:
        return ""
    lines = ["## Training data", f"{_t(d['name'])}: dataset version {d['id']} (v{d['version']}), {d['records']:,} "
             f"records, format {d['shape']}, sha256 `{d['sha256']}`."]
    fixes = [f"v{c['version']}: {_t(', '.join(str(x) for x in c['fixes']))} ({c['removed']} removed)"
             for c in d["chain"] if c["fixes"]]
    if fixes:
        lines.append("Fixes applied (newest first): " + "; ".join(fixes) + ".")
    if s:
        c = s["counts"]
        lines.append(f"Split (seed {s['seed']}): train {c['train']:,}, validation {c['validation']:,}, test "
                     f"{c['test']:,} (locked; its sha256 `{s['test_sha256']}`).")
    report = quality.cached_report(versions.get_version(d["id"]))
    if report is not None:
        found_rows = [f"{f.severity} {f.code} ({f.count})" for f in report.findings]
        lines.append("Quality findings: " + ("; ".join(found_rows) if found_rows else "none") + ".")
    return "\n\n".join(lines)


def _settings(found: dict) -> str:
    config = found["facts"]["config"]
    rows = [f"| {k} | {_t(config[k])} |" for k in _SETTINGS if config.get(k) is not None]
    r = found["run"]
    extra = (f"Trained {r.get('steps')} steps on {r.get('device')} ({r.get('precision')}); best validation loss "
             f"{r['best_eval_loss']:.4f} at step {r.get('best_step')}." if r.get("best_eval_loss") is not None
             else f"Trained {r.get('steps')} steps on {r.get('device')} ({r.get('precision')}).")
    return "\n".join(["## Training settings", "", f"Base model: {_t(_base_name(found))} (license "
                      f"{_t(found['base_model'].get('license') or 'unknown')}).", "", "| setting | value |", "|---|---|",
                      *rows, "", extra])


def _evaluation(found: dict) -> str:
    evals = found.get("evaluations", [])
    if not evals:
        return "## Evaluation\n\nNot evaluated yet."
    parts = ["## Evaluation", "Each row: the fine-tuned model against the baseline on the locked test split; the "
             "difference with its 95% paired bootstrap interval. Only an interval that excludes zero is a difference."]
    for e in evals:
        rows = [f"| {_t(k)} | {m['base']:.4f} | {m['finetuned']:.4f} | {m['diff']:+.4f} [{m['ci_low']:+.4f}, "
                f"{m['ci_high']:+.4f}] | {_t(m['verdict'])} |" for k, m in e["metrics"].items()]
        parts.append("\n".join([f"Against {_t(_shown(e['baseline_model']))} ({e['n_examples']} examples):", "",
                                "| metric | baseline | fine-tuned | difference | verdict |", "|---|---|---|---|---|",
                                *rows]))
    return "\n\n".join(parts)


def _review(found: dict) -> str:
    reviews = found.get("reviews", [])
    if not reviews:
        return "## Human review\n\nNo review campaign yet."
    lines = ["## Human review"]
    for r in reviews:
        if r["kind"] == "pairwise":
            lines.append(f"- Campaign {r['campaign']} (pairwise, {r.get('n') or 0} votes): {_t(r.get('verdict'))}")
        else:
            lines.append(f"- Campaign {r['campaign']} (ratings, {r.get('n_ratings') or 0} ratings).")
    return "\n".join(lines)


def _forgetting(found: dict) -> str:
    verdicts = [e["forgetting"] for e in found.get("evaluations", []) if e["baseline"] == "base" and e["forgetting"]]
    if not verdicts:
        return ""
    words = {"forgetting": "forgetting detected", "possible_forgetting": "possible forgetting (the interval reaches "
             "the threshold)", "retained": "general skills retained"}
    return f"## Forgetting\n\nAgainst the base model on general probes: {words.get(verdicts[0], verdicts[0])}."


def _ab(found: dict) -> str:
    decisions = found.get("ab_decisions", [])
    if not decisions:
        return ""
    return "## A/B decisions\n\n" + "\n".join(f"- {d['at'][:10]}: {_t(d['decision'])} ({_t(d['reason'])})"
                                               for d in decisions)


def _limitations(found: dict) -> str:
    evals = [e for e in found.get("evaluations", []) if e["baseline"] == "base"]
    n = evals[0]["n_examples"] if evals else 0
    items: list[Any] = [f"Evaluated on {n} locked test examples from the same data: results hold for inputs like "
                        "those, not beyond." if n else "No evaluation on held-out data yet."]
    gap = next((e["train_test_gap_warning"] for e in evals if e.get("train_test_gap_warning")), None)
    if gap:
        items.append(_t(gap))
    items.append("Automatic metrics compare wording with reference answers; they do not check facts or safety.")
    return "## Limitations\n\n" + "\n".join(f"- {i}" for i in items)
