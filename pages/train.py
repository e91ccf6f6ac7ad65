"""Train: data and split, base model (with recommendations), technique, hyper-parameters pre-filled with their
reasons, memory estimate, launch."""

import uuid

import pandas as pd
import streamlit as st

from engine.data import chat_template, split, versions
from engine.jobs import processes, supervisor
from engine.models import lifecycle, registry
from engine.store import workspace
from engine.train import base_models, launcher, recommend
from engine.train.config import TECHNIQUES, RunConfig
from ui import session, state
from ui.errors import shown_as_message
from ui.text import hide_paths, md_escape

session.require("analyst", "admin")  # reviewers and visitors never run this page
project = state.require_project()
st.title("Train")
st.caption("Every field is pre-filled with a recommendation and its reason. The run starts in its own process: "
           "closing the browser or restarting the dashboard does not stop it.")
HELP = {name: f.description for name, f in RunConfig.model_fields.items()}

# 1. Data --------------------------------------------------------------------------------------------------------
st.subheader("1 · Data")
version = state.pick_version(project.id, "train_version")
if version is None:
    st.info("No dataset yet: add one on the Data page.")
    st.stop()
splits = split.list_splits(version.id)
if not splits:
    st.info("This version has no split yet. The default is 80/10/10, near-duplicates kept on one side, test locked.")
    if st.button("Make the default split", type="primary"):
        with shown_as_message():
            split.create_split(version)
            st.rerun()
    st.stop()
by_id = {s.id: s for s in splits}
split_id = st.selectbox("Split", list(by_id), key="train_split",
                        format_func=lambda i: f"split {i}: train {by_id[i].counts['train']:,} · validation "
                                              f"{by_id[i].counts['validation']:,} · test {by_id[i].counts['test']:,} "
                                              "(locked)")
made = by_id[split_id]
st.caption("Training uses the train part; evaluation and early stopping the validation part. The test part is locked "
           "for the final comparison with the base model and is refused for training or model selection.")

# 2. Base model ----------------------------------------------------------------------------------------------------
st.subheader("2 · Base model")
demo_path = workspace.current().demo_model
with st.expander("Recommend a model for my task", expanded=False):
    c1, c2, c3 = st.columns(3)
    complexity = c1.radio("Task", ["simple", "complex"], key="train_complexity",
                          format_func={"simple": "Simple (classification, extraction, style)",
                                       "complex": "Complex reasoning"}.get)
    latency = c2.radio("Latency", ["realtime", "batch"], key="train_latency",
                       format_func={"realtime": "Real-time answers", "batch": "Batch / offline"}.get)
    gpu_label = c3.selectbox("GPU memory (budget)", list(recommend.GPU_CHOICES), index=2, key="train_gpu_budget")
    picks = recommend.recommend_models(complexity, latency, recommend.GPU_CHOICES[gpu_label])
    if picks:
        st.dataframe(pd.DataFrame([{"model": p["id"], "params (B)": p["params_b"], "context": p["context"],
                                    "license": p["license"], "why": p["why"]} for p in picks]),
                     hide_index=True, width="stretch")
    else:
        st.warning("No catalog model fits that budget; pick a bigger GPU or a simpler task.")
    st.caption("Simple tasks: 1-8B; complex reasoning: 13-70B; real-time use favours the smaller ones.")
registered = {v.label: v for v in registry.list_versions(project.id) if v.stage != "archived"}
parent = st.selectbox("Start from", [None, *registered], key="train_parent", help=HELP["parent_version"],
                      format_func=lambda label: "a base model" if label is None else
                      f"{label} ({registered[label].stage}): the registered version, merged") if registered else None
if parent:
    with shown_as_message(), st.spinner("Merging the version's weights (once; serving keeps them too)"):
        base_model = lifecycle.starting_weights(parent)
    st.caption(md_escape(f"Trains on {parent}'s weights; registered, the result is {parent}'s model's next minor "
                         "version (preference training usually starts from the SFT version)."))
else:
    imported = {b.folder: b.source for b in base_models.list_bases() if b.source != base_models.SMOLLM2_ID}
    labels = {str(demo_path): "Demo model (built offline, tiny, trains in seconds)",
              base_models.SMOLLM2_ID: "SmolLM2-135M-Instruct (a real instruct model; works offline)",
              **{folder: f"{source} (imported)" for folder, source in imported.items()},
              "other": "Another hub id, local folder or GGUF file..."}
    options = ([str(demo_path)] if (demo_path / "config.json").is_file() else []) + [base_models.SMOLLM2_ID] + \
        list(imported) + [m["id"] for m in recommend.catalog() if m["id"] != base_models.SMOLLM2_ID]
    choice = st.selectbox("Model", options + ["other"], key="train_model_choice",
                          format_func=lambda o: labels.get(o, o))
    base_model = (st.text_input("Hub id, folder or GGUF file", key="train_model_other",
                                help="A GGUF file (what Ollama and LM Studio keep on disk) is imported once into "
                                     "safetensors in the workspace.").strip() if choice == "other" else choice)
if not base_model:
    st.stop()
with shown_as_message():
    if base_models.needs_import(base_model):
        st.info("This model is imported once into safetensors in the workspace (about 30 s for SmolLM2 on 2 cores).")
        if st.button("Import the model", type="primary", key="train_import"):
            bar = st.progress(0.0, text="Starting")
            base_models.resolve(base_model, progress=lambda f, m: bar.progress(min(f, 1.0), text=m))
            st.rerun()
        st.stop()
    resolved = base_models.resolve(base_model)
if resolved.note:
    st.caption(md_escape(hide_paths(resolved.note)))
base_model = resolved.path
if base_models.local_folder(base_model) and not chat_template.read_template_files(
        base_models.local_folder(base_model))[0]:
    st.warning("This model has no chat template (a base model, not an instruct model). The studio trains it with "
               "its documented default template (### System / ### User / ### Assistant headers, answers ending with "
               "the model's end-of-sequence token), and serves it with the same template.")
facts = recommend.model_facts(base_model)
if facts.source == "unknown":
    st.warning("Unknown model: not a local folder with config.json and not in the catalog. Its size is unknown, so "
               "the recommendations assume a small model.")
else:
    f1, f2, f3 = st.columns(3)
    f1.metric("Parameters", f"{facts.params / 1e9:.2f} B" if facts.params >= 1e8 else f"{facts.params:,.0f}")
    f2.metric("Context", f"{facts.context:,}" if facts.context else "?")
    f3.metric("Commercial use", {True: "allowed", False: "not allowed", None: "see license"}[facts.commercial])
    if facts.license:
        st.caption(md_escape(f"License: {facts.license}"))

# 3. Technique and hyper-parameters ---------------------------------------------------------------------------------
st.subheader("3 · Technique and settings")
best_technique, technique_reason = recommend.recommend_technique(facts)
technique_labels = {"lora": "LoRA", "qlora": "QLoRA (4-bit, CUDA)", "full": "Full fine-tuning",
                    "prompt_tuning": "Prompt tuning", "prefix_tuning": "Prefix tuning"}
technique_labels[best_technique] += " (recommended)"
technique = st.selectbox("Technique", TECHNIQUES, index=TECHNIQUES.index(best_technique),
                         key=f"train_technique_{base_model}", help=HELP["technique"], format_func=technique_labels.get)
st.caption(md_escape(f"Recommended: {technique_labels[best_technique].removesuffix(' (recommended)')}, because "
                     f"{technique_reason}."))
here_gpus = processes.cuda_count()
gpu_label = st.selectbox("Target GPU", list(recommend.GPU_CHOICES), key="train_gpu", index=2 if here_gpus else 0,
                         help="For the memory estimate and the batch size recommendation. CPU only: the settings "
                              "are held to a run that ends in minutes on this machine.")
gpu_gb = recommend.GPU_CHOICES[gpu_label]
objective_labels = {"sft": "SFT: learn the answers", "dpo": "DPO: prefer the chosen answer of each pair",
                    "orpo": "ORPO: learn the chosen answers and prefer them, no reference model",
                    "kto": "KTO: learn from answers labelled good or bad"}
data_default = launcher.data_kind(str(split.split_path(made, "train")))[0]
objectives = list(objective_labels)
objective = st.selectbox("Objective", objectives, index=objectives.index(data_default), key=f"train_objective_{made.id}",
                         help=HELP["objective"], format_func=lambda o: objective_labels[o] +
                         (" (the data's default)" if o == data_default else ""))
rec = launcher.recommendations(base_model, made, technique, gpu_gb, objective)
st.caption(md_escape(f"Objective: {rec['objective'][1]}." if "objective" in rec else
                     "Objective: the data holds answers only: SFT learns them."))


def field(col, name, kind, **kw):
    """A widget pre-filled with the recommendation (when there is one), its reason shown under it."""
    value, reason = rec.get(name, (RunConfig.model_fields[name].default, None))
    key = f"train_{name}_{technique}_{objective}_{base_model}"
    if kind == "number":
        out = col.number_input(name.replace("_", " "), value=value, key=key, help=HELP[name], **kw)
    elif kind == "toggle":
        out = col.toggle(name.replace("_", " "), value=value, key=key, help=HELP[name])
    else:
        out = col.selectbox(name.replace("_", " "), kw["options"], index=kw["options"].index(value), key=key,
                            help=HELP[name])
    if reason:
        col.caption(md_escape(reason))
    return out


with st.form("train_form", enter_to_submit=False):  # Enter in a field never launches a run: only the button does
    values = {"objective": objective, "parent_version": parent}
    if objective != "sft":
        c1, c2, c3 = st.columns(3)
        values["beta"] = field(c1, "beta", "number", min_value=0.001, max_value=10.0, step=0.05, format="%.3f")
        if objective == "kto":
            values["desirable_weight"] = field(c2, "desirable_weight", "number", min_value=0.01, max_value=100.0)
            values["undesirable_weight"] = field(c3, "undesirable_weight", "number", min_value=0.01, max_value=100.0)
    c1, c2, c3 = st.columns(3)
    values |= {
        "learning_rate": field(c1, "learning_rate", "number", format="%.1e", min_value=1e-7, max_value=1.0),
        "num_train_epochs": field(c2, "num_train_epochs", "number", min_value=0.1, max_value=100.0, step=0.5),
        "max_steps": field(c3, "max_steps", "number", min_value=-1, step=10),
        "per_device_train_batch_size": field(c1, "per_device_train_batch_size", "number", min_value=1, max_value=1024),
        "gradient_accumulation_steps": field(c2, "gradient_accumulation_steps", "number", min_value=1),
        "max_length": field(c3, "max_length", "number", min_value=16, max_value=131072, step=64),
    }
    if technique in ("lora", "qlora"):
        c1, c2, c3 = st.columns(3)
        values["lora_r"] = field(c1, "lora_r", "number", min_value=1, max_value=512)
        values["lora_alpha"] = field(c2, "lora_alpha", "number", min_value=1, max_value=1024)
        values["lora_dropout"] = field(c3, "lora_dropout", "number", min_value=0.0, max_value=0.5, step=0.01)
        module_names = sorted(recommend.linear_module_names(facts) - {"lm_head", "embed_tokens"}) or [
            "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
        targets = st.multiselect("target modules", [*module_names, "all-linear"], default=rec["target_modules"][0],
                                 key=f"train_targets_{base_model}", help=HELP["target_modules"])
        st.caption(md_escape(rec["target_modules"][1]))
        values["target_modules"] = ["all-linear"] if "all-linear" in targets else targets
    elif technique in ("prompt_tuning", "prefix_tuning"):
        values["num_virtual_tokens"] = field(st, "num_virtual_tokens", "number", min_value=1, max_value=512)
    with st.expander("More settings"):
        c1, c2, c3 = st.columns(3)
        values["warmup_steps"] = field(c1, "warmup_steps", "number", min_value=0)
        values["lr_scheduler_type"] = field(c2, "lr_scheduler_type", "select",
                                            options=["cosine", "linear", "constant", "constant_with_warmup"])
        values["weight_decay"] = field(c3, "weight_decay", "number", min_value=0.0, max_value=1.0, step=0.01)
        values["eval_steps"] = field(c1, "eval_steps", "number", min_value=1)
        values["save_steps"] = field(c2, "save_steps", "number", min_value=1)
        values["logging_steps"] = field(c3, "logging_steps", "number", min_value=1)
        values["early_stopping"] = field(c1, "early_stopping", "toggle")
        values["early_stopping_patience"] = field(c2, "early_stopping_patience", "number", min_value=1)
        values["seed"] = field(c3, "seed", "number", min_value=0)
        values["assistant_only_loss"] = field(c1, "assistant_only_loss", "toggle")
        values["batching"] = field(c2, "batching", "select", options=["auto", "packing", "length_grouping",
                                                                      "padding"])
        values["precision"] = field(c3, "precision", "select", options=["auto", "fp32", "bf16", "fp16"])
        values["wandb_mode"] = field(c1, "wandb_mode", "select", options=["offline", "online", "disabled"])
        values["wandb_project"] = c1.text_input("wandb project", value=RunConfig.model_fields["wandb_project"].default,
                                                max_chars=128, key="train_wandb_project", help=HELP["wandb_project"])
        values["num_gpus"] = field(c2, "num_gpus", "number", min_value=1, max_value=64)
        values["distributed"] = field(c2, "distributed", "select", options=["ddp", "zero2", "zero3", "fsdp"])
        mix = [v for v in versions.list_versions(project.id) if v.id != version.id]
        mix_choice = c3.selectbox("mix in general examples from", [None] + [v.id for v in mix], key="train_mix",
                                  format_func=lambda i: "nothing" if i is None else
                                  next(f"v{v.version} · {v.name}" for v in mix if v.id == i),
                                  help="Examples of general skills limit catastrophic forgetting.")
        values["mix_share"] = c3.number_input("mix share", 0.0, 0.5, 0.1 if mix_choice else 0.0, 0.05,
                                              key="train_mix_share", help=HELP["mix_share"])
        if mix_choice:
            values["mix_file"] = str(versions.path_of(versions.get_version(mix_choice)))
        else:
            values["mix_share"] = 0.0
    name = st.text_input("Run name", value=f"{version.name}-{technique}", max_chars=120, key="train_name")
    launched = st.form_submit_button("Launch", type="primary")

if launched:
    with shown_as_message():
        config = launcher.config_from_form(made, base_model, name, technique, values)
        draft = st.session_state.setdefault("train_draft", uuid.uuid4().hex)  # a new draft makes a new request
        key = launcher.request_key(project.id, draft, config)
        run = launcher.launch_checked(config, project.id, request_key=key)
        st.session_state["train_launched"] = run.id  # a pointer only: the run itself is in the database
# The launch answers right under the button, and keeps answering on every rerun, with the run's current status.
last = None
if st.session_state.get("train_launched"):
    try:
        last = supervisor.get_run(st.session_state["train_launched"])
    except supervisor.RunError:  # deleted since: nothing to point at
        st.session_state.pop("train_launched")
if last is not None and last.project_id == project.id:
    st.success(f"Run {last.id} is {last.status}.")
    st.page_link("pages/runs.py", label=f"Watch run {last.id} on the Runs page", icon=":material/arrow_forward:",
                 query_params={"run": str(last.id)})

estimate = recommend.memory_estimate(facts, technique, int(values["per_device_train_batch_size"]),
                                     int(values["max_length"]), "fp32" if not gpu_gb else "bf16",
                                     int(values.get("lora_r", 8)), values.get("target_modules"),
                                     int(values.get("num_gpus", 1)), values.get("distributed", "ddp"))
st.subheader("Memory estimate")
m = st.columns(6)
for col, key, label in zip(m, ("weights", "adapters", "optimizer", "activations", "overhead", "total"),
                           ("weights", "adapters", "optimizer", "activations", "framework overhead", "total")):
    col.metric(label, f"{estimate[key]:.1f} GB" if estimate[key] >= 1 else f"{estimate[key] * 1024:.0f} MB",
               help="10% of the other parts plus 0.5 GB: allocator slack, temporary buffers, the CUDA context"
               if key == "overhead" else None)
st.write(recommend.memory_verdict(estimate, gpu_gb, technique, int(values["per_device_train_batch_size"])))

st.subheader("Time estimate")
with shown_as_message():
    timing = launcher.time_estimate(launcher.config_from_form(made, base_model, name, technique, values), made)
    st.metric("Expected duration on this machine", timing.duration())
    st.caption(md_escape(timing.sentence()))

if st.button("Start a new draft", help="Launching the same settings again then makes a new run."):
    st.session_state["train_draft"] = uuid.uuid4().hex
