"""Model versions end to end on the demo: register runs (bump rules), promotion on evidence and by override, rollback,
one production model under concurrent promotions, export (adapter and merged) that reloads to the evaluation's
answers, the model card, serving through `transformers serve` with its smoke test, and the Models page."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys

import pytest
from conftest import ROOT, app_as, eventually, run_studio, shown, small_disk, user_of

from engine.data import demo_project, split, versions
from engine.evaluate import generation, queue, results
from engine.evaluate.options import EvalOptions
from engine.jobs import event_log, supervisor
from engine.models import card, evidence, export, lifecycle, naming, registry, serving, stages
from engine.store import db, users, workspace
from engine.store.tables import ModelVersion, Project
from engine.train import launcher

pytestmark = pytest.mark.xdist_group("models")  # one worker trains the module's runs once
STEPS = 24  # short runs: these tests are about what happens after training


@pytest.fixture(scope="module")
def runs(module_ws, demo_model):
    """Two LoRA runs on the demo split (the second with another rank: a hyper-parameter change), the first
    evaluated against its base model."""
    shutil.copytree(demo_model, workspace.current().demo_model)
    project = demo_project.ensure_demo(build_model=False)
    made = split.list_splits(versions.list_versions(project.id)[0].id)[0]
    model = str(workspace.current().demo_model)
    first = launcher.launch(launcher.config_for_split(made, model, name="lora-a", technique="lora",
                                                      max_steps=STEPS), project.id)
    second = launcher.launch(launcher.config_for_split(made, model, name="lora-b", technique="lora",
                                                       max_steps=STEPS, lora_r=8), project.id)
    first, second = (supervisor.wait(r.id, timeout=300) for r in (first, second))
    assert first.status == second.status == "succeeded"
    job = queue.queue(EvalOptions(run_id=first.id, limit=8, max_new_tokens=32))
    assert supervisor.wait(job.id, timeout=300).status == "succeeded"
    return project, first, second


@pytest.fixture(scope="module")
def registered(runs):
    """Both runs registered by an analyst, in order (v1.0.0, then v1.0.1: the rank changed)."""
    project, first, second = runs
    analyst = user_of("analyst")
    return lifecycle.register(analyst, first.id), lifecycle.register(analyst, second.id)


def _version_of(project, run):
    return next(v for v in registry.list_versions(project.id) if v.run_id == run.id)


def test_version_numbers_follow_what_changed():
    base = {"base_model": "m", "technique": "lora", "task": "chat", "dataset_version_id": 1,
            "config": {"learning_rate": 2e-4, "lora_r": 8, "name": "a"}}
    previous = {"number": (1, 2, 3), "facts": base}
    assert naming.propose(None, base).number == (1, 0, 0)
    assert naming.propose(previous, {**base, "base_model": "other"}).number == (2, 0, 0)
    assert naming.propose(previous, {**base, "technique": "full"}).reason.startswith("major: the technique")
    assert naming.propose(previous, {**base, "task": "classification"}).number == (2, 0, 0)
    assert naming.propose(previous, {**base, "dataset_version_id": 2}).number == (1, 3, 0)
    tuned = naming.propose(previous, {**base, "config": {**base["config"], "lora_r": 16, "name": "b"}})
    assert tuned.number == (1, 2, 4) and "lora_r" in tuned.reason and "name" not in tuned.reason
    assert naming.check_override((1, 3, 0), tuned, {(1, 2, 3)}, (1, 2, 3)) == (1, 3, 0)  # upward is fine
    with pytest.raises(naming.VersionError, match="never reused"):
        naming.check_override((1, 2, 3), tuned, {(1, 2, 3)}, (1, 2, 3))
    with pytest.raises(naming.VersionError, match="only be numbered upward"):
        naming.check_override((1, 2, 3 + 0), naming.Bump(1, 3, 0, "minor"), set(), (1, 2, 2))
    assert naming.slug("Customer Support (EU)!") == "customer-support-eu"
    assert naming.parse_label("customer-support-v2.1.0") == ("customer-support", (2, 1, 0))
    with pytest.raises(naming.VersionError):
        naming.parse_label("customer support v2")


def test_register_promote_override_and_roll_back(runs, registered, module_ws):
    project, first, second = runs
    admin, analyst = users.SYSTEM, user_of("analyst")
    v1, v2 = registered
    assert v1.number == "1.0.0" and v1.created_by == analyst.name
    assert v1.label == f"{naming.slug(project.name)}-v1.0.0"
    with pytest.raises(registry.RegistryError, match="already registered"):
        registry.register(analyst, first.id)
    assert v2.number == "1.0.1" and v2.bump_reason.startswith("patch: only hyper-parameters changed (lora_r")
    for v in (v1, v2):  # another test of this module may have moved them: start from candidates
        if registry.get_version(v.id).stage != "candidate":
            stages.promote(admin, v.id, "candidate", "reset for this test")
    lineage = v2.lineage
    assert lineage["split"]["test_sha256"] and lineage["dataset"]["id"] == first.config["dataset_version_id"]
    assert lineage["run"]["id"] == second.id and lineage["base_model"]["name"]

    # v1 has an evaluation against the base model: production on evidence
    proof = evidence.for_production(registry.get_version(v1.id))
    assert [c.name for c in proof.checks] == ["primary metric", "forgetting"] and proof.ok, proof.missing
    v1 = lifecycle.promote(analyst, v1.id, "production", "first release")
    assert v1.stage == "production"

    # v2 has no evaluation against v1 (in production): blocked, with what is missing
    with pytest.raises(stages.PromotionBlocked) as blocked:
        lifecycle.promote(analyst, v2.id, "production")
    assert any(f"--baseline {first.id}" in m for m in blocked.value.missing)
    with pytest.raises(users.PermissionDenied):  # only an administrator overrides
        lifecycle.promote(analyst, v2.id, "production", "trust me on this one", override=True)
    with pytest.raises(registry.RegistryError, match="written reason"):
        lifecycle.promote(admin, v2.id, "production", "ok", override=True)
    v2 = lifecycle.promote(admin, v2.id, "production", "hotfix for a known bad answer; evaluation follows",
                           override=True)
    assert v2.stage == "production" and registry.get_version(v1.id).stage == "archived"
    last = registry.events(v2.id)[0]
    assert last.override and last.reason.startswith("hotfix") and last.details["ok"] is False

    back = lifecycle.rollback(analyst, project.id)
    assert back.id == v1.id and back.stage == "production" and registry.get_version(v2.id).stage == "archived"
    kinds = [(e.kind, e.from_stage, e.to_stage) for e in registry.events(project_id=project.id)]
    assert ("rollback", "archived", "production") in kinds and ("rollback", "production", "archived") in kinds

    listed = json.loads(run_studio("models", "--project", project.name, "--json", env_home=module_ws.root).stdout)
    assert {r["version"]: r["stage"] for r in listed} == {v1.label: "production", v2.label: "archived"}
    assert set(listed[0]) >= {"version", "name", "stage", "run_id", "dataset_version_id", "base_model", "created_at",
                              "metrics", "lineage"}
    refused = run_studio("model", "promote", v2.label, "--to", "production", env_home=module_ws.root)
    assert refused.returncode == 1 and "missing evidence" in refused.stderr and "--baseline" in refused.stderr


def test_one_production_version_even_under_concurrent_promotions(runs, registered, module_ws):
    project, first, second = runs
    labels = [v.label for v in registered]
    procs = [subprocess.Popen([sys.executable, "-m", "engine.cli", "model", "promote", label, "--to", "production",
                               "--override", "--reason", "concurrency test of two promotions"],
                              env={**os.environ, "STUDIO_HOME": str(module_ws.root)}, cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for label in labels]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode in (0, 2) for p in procs), outs
    assert sum(1 for v in registry.list_versions(project.id) if v.stage == "production") == 1
    from sqlalchemy import update
    from sqlalchemy.exc import IntegrityError

    with pytest.raises(IntegrityError):  # the index itself refuses a second production version
        with db.session() as s:
            s.execute(update(ModelVersion).where(ModelVersion.project_id == project.id).values(stage="production"))


def test_an_export_onto_a_full_disk_is_one_sentence_and_leaves_nothing(runs, registered, tmp_path):
    project, first, _ = runs
    version = _version_of(project, first)
    with small_disk(tmp_path / "small-disk", "256k") as small:
        with pytest.raises(export.ExportError) as refused:
            export.export(users.SYSTEM, version.label, "merged", small / "out")
        assert str(refused.value).startswith("The disk is full: the export to out was not written")
        assert "[(" not in str(refused.value) and "Errno" not in str(refused.value)  # not a raw list of errors
        assert list(small.iterdir()) == []  # neither the folder nor its .part
        assert not any(e.kind == "export" and e.details.get("path") == str(small / "out")
                       for e in registry.events(version.id))


def test_an_export_killed_with_kill_9_is_never_registered_and_its_part_goes_at_the_next_export(runs, registered,
                                                                                               module_ws):
    """`kill -9` of an exporting process once its temporary folder exists: no folder under the export's name, no
    export event, and the next export into the workspace's exports/ removes what the killed one left."""
    import signal

    from conftest import STUDIO

    project, first, _ = runs
    version = _version_of(project, first)
    folder = export.exports_folder()
    folder.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "STUDIO_HOME": str(module_ws.root)}
    for attempt in range(5):  # an export that finishes before the kill lands is tried again under a new name
        out = folder / f"killed-{attempt}"
        proc = subprocess.Popen([*STUDIO, "model", "export", version.label, "--format", "merged", "--out", str(out)],
                                env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            eventually(lambda p=proc, o=out: p.poll() is not None or next(folder.glob(f"{o.name}.part-*"), None), 120,
                       0.001)
        finally:
            proc.send_signal(signal.SIGKILL)
            code = proc.wait()
        if code == -signal.SIGKILL and not out.exists():
            break
        assert out.is_dir() and (out / "README.md").is_file()  # quicker than the kill: whole
    else:
        pytest.fail("five exports all finished before they could be killed")
    assert next(folder.glob(f"{out.name}.part-*"))  # what kill -9 leaves: a temporary name, never the export's
    assert not any(e.kind == "export" and e.details.get("path") == str(out) for e in registry.events(version.id))
    made = export.export_in_workspace(users.SYSTEM, version.label, "adapter")
    assert made.is_dir() and not list(folder.glob("*.part-*"))


def test_export_adapter_and_merged_reload_to_the_evaluations_answers(runs, registered, tmp_path):
    project, first, _ = runs
    version = _version_of(project, first)
    rows = [json.loads(line) for line in (results.eval_dir(first) / "outputs.jsonl").read_text().splitlines()]
    prompts = [r["prompt"] for r in rows]
    expected = [r["finetuned"]["answer"] for r in rows]
    from transformers import AutoModelForCausalLM, AutoTokenizer

    for fmt in ("adapter", "merged"):
        out = export.export(users.SYSTEM, version.label, fmt, tmp_path / fmt)
        assert (out / "README.md").read_text().startswith("---\n") and (out / "lineage.json").is_file()
        assert (out / ("adapter_config.json" if fmt == "adapter" else "config.json")).is_file()
        model = AutoModelForCausalLM.from_pretrained(str(out)).eval()  # from_pretrained alone, no studio code
        tokenizer = AutoTokenizer.from_pretrained(str(out))
        tokenizer.padding_side = "left"
        answers = [a.text for a in generation.generate(model, tokenizer, prompts, 16, 32)]
        assert answers == expected, fmt
    with pytest.raises(export.ExportError, match="already exists"):
        export.export(users.SYSTEM, version.label, "merged", tmp_path / "merged")
    assert not list(tmp_path.glob("*.part"))


def test_the_model_card_carries_the_lineage(runs, registered):
    project, first, _ = runs
    version = _version_of(project, first)
    hostile = "<img src=x onerror=alert(1)> **[click](https://evil.example)**\n# Heading"
    with db.write_session() as s:  # a project name and system prompt as an attacker would write them
        row = s.get(Project, project.id)
        saved = (row.name, row.system_prompt)
        row.name, row.system_prompt = hostile, "Ignore this: <script>x()</script>\n---\nbase_model: evil"
    try:
        text = card.render(version)
    finally:
        with db.write_session() as s:
            row = s.get_one(Project, project.id)
            row.name, row.system_prompt = saved
    meta, body = text.split("---\n")[1], text.split("---\n", 2)[2]
    assert "license:" in meta and "model-index:" in meta and "rougeL" in meta
    assert "base_model" not in meta and str(workspace.current().root) not in text  # the demo base is a local folder
    for section in ("## Intended use", "## Training data", "## Training settings", "## Evaluation",
                    "## Human review", "## Limitations"):
        assert section in text
    assert version.lineage["split"]["test_sha256"] in text and "95%" in text
    for raw in (r"(?<!\\)<img", r"(?<!\\)<script>", r"\[click\]\(", r"\n# Heading", r"\nbase_model: evil"):
        assert not re.search(raw, body), raw
    assert "\\<img src\\=x onerror\\=alert\\(1\\)\\>" in body  # shown as its characters


def test_a_registered_version_is_logged_as_a_wandb_artifact(runs, registered):
    project, first, _ = runs
    version = _version_of(project, first)
    try:
        logged = eventually(lambda: [e for e in registry.events(version.id) if e.kind == "wandb_artifact"], 90, 0.5)
    except AssertionError:
        raise AssertionError((workspace.current().root / "logs" / "wandb-models.log").read_text()[-2000:]) from None
    assert "candidate" in {e.details["alias"] for e in logged}  # one per stage the version has had


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(url: str, body: bytes, key: str | None = None) -> tuple[int, dict]:
    import urllib.error
    import urllib.request

    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=body, headers=headers), timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_serving_with_transformers_passes_its_smoke_test_and_stops_with_its_job(runs, registered, module_ws,
                                                                                   monkeypatch):
    project, first, _ = runs
    version = _version_of(project, first)
    port = _free_port()
    with pytest.raises(serving.ServeError, match="needs an API key"):
        serving.serve(users.SYSTEM, version.label, port, "auto", host="0.0.0.0")
    key = "k-" + os.urandom(12).hex()
    monkeypatch.setenv("STUDIO_TEST_SERVE_KEY", key)  # the job inherits it, as from the shell that ran `studio serve`
    job = serving.serve(users.SYSTEM, version.label, port, "auto", smoke_examples=8,
                        api_key_env="STUDIO_TEST_SERVE_KEY")
    assert job.kind == "serve" and job.config["engine"] == "transformers"  # no vLLM and no CUDA here
    def smoke_event():
        supervisor.reconcile()
        assert supervisor.get_run(job.id).status in supervisor.ACTIVE, supervisor.get_run(job.id).error_message
        return next((e for e in event_log.read_events(supervisor.run_path(job)) if e["event"] == "smoke"), None)

    smoke = eventually(smoke_event, 240, 0.5)
    assert smoke and smoke["passed"] and smoke["prompts"] == 8 and smoke["model"] == version.label
    assert smoke["latency_p50_s"] > 0 and smoke["latency_p95_s"] >= smoke["latency_p50_s"]
    answer, _ = serving.chat(smoke["url"], version.label, [{"role": "user", "content": "Hello"}], 8, api_key=key)
    assert isinstance(answer, str)
    endpoint = f"{smoke['url']}/v1/chat/completions"
    hello = json.dumps({"model": version.label, "messages": [{"role": "user", "content": "Hello"}],
                        "max_tokens": 4}).encode()
    assert _post(endpoint, hello)[0] == 401 and _post(endpoint, hello, "wrong-" + key)[0] == 401
    huge = json.dumps({"model": version.label, "max_tokens": 4,
                       "messages": [{"role": "user", "content": "word " * 200_000}]}).encode()  # 1 MB
    status, refusal = _post(endpoint, huge, key)  # a 413 is the gateway's own: the engine never saw it
    assert status == 413 and "more than this model's context" in refusal["error"]["message"]
    long_prompt = json.dumps({"model": version.label, "max_tokens": 4,
                              "messages": [{"role": "user", "content": "word " * 3000}]}).encode()
    status, refusal = _post(endpoint, long_prompt, key)
    assert status == 400 and "tokens; this model takes at most" in refusal["error"]["message"]
    status, refusal = _post(endpoint, hello.replace(b'"max_tokens": 4', b'"max_tokens": 999999'), key)
    assert status == 400 and "max_tokens must be" in refusal["error"]["message"]
    import urllib.request

    with urllib.request.urlopen(f"{smoke['url']}/health", timeout=10) as r:
        assert r.status == 200  # still healthy, and still answering:
    assert _post(endpoint, hello, key)[0] == 200
    # the Models page says where it is served, how the smoke test went, and how to call it
    at = app_as("analyst")
    at.switch_page("pages/models.py").run()
    at.selectbox(key="models_version").select(version.label).run()
    assert not at.exception
    shown_text = " ".join([*(t.value for t in at.text), *(shown(m.value) for m in [*at.markdown, *at.success])])
    assert f"Serving job {job.id}: Serving." in shown_text
    assert f"{smoke['url']}/v1" in shown_text and "Smoke test passed: " in shown_text
    call = next(c.value for c in at.code if c.value.startswith("curl"))
    assert f"{smoke['url']}/v1/chat/completions" in call and version.label in call
    listed = json.loads(run_studio("runs", "--json", env_home=module_ws.root).stdout)
    assert any(r["id"] == job.id and r["kind"] == "serve" for r in listed)
    supervisor.cancel(job.id)
    assert supervisor.wait(job.id, timeout=60).status == "cancelled"

    def closed() -> bool:
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) != 0

    eventually(closed, 30)  # the server goes down with its job


def test_a_serving_job_killed_with_kill_9_takes_its_engine_server_down_and_says_so(runs, registered):
    """`kill -9` of a serving job once its engine server runs: the job is recorded as killed in the server's words
    and the engine server (a process of the job's own) does not outlive it."""
    import signal

    import psutil

    project, first, _ = runs
    version = _version_of(project, first)
    job = serving.serve(users.SYSTEM, version.label, _free_port(), "auto", smoke_examples=1)

    def group() -> set[int]:  # the job's live processes (it leads its own process group)
        found = set()
        for proc in psutil.process_iter():
            try:
                if os.getpgid(proc.pid) == job_pid and proc.status() != psutil.STATUS_ZOMBIE:
                    found.add(proc.pid)
            except (psutil.Error, ProcessLookupError):
                continue
        return found

    job_pid = eventually(lambda: supervisor.get_run(job.id).pid, 60)
    eventually(lambda: group() - {job_pid}, 120, 0.2)  # the engine server has started
    os.kill(job_pid, signal.SIGKILL)
    ended = supervisor.wait(job.id, timeout=60)
    assert (ended.status, ended.error_kind) == ("failed", "killed")
    assert ended.error_message.startswith("The server was killed by SIGKILL")
    eventually(lambda: not group(), 30)


def test_the_models_page_shows_versions_evidence_and_no_server_paths(runs, registered, module_ws):
    at = app_as("analyst")
    at.switch_page("pages/models.py")
    at.run()
    assert not at.exception
    text = " ".join(shown(m.value) for m in [*at.markdown, *at.caption, *at.success, *at.error, *at.info])
    assert "Lineage" in " ".join(s.value for s in at.subheader) and "Audit log" in " ".join(s.value for s in
                                                                                             at.subheader)
    assert str(module_ws.root) not in text
    project, first, second = runs
    other = next(v for v in registry.list_versions(project.id) if v.stage != "production")
    at.selectbox(key="models_version").select(other.label).run()
    at.selectbox(key=f"models_to_{other.id}").select("staging" if other.stage != "staging" else "candidate").run()
    at.text_input(key=f"models_reason_{other.id}").input("ready for the staging test").run()
    at.button(key=f"models_apply_{other.id}").click().run()
    assert not at.exception and registry.get_version(other.id).stage in ("staging", "candidate")
    assert registry.events(other.id)[0].reason == "ready for the staging test"
    at.button(key=f"models_export_{other.id}").click().run()
    done = " ".join(shown(m.value) for m in at.success)
    assert "workspace/exports/" in done and str(module_ws.root) not in done
    reviewer = app_as("reviewer")
    reviewer.switch_page("pages/models.py")
    reviewer.run()
    assert not reviewer.exception and not reviewer.dataframe  # reviewers see no versions (nor model names)


def test_a_dpo_run_from_a_registered_version_starts_from_it_and_is_its_next_minor(runs, module_ws, tmp_path):
    """`studio train --parent-version V --data PAIRS` trains on V's weights, merged; the result registers as V's
    model's next minor version, with V's base model as its origin, and its card says where it started. In a project
    of its own (the module's other tests count their project's versions)."""
    from engine.demo import sample
    from engine.markdown import md_escape  # the card writes every name as literal Markdown
    from engine.store import projects
    from engine.store.tables import Run

    _, first, _ = runs
    project = projects.create_project("DPO child")
    analyst = user_of("analyst")

    def succeeded_run(name: str, config: dict, final=None) -> int:
        """A run as the trainer leaves it (DPO training itself: tests/test_preferences.py)."""
        folder = module_ws.root / "runs" / name
        if final is not None:
            shutil.copytree(final, folder / "final")
        else:
            (folder / "final").mkdir(parents=True)
        with db.session() as s:
            run = Run(project_id=project.id, name=name, status="succeeded", run_dir=f"runs/{name}", config=config,
                      request_key=name, device="cpu", resume=False, attempts=1, step=4, max_steps=4)
            s.add(run)
            s.flush()
            return run.id

    parent = lifecycle.register(analyst, succeeded_run("sft-parent", dict(first.config),
                                                       supervisor.run_path(first) / "final"))
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps(r) + "\n" for r in sample.preference_pairs(40)), encoding="utf-8")
    proc = run_studio("train", "--parent-version", parent.label, "--data", pairs, "--project", "DPO child",
                      "--print-config", env_home=module_ws.root, timeout=300)
    assert proc.returncode == 0, proc.stderr
    import yaml

    config = yaml.safe_load(proc.stdout)
    assert config["parent_version"] == parent.label and config["objective"] == "dpo"
    assert config["base_model"] == str(export.served_model(parent))  # the parent, merged
    child = lifecycle.register(analyst, succeeded_run("dpo-child", config))
    assert (child.major, child.minor, child.patch) == (parent.major, parent.minor + 1, 0)
    assert child.bump_reason.startswith("minor: DPO on preference data") and parent.label in child.bump_reason
    assert child.lineage["facts"]["origin"] == parent.lineage["facts"]["base_model"]
    assert f"Trained with DPO (beta 0.2) from {md_escape(parent.label)}" in card.render(child)
