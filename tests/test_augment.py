"""Augmentation through a teacher: what real providers do (429 with Retry-After, 500s, malformed bodies, errors that
echo the key), the filters (a reply that copies a locked test record is dropped and counted), a killed job resumed
without asking twice, the key in no file, and human review as the gate into a child version whose test set is the
parent's."""

from __future__ import annotations

import json
import os
import signal

import conftest
import pytest
from conftest import run_studio, user_of
from fake_teacher import FakeTeacher

from engine.augment import gate, options
from engine.augment import job as augment_job
from engine.augment.teacher import TeacherSettings
from engine.data import demo_project, split, versions
from engine.data.quality import report_for_version
from engine.data.test_lock import locked_records
from engine.jobs import event_log, supervisor
from engine.review import campaigns
from engine.review.edits import EditError
from engine.store import users

SECRET = "sk-test-8a1f2c9d7e6b5a4f3e2d1c0b"


@pytest.fixture
def demo(ws):
    project = demo_project.ensure_demo(build_model=False)
    made = split.splits_of_project(project.id)[0]
    return project, made, versions.get_version(made.dataset_version_id)


def settings(fake: FakeTeacher, **kw) -> TeacherSettings:
    return TeacherSettings(base_url=fake.url, model="teacher-model", **{"max_retries": 3, **kw})


def eventually(predicate, timeout: float):
    """conftest's eventually, with the supervisor's bookkeeping done before each look."""
    return conftest.eventually(lambda: (supervisor.reconcile(), predicate())[1], timeout)


def test_what_providers_do_the_filters_the_key_and_the_review_gate(demo, ws, monkeypatch):
    project, made, version = demo
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    sources = options.source_records(options.AugmentOptions(version_id=version.id, split_id=made.id,
                                                            teacher=TeacherSettings(base_url="http://x/v1",
                                                                                    model="m")))
    test_text = next(m["content"] for m in locked_records(project.id)[0].turns if m["role"] == "user")
    with FakeTeacher() as fake:
        fake.status = {1: (429, {"Retry-After": "0"}, '{"error": {"message": "slow down"}}'),
                       3: (500, {}, '{"error": {"message": "boom"}}'),
                       6: (400, {}, '{"error": {"message": "bad request from {key}"}}')}
        fake.malformed = {9}
        fake.copy = {sources[4].turns[-2]["content"]: test_text}  # a "rewording" that is a locked test question
        opts = options.AugmentOptions(version_id=version.id, split_id=made.id, per_record=2, budget_requests=24,
                                      teacher=settings(fake, concurrency=3))
        job = options.launch(user_of("analyst"), opts, project.id)
        final = supervisor.wait(job.id, timeout=120)
    assert final.status == "succeeded", final.error_message
    ev = event_log.final_event(event_log.read_events(supervisor.run_path(final)))
    assert ev["requests"] == 24 and ev["budget_reached"]  # the budget holds, retries aside
    assert ev["retries"] >= 2  # the 429 (after its Retry-After) and the 500 were retried by the client
    assert ev["errors"] == 2  # the 400 and the malformed body: counted, the job went on
    assert ev["dropped"].get("test_copy") == 2  # both choices of that reply
    kept = gate.candidates(job.id)
    assert len(kept) == ev["kept"] > 0 and all(test_text not in json.dumps(k) for k in kept)
    row = kept[0]
    assert row["method"] == "paraphrase" and row["teacher_model"] == "teacher-model"
    assert row["template"].startswith("paraphrase_user:") and isinstance(row["source_line"], int)
    assert all(key == f"Bearer {SECRET}" for key in fake.keys)  # the key reached the teacher, and nothing else:
    for path in ws.root.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path

    # review is the gate: two reviewers, each accepts, edits or rejects what is in their queue
    a = users.add_user("rita", "reviewer", "password-rita")
    b = users.add_user("ravi", "reviewer", "password-ravi")
    campaign = gate.open_review(user_of("analyst"), job.id, [a.id, b.id])
    decided = {"accept": 0, "edit": 0, "reject": 0}
    for reviewer in (a, b):
        for n, entry in enumerate(campaigns.queue(reviewer, campaign.id)):
            view = campaigns.task(reviewer, entry.assignment_id)
            assert view["kind"] == "augment" and view["prompt"]  # the source record beside the candidate
            choice = ("accept", "edit", "reject")[n % 3]
            decided[choice] += 1
            if choice == "edit":
                edited = [*view["answers"]["candidate"][:-1], {"role": "assistant", "content": "Edited answer."}]
                campaigns.submit(reviewer, entry.assignment_id, vote="accept", correction=json.dumps(edited))
            else:
                campaigns.submit(reviewer, entry.assignment_id, vote=choice)
    with pytest.raises(EditError):
        campaigns.submit(a, campaigns.queue(a, campaign.id)[0].assignment_id, vote="accept", correction="[not json")
    child = gate.accept(user_of("analyst"), campaign.id)
    added = decided["accept"] + decided["edit"]
    assert child.records == version.records + added and child.parent_id == version.id
    records = child.fixes[-1]["records"]
    assert len(records) == added and sum(r["edited"] for r in records) == decided["edit"]
    assert {r["method"] for r in records} == {"paraphrase"} and all(len(r["reviewers"]) == 1 for r in records)
    assert any(m["content"] == "Edited answer." for rec in versions.load_version(child).records[-added:]
               for m in rec.turns)
    child_split = split.list_splits(child.id)[0]
    assert child_split.test_sha256 == made.test_sha256 and child_split.counts["test"] == made.counts["test"]
    assert child_split.counts["train"] + child_split.counts["validation"] == \
        made.counts["train"] + made.counts["validation"] + added
    # a run on the child and a run on the parent compare on the same locked test set (Evaluate, another run)
    from engine.evaluate import results
    from engine.store.tables import Run

    on_parent, on_child = Run(id=1, config={"split_id": made.id}), Run(id=2, config={"split_id": child_split.id})
    elsewhere = Run(id=3, config={"split_id": split.create_split(child, (0.5, 0.2, 0.3), seed=7).id})
    assert results.comparable_runs(on_parent, [on_child, elsewhere]) == [on_child]
    report = report_for_version(child)
    assert report.stats["generated_records"] == added
    assert report.stats["generated_share"] == pytest.approx(added / child.records)


def test_a_killed_augmentation_resumes_without_asking_twice(demo, monkeypatch):
    project, made, version = demo
    with FakeTeacher(delay=0.3) as fake:
        opts = options.AugmentOptions(version_id=version.id, split_id=made.id, method="backtranslate",
                                      language="German", budget_requests=30, teacher=settings(fake, concurrency=2))
        job = options.launch(user_of("analyst"), opts, project.id)
        folder = supervisor.run_path(job)
        eventually(lambda: len(augment_job.read_results(folder)) >= 4, 60)
        os.kill(supervisor.get_run(job.id).pid, signal.SIGKILL)
        eventually(lambda: supervisor.get_run(job.id).status not in supervisor.ACTIVE, 30)
        answered = [r for r in augment_job.read_results(folder) if not r.get("error")]
        asked_before = len(fake.prompts)
        supervisor.resume(job.id)
        final = supervisor.wait(job.id, timeout=120)
        after = fake.prompts[asked_before:]
    assert final.status == "succeeded", final.error_message
    sources = options.source_records(opts)
    for r in answered:  # nothing answered before the kill was asked again
        text = sources[r["source"]].turns[-2]["content"]
        assert not any(p.endswith(text) for p in after if p.startswith("Translate this text into German"))
    keys = [r["key"] for r in augment_job.read_results(folder) if not r.get("error")]
    assert len(keys) == len(set(keys))  # each task answered once
    assert sum(r["requests"] for r in augment_job.read_results(folder)) <= 30
    kept = gate.candidates(job.id)
    assert kept and all(c["method"] == "backtranslate" for c in kept)


def test_the_cli_runs_an_augmentation_and_prints_what_it_kept(demo, ws):
    project, made, version = demo
    with FakeTeacher() as fake:
        proc = run_studio("augment", str(version.id), "--method", "synthetic", "--topic", "houseplant care",
                          "--count", "6", "--teacher-url", fake.url, "--teacher-model", "teacher-model", "--json",
                          env_home=ws.root, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["status"] == "succeeded" and out["requests"] == 6 and out["tasks"] == 6
    assert out["kept"] == len(out["kept_candidates"]) >= 1
    assert all(c["method"] == "synthetic" and len(c["example_lines"]) == 3 for c in out["kept_candidates"])


def test_the_pages_launch_follow_review_and_accept_an_augmentation(demo, ws):
    """Quality page: the Augment form launches a job (a bad setting is one sentence), the job's result and the
    review opener show; My reviews: the candidate beside its source, accepted by keyboard-friendly radios; Review
    page: the accepted records become a new version."""
    from conftest import app_as, shown

    project, made, version = demo
    reviewer = users.add_user("rosa", "reviewer", "password-rosa")
    at = app_as("analyst").run()
    at.switch_page("pages/quality.py").run()
    assert not at.exception
    at.button(key="FormSubmitter:augment_form-Generate candidates").click().run()  # no teacher given
    assert any("teacher" in shown(e.value) for e in at.error) and not at.exception
    with FakeTeacher() as fake:
        at.text_input(key="augment_url").input(fake.url)
        at.text_input(key="augment_model").input("teacher-model")
        at.text_input(key="augment_key").input("sk-page-key-0123456789")
        at.number_input(key="augment_budget").set_value(6)
        at.button(key="FormSubmitter:augment_form-Generate candidates").click().run()
        assert not at.exception and any("Augmentation job 1" in s.value for s in at.success)
        job = supervisor.wait(1, timeout=60)
        assert fake.keys and all(k == "Bearer sk-page-key-0123456789" for k in fake.keys)  # the page's key
    assert job.status == "succeeded"
    for path in ws.root.rglob("*"):
        if path.is_file():
            assert b"sk-page-key-0123456789" not in path.read_bytes(), path
    at.run()
    assert any("candidates kept for review" in t.value for t in at.text)
    at.multiselect(key="augment_reviewers_1").select(reviewer.id).run()
    at.button(key="augment_review_1").click().run()
    assert not at.exception and any("Review campaign" in s.value for s in at.success)

    rev = app_as("reviewer", name="rosa").run()
    rev.switch_page("pages/my_reviews.py").run()
    assert not rev.exception
    texts = [t.value for t in rev.text]
    assert len(texts) >= 4  # the source record's turns, then the candidate's
    rev.radio(key=f"reviews_decision_{campaigns.queue(reviewer, 1)[0].assignment_id}").set_value("accept")
    rev.button(key=f"FormSubmitter:reviews_augment_{campaigns.queue(reviewer, 1)[0].assignment_id}-Save and next") \
        .click().run()
    assert not rev.exception and campaigns.queue(reviewer, 1)[0].done

    at.switch_page("pages/review.py").run()
    assert not at.exception
    at.button(key="review_augment_accept").click().run()
    assert not at.exception and any("reviewed records added" in s.value for s in at.success)
    child = versions.list_versions(project.id)[0]
    assert child.records == version.records + 1 and child.fixes[-1]["id"] == "augment"


def test_a_teacher_too_slow_or_down_is_one_sentence_not_a_crash(demo):
    project, made, version = demo
    with FakeTeacher(delay=2.0) as fake:  # slower than the timeout: each task fails, counted, and the job ends
        opts = options.build(version_id=version.id, split_id=made.id, budget_requests=3,
                             teacher={"base_url": fake.url, "model": "m", "timeout_s": 0.5, "max_retries": 0})
        final = supervisor.wait(options.launch(user_of("analyst"), opts, project.id).id, timeout=60)
    ev = event_log.final_event(event_log.read_events(supervisor.run_path(final)))
    assert final.status == "succeeded" and ev["errors"] == 3 and ev["kept"] == 0
    errors = [r["error"] for r in augment_job.read_results(supervisor.run_path(final))]
    assert errors == ["The teacher did not answer within 0.5 s (0 retries)."] * 3
    # nobody listening at all: five failures in a row before any answer end the job with the reason
    opts = options.build(version_id=version.id, split_id=made.id, budget_requests=50,
                         teacher={"base_url": "http://127.0.0.1:9/v1", "model": "m", "max_retries": 0})
    final = supervisor.wait(options.launch(user_of("analyst"), opts, project.id).id, timeout=60)
    assert final.status == "failed" and final.error_message == "The teacher at http://127.0.0.1:9/v1 cannot be reached."
    with pytest.raises(options.AugmentError, match="budget requests"):
        options.build(version_id=version.id, split_id=made.id, budget_requests=0,
                      teacher={"base_url": "http://127.0.0.1:9/v1", "model": "m"})
