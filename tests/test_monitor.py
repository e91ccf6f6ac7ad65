"""Production monitoring on the demo: logs in (masked, idempotent, validated), figures and drift of a registered
version, the retraining recommendation when topics shift, and the retraining candidate that keeps the locked test
set locked and registers itself as the next minor version."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import app_as, eventually, run_studio, shown, user_of
from sqlalchemy import select

from engine.data import demo_project, split, test_lock, versions
from engine.data.loading import load_records
from engine.demo import traffic
from engine.jobs import supervisor
from engine.models import lifecycle, registry
from engine.monitor import drift, feedback, ingest, reference, report, retrain, storage, watch
from engine.review import campaigns
from engine.store import db, users, workspace
from engine.store.tables import LockedRecord
from engine.train import launcher

pytestmark = pytest.mark.xdist_group("monitor")


def test_psi_matches_a_hand_computation():
    p, q = [0.5, 0.3, 0.2], [0.25, 0.35, 0.4]
    expected = sum((a - b) * math.log(a / b) for a, b in zip(p, q))
    assert drift.psi(np.array(p), np.array(q)) == pytest.approx(expected)
    assert drift.psi(np.array([0.0, 1.0]), np.array([0.5, 0.5])) == pytest.approx(
        (1e-4 - 0.5) * math.log(1e-4 / 0.5) + 0.5 * math.log(1 / 0.5))  # an empty bin is floored at 1e-4
    assert [drift.band(v) for v in (0.05, 0.15, 0.25)] == ["stable", "moderate", "significant"]


@pytest.fixture(scope="module")
def deployed(module_ws, demo_model):
    """The demo project with a short run registered and in production (the monitor needs its training split)."""
    shutil.copytree(demo_model, workspace.current().demo_model)
    project = demo_project.ensure_demo(build_model=False)
    made = split.list_splits(versions.list_versions(project.id)[0].id)[0]
    config = launcher.config_for_split(made, str(workspace.current().demo_model), name="deployed", max_steps=4)
    run = supervisor.wait(launcher.launch(config, project.id).id, timeout=300)
    assert run.status == "succeeded"
    version = lifecycle.register(users.SYSTEM, run.id)
    lifecycle.promote(users.SYSTEM, version.id, "production", "monitoring test fixture", override=True)
    return project, registry.get_version(version.id)


def _log(path, **kwargs):
    return traffic.write_csv(path, traffic.rows(**kwargs))


@pytest.fixture(scope="module")
def traffic_reports(deployed, tmp_path_factory):
    """Calm traffic for the production version, then traffic whose topics shift: the report after each. The tests
    that need the shifted state ask for this fixture, so they do not depend on the order the tests run in."""
    project, version = deployed
    folder = tmp_path_factory.mktemp("traffic")
    calm = ingest.import_log(project.id, _log(folder / "calm.csv", n=2000, model=version.label, seed=1))
    calm_report = report.report(project.id, version.label)
    shifted = _log(folder / "shift.csv", n=2000, model=version.label, seed=2, shift_from=7,
                   start=datetime(2026, 11, 15, tzinfo=UTC))
    ingest.import_log(project.id, shifted)
    return calm, calm_report, report.report(project.id, version.label)


def test_in_distribution_traffic_is_stable_and_shifted_topics_recommend_retraining(deployed, traffic_reports,
                                                                                   module_ws):
    project, version = deployed
    calm, found, shifted_report = traffic_reports
    assert calm.stored == 2000 and calm.invalid == 0
    assert found["drift"]["distribution_drift"] < 0.10 and found["drift"]["band"] == "stable"
    assert not found["retrain_recommended"] and found["requests"] > 0
    assert found["latency"]["p95"] >= found["latency"]["mean"] > 0
    sat = found["satisfaction"]
    assert sat["ci_low"] <= sat["value"] <= sat["ci_high"] and sat["kind"].startswith("mean rating")

    found = shifted_report
    assert found["drift"]["distribution_drift"] > 0.20 and found["drift"]["band"] == "significant"
    assert found["drift"]["feature"] == "topic" and found["retrain_recommended"]
    assert any("above 0.20" in r for r in found["reasons"])
    grew = found["drift"]["grew"]["topic"]
    assert grew["production_share"] > grew["training_share"] and grew["examples"]
    proc = run_studio("monitor", "report", "--model", version.label, "--json", "--project", project.name,
                      env_home=module_ws.root)
    assert proc.returncode == 0, proc.stderr
    printed = json.loads(proc.stdout)
    assert set(printed) >= {"model", "window", "requests", "latency", "error_rate", "satisfaction", "drift",
                            "retrain_recommended", "reasons"}
    assert set(printed["drift"]) >= {"distribution_drift", "features", "band"}
    assert set(printed["drift"]["features"]) == {"length", "topic", "language"}


def test_figures_intervals_and_alerts_equal_a_direct_computation(deployed, tmp_path):
    """Two weeks of one version: latency, errors and ratings get worse in the second. The report's figures (from
    streamed aggregates) equal numpy/scipy/statsmodels on the rows themselves, and the alerts fire."""
    from scipy import stats as sps
    from statsmodels.stats.proportion import proportion_confint

    project, _ = deployed
    rng = np.random.default_rng(5)
    rows, start = [], datetime(2026, 10, 1, tzinfo=UTC)
    for i in range(1400):
        late = i >= 700
        rows.append({"timestamp": (start + timedelta(seconds=i * 864)).isoformat(),  # 100 a day, 14 days
                     "model_version": "support-figures", "request": f"question {i}", "response": "ok",
                     "latency_ms": round(float(rng.normal(260 if late else 200, 25)), 2),
                     "error": int(rng.random() < (0.08 if late else 0.02)),
                     "rating": int(rng.choice([2, 3, 4] if late else [4, 5, 5]))})
    ingest.import_log(project.id, traffic.write_csv(tmp_path / "figures.csv", rows))
    found = report.report(project.id, "support-figures")
    frame = storage.read(project.id, storage.NUMBERS, model="support-figures")
    end = frame["ts"].max()
    window = frame[frame["ts"] > end - np.timedelta64(7, "D")]
    first = frame[frame["ts"] < frame["ts"].min() + np.timedelta64(7, "D")]
    assert found["requests"] == len(window) and sum(d["requests"] for d in found["daily"]) == 1400
    assert found["latency"]["mean"] == pytest.approx(window["latency_ms"].mean(), rel=1e-12)
    assert found["latency"]["p95"] == pytest.approx(np.percentile(window["latency_ms"], 95), rel=1e-12)
    errors = window["error"].to_numpy()
    assert (found["error_rate"]["ci_low"], found["error_rate"]["ci_high"]) == pytest.approx(
        proportion_confint(errors.sum(), len(errors), method="wilson"), abs=1e-12)
    ratings = window["rating"].to_numpy()
    assert (found["satisfaction"]["ci_low"], found["satisfaction"]["ci_high"]) == pytest.approx(
        sps.t.interval(0.95, len(ratings) - 1, loc=ratings.mean(), scale=sps.sem(ratings)), rel=1e-12)
    alerts = {a["metric"]: a for a in found["alerts"]}
    assert set(alerts) == {"latency", "error rate", "satisfaction"}
    ci = sps.ttest_ind(window["latency_ms"], first["latency_ms"], equal_var=False).confidence_interval(0.95)
    assert (alerts["latency"]["ci_low"], alerts["latency"]["ci_high"]) == pytest.approx((ci.low, ci.high), rel=1e-9)
    assert found["retrain_recommended"] and any("Satisfaction" in r for r in found["reasons"])
    assert found["drift"] is None  # not a registered version: nothing to compare with


def test_the_fallback_rate_under_the_routing_rule_and_its_alert(deployed, tmp_path):
    """A version whose evaluation recommended hybrid routing (fall back below confidence 0.8, expected 20% of the
    time on 200 test examples) logs its confidence: the report's fallback rate is the share under 0.8 (a logged
    fallback flag wins over the confidence), with statsmodels' Wilson interval, and it alerts only when production
    falls back surely more often than the evaluation expected."""
    from statsmodels.stats.proportion import proportion_confint

    from engine.evaluate import results

    project, _ = deployed
    made = split.list_splits(versions.list_versions(project.id)[0].id)[0]
    config = launcher.config_for_split(made, str(workspace.current().demo_model), name="routed", max_steps=2)
    run = supervisor.wait(launcher.launch(config, project.id).id, timeout=300)
    version = lifecycle.register(users.SYSTEM, run.id)
    rng = np.random.default_rng(11)
    rows, start = [], datetime(2026, 9, 1, tzinfo=UTC)
    for i in range(600):
        row = {"timestamp": (start + timedelta(minutes=7 * i)).isoformat(), "model_version": version.label,
               "request": f"question {i}", "response": "ok", "confidence": "", "fallback": ""}
        if i % 10 == 0:
            row["fallback"] = "true"  # routed by the serving layer itself, whatever the confidence says
            row["confidence"] = "0.99"
        elif i % 10 != 1:  # one row in ten logs neither
            row["confidence"] = f"{rng.uniform(0.35, 1.0):.3f}"
        rows.append(row)
    ingest.import_log(project.id, traffic.write_csv(tmp_path / "routed.csv", rows))
    folder = results.eval_dir(registry.run_of(version))
    folder.mkdir(parents=True, exist_ok=True)

    def evaluated(expected: float) -> None:  # what comparison.py stores of a routed evaluation
        rule = {"route": "fine-tuned model", "fallback": "base model with a 3-shot prompt", "threshold": 0.8,
                "confidence": "mean probability of the fine-tuned answer's tokens", "fallback_when": "confidence < 0.8",
                "expected_fallback_rate": expected, "expected_quality": 0.5}
        (folder / "report.json").write_text(json.dumps({"run": run.id, "n_examples": 200, "routing": {"rule": rule}}))

    evaluated(0.20)
    found = report.report(project.id, version.label)
    flags = [1.0 if r["fallback"] else float(r["confidence"]) < 0.8 for r in rows if r["fallback"] or r["confidence"]]
    share = sum(flags) / len(flags)
    rate = found["fallback_rate"]
    assert rate["n"] == len(flags) == 540 and rate["value"] == pytest.approx(share, rel=1e-12)
    assert (rate["ci_low"], rate["ci_high"]) == pytest.approx(
        proportion_confint(sum(flags), len(flags), method="wilson"), abs=1e-12)
    assert found["routing"] == {"threshold": 0.8, "expected": 0.20, "n": 200} and share > 0.35
    assert [a["metric"] for a in found["alerts"]] == ["fallback rate"]
    printed = run_studio("monitor", "report", "--model", version.label, "--project", project.name,
                         env_home=workspace.current().root)
    assert printed.returncode == 0, printed.stderr
    assert f"fallback rate {share:.1%}" in printed.stdout and "the evaluation expected 20.0%" in printed.stdout
    assert "alert: The fallback rate is higher than the evaluation expected" in printed.stdout
    at = app_as("analyst")
    at.switch_page("pages/monitor.py")
    at.run()
    at.selectbox(key="monitor_version").select(version.label).run()
    assert not at.exception
    metric = next(m for m in at.metric if m.label == "Fallback rate (hybrid routing)")
    assert metric.value == f"{share:.1%}" and "the evaluation expected 20.0%" in metric.delta
    assert any("fallback rate is higher" in shown(w.value) for w in at.warning)
    evaluated(share - 0.02)  # about what production does: nothing to say
    assert report.report(project.id, version.label)["alerts"] == []
    (folder / "report.json").write_text(json.dumps({"run": run.id, "n_examples": 200, "routing": {"rule": {
        "threshold": 0, "expected_fallback_rate": 0.0}}}))  # the evaluation recommended no fallback
    quiet = report.report(project.id, version.label)
    assert quiet["routing"] is None and quiet["fallback_rate"]["n"] == 60  # only the logged flags


def test_real_public_requests_drift_from_the_demo_shop(deployed, realdata, tmp_path):
    """Real instructions as production traffic (llama_factory's alpaca_en_demo.json and identity.json, Apache-2.0,
    see ../shared/realdata/README.md), logged in the OpenAI messages shape: imported whole, and against the demo
    shop's training requests general instructions drift by topic while staying English, and the English/Chinese
    identity questions drift by language."""
    project, version = deployed
    facts = version.lineage["facts"]
    ref = reference.load(facts["config"]["split_id"], str(facts["base_model"]))
    start = datetime(2026, 12, 1, tzinfo=UTC)
    for name, model in (("alpaca_en_demo.json", "realdata-alpaca"), ("identity.json", "realdata-identity")):
        records = json.loads((realdata / "llama_factory" / name).read_text())
        log = tmp_path / f"{model}.jsonl"
        log.write_text("".join(json.dumps({
            "timestamp": (start + timedelta(minutes=i)).isoformat(), "model": model, "response": r["output"],
            "messages": [{"role": "system", "content": "You are helpful."},
                         {"role": "user", "content": r["instruction"] + ("\n" + r["input"] if r["input"] else "")}]})
            + "\n" for i, r in enumerate(records)))
        result = ingest.import_log(project.id, log)
        assert (result.rows, result.invalid, result.stored) == (len(records), 0, len(records))
        stored = storage.read(project.id, ("request",), model=model)["request"].tolist()
        assert sorted(stored)[:3] == sorted(r["instruction"] + ("\n" + r["input"] if r["input"] else "")
                                            for r in records)[:3]  # the last user message, not the system one
        found = drift.drift(ref, stored)
        if model == "realdata-alpaca":
            assert found["features"]["topic"] > 0.20 and found["features"]["language"] < 0.10
        else:
            assert found["feature"] == "language" and found["band"] == "significant"


def test_topics_placed_without_scikit_learn_are_scikit_learn_s_own(deployed, realdata):
    """The report puts requests in topics with NumPy on the kept vocabulary, idf and centres: on the training
    requests, real public instructions (English and Chinese) and awkward texts, every label is the one scikit-learn's
    fitted TfidfVectorizer + KMeans.predict gives."""
    import dataclasses

    project, version = deployed
    facts = version.lineage["facts"]
    ref = reference.load(facts["config"]["split_id"], str(facts["base_model"]))
    with db.session() as s:
        from engine.store.tables import Split

        made = s.get(Split, facts["config"]["split_id"])
    training = [t for t in reference.training_requests(made)[0] if t.strip()]
    vectorizer, kmeans = reference.fit_topics(training)
    mine = dataclasses.replace(ref, **reference.topic_fields(vectorizer, kmeans))
    public = [r["instruction"] + " " + r["input"] for name in ("alpaca_en_demo.json", "identity.json")
              for r in json.loads((realdata / "llama_factory" / name).read_text())]
    awkward = ["", "   ", "?!", "A", "ORDER ORDER ORDER refund refund", "Ünïcödé wörds, émojis 🙂 and 数字 123",
               "where is my order where is my order " * 50, "x" * 10_000]
    texts = training + public + awkward
    assert (mine.topic_bins(texts) == kmeans.predict(vectorizer.transform(texts))).all()
    assert len(set(mine.topic_bins(public))) > 1  # not one bin for everything
    repeated = texts[:300] + texts[:300][::-1]  # repeated texts are placed once, and every copy gets that bin
    for feature, place in (("length", ref.length_bins), ("topic", ref.topic_bins), ("language", ref.language_bins)):
        assert (ref.bins(feature, repeated) == place(repeated)).all()


def test_the_reference_is_kept_at_the_first_import_and_a_new_process_reads_it(deployed, traffic_reports, module_ws):
    """The first import of the version's logs fitted its reference into the workspace; a report in a new process
    reads it (same drift as this process found) without importing scikit-learn; a damaged copy is fitted again, not
    trusted."""
    import sys

    project, version = deployed
    from engine.store.tables import Split

    facts = version.lineage["facts"]
    with db.session() as s:
        made = s.get(Split, facts["config"]["split_id"])
    kept = [reference.place_of(made, str(facts["base_model"]))]  # other tests of this module may fit their own
    assert {p.name for p in kept[0].iterdir()} == {"arrays.npz", "reference.json"}
    code = ("import json, sys; from engine.monitor import report; "
            f"found = report.report({project.id}, {version.label!r}); "
            "print(json.dumps([found['drift']['features'], 'sklearn' in sys.modules]))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "STUDIO_HOME": str(module_ws.root)})
    assert proc.returncode == 0, proc.stderr
    features, imported = json.loads(proc.stdout.strip().splitlines()[-1])
    assert not imported and features == traffic_reports[2]["drift"]["features"]

    (kept[0] / "arrays.npz").write_bytes(b"not a NumPy file")
    reference._loaded.clear()
    again = reference.load(facts["config"]["split_id"], str(facts["base_model"]))
    assert again is not None and np.load(kept[0] / "arrays.npz")["centers"].shape == again.centers.shape
    assert drift.drift(again, ["Where is my order NW-12345?"] * 30)["features"]


def test_importing_the_same_log_twice_changes_nothing(deployed, tmp_path):
    project, version = deployed
    path = _log(tmp_path / "twice.csv", n=300, model="support-old", seed=9, start=datetime(2026, 6, 1, tzinfo=UTC))
    first = ingest.import_log(project.id, path)
    before = len(storage.read(project.id, ("row_hash",)))
    again = ingest.import_log(project.id, path)
    assert first.stored == 300 and again.skipped_file and len(storage.read(project.id, ("row_hash",))) == before
    rows = path.read_text().splitlines()  # the same rows in another file (reordered, one new): only the new one stays
    extra = _log(tmp_path / "one.csv", n=1, model="support-old", seed=99, start=datetime(2026, 6, 3, tzinfo=UTC))
    (tmp_path / "mixed.csv").write_text("\n".join([rows[0], *reversed(rows[1:]), extra.read_text().splitlines()[1]])
                                        + "\n")
    mixed = ingest.import_log(project.id, tmp_path / "mixed.csv")
    assert (mixed.stored, mixed.duplicates) == (1, 300)
    assert len(storage.read(project.id, ("row_hash",))) == before + 1


def test_repeated_rows_in_one_file_are_requests_of_their_own(deployed, tmp_path):
    """600 real requests where pairs share the second, prompt, answer and user (their latency and rating differ)
    import as 600; the same rows again in an overlapping export add only what is new; a log with request ids keeps
    one row per id, and the summary says why each duplicate was dropped."""
    project, _ = deployed
    start = datetime(2026, 2, 1, 9, tzinfo=UTC)
    rows = [{"timestamp": (start + timedelta(seconds=i // 2)).isoformat(), "model_version": "support-twins",
             "request": f"Where is order NW-{i // 2}?", "response": "It ships today.", "user_id": "u1",
             "latency_ms": 100 + i, "rating": 1 + i % 5} for i in range(600)]
    first = ingest.import_log(project.id, traffic.write_csv(tmp_path / "twins.csv", rows))
    assert (first.rows, first.stored, first.duplicates) == (600, 600, 0)
    stored = storage.read(project.id, ("latency_ms", "rating"), model="support-twins")
    assert len(stored) == 600 and sorted(stored["latency_ms"]) == [100 + i for i in range(600)]
    more = [{**r, "timestamp": (start + timedelta(seconds=300 + i)).isoformat(), "request": f"New question {i}"}
            for i, r in enumerate(rows[:50])]
    overlap = ingest.import_log(project.id, traffic.write_csv(tmp_path / "overlap.csv", rows[400:] + more))
    assert (overlap.stored, overlap.already_stored, overlap.repeated_ids) == (50, 200, 0)
    assert len(storage.read(project.id, ("request",), model="support-twins")) == 650

    logged = [{**r, "model_version": "support-ids", "request_id": f"req-{i}"} for i, r in enumerate(rows[:10])]
    logged.append({**logged[3], "latency_ms": 999})  # the same request logged twice: one request
    with_ids = ingest.import_log(project.id, traffic.write_csv(tmp_path / "ids.csv", logged))
    assert (with_ids.rows, with_ids.stored, with_ids.repeated_ids, with_ids.already_stored) == (11, 10, 1, 0)
    proc = run_studio("monitor", "import", str(tmp_path / "twins.csv"), "--project", project.name,
                      env_home=workspace.current().root)
    assert proc.returncode == 0 and "imported before" in proc.stdout + proc.stderr, proc.stdout + proc.stderr


def test_rows_stored_under_another_hash_scheme_are_still_recognised(deployed, tmp_path):
    """Polars' row hash is stable only within one Polars version: files written under another scheme (or by the
    first, pandas-based store, with nanosecond times, no scheme and no confidence column) have their hashes
    recomputed when compared, and read with the column missing."""
    import pyarrow as pa

    project, _ = deployed
    path = _log(tmp_path / "old.csv", n=120, model="support-older", seed=21, start=datetime(2026, 3, 1, tzinfo=UTC))
    first = ingest.import_log(project.id, path)
    assert first.stored == 120
    for f in storage.root(project.id).glob("day=2026-03-0*/import-*.parquet"):
        table = pq.read_table(f)
        if "support-older" not in table.column("model").to_pylist():
            continue
        old = table.set_column(table.schema.get_field_index("row_hash"), "row_hash",  # another scheme's hashes
                               pa.array([0] * table.num_rows, pa.uint64()))
        old = old.set_column(0, "ts", old.column("ts").cast(pa.timestamp("ns", tz="UTC"))).replace_schema_metadata()
        pq.write_table(old.drop_columns(["confidence"]), f)
    again = path.read_text() + "\n"  # other bytes, the same rows
    (tmp_path / "again.csv").write_text(again)
    result = ingest.import_log(project.id, tmp_path / "again.csv")
    assert not result.skipped_file and (result.stored, result.duplicates) == (0, 120)
    assert storage.read(project.id, ("request", "confidence"), model="support-older")["confidence"].isna().sum() == 120
    assert report.report(project.id, "support-older")["requests"] > 0


def test_an_import_that_fails_while_writing_leaves_no_record_and_loses_no_row(deployed, tmp_path):
    """A day folder that cannot be made (a file in its place) fails the write half-way: the file is not marked
    imported, and importing it again once the obstacle is gone stores every row once."""
    project, _ = deployed
    path = _log(tmp_path / "fault.csv", n=200, model="support-fault", days=4, seed=31,
                start=datetime(2026, 8, 1, tzinfo=UTC))
    blocker = storage.root(project.id) / "day=2026-08-03"
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_text("in the way")
    with pytest.raises(OSError):
        ingest.import_log(project.id, path)
    blocker.unlink()
    again = ingest.import_log(project.id, path)
    assert not again.skipped_file and again.stored + again.duplicates == 200
    assert len(storage.read(project.id, ("request",), model="support-fault")) == 200


def test_two_imports_of_the_same_rows_at_once_store_them_once(deployed, module_ws, tmp_path):
    """Imports into a project take turns (a lock across processes): the same rows in two files imported at once by
    two processes are stored once. The test holds the lock while both start, so they really are at once."""
    import os

    import psutil
    from conftest import ROOT, STUDIO, eventually

    project, _ = deployed
    lock = storage.root(project.id) / ".import.lock"

    def waits_for_the_lock(proc) -> bool:  # it opens the lock file once it has read, masked and hashed its rows
        try:
            return any(Path(f.path) == lock for f in psutil.Process(proc.pid).open_files())
        except psutil.NoSuchProcess:
            return False

    path = _log(tmp_path / "a.csv", n=150, model="support-race", seed=41, start=datetime(2026, 9, 1, tzinfo=UTC))
    (tmp_path / "b.csv").write_text(path.read_text() + "\n")  # other bytes, the same rows
    env = {**os.environ, "STUDIO_HOME": str(module_ws.root)}
    with storage.import_lock(project.id):
        procs = [subprocess.Popen([*STUDIO, "monitor", "import", str(tmp_path / name), "--project", project.name],
                                  env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for name in ("a.csv", "b.csv")]
        eventually(lambda: all(waits_for_the_lock(p) for p in procs), 120, poll=0.1)
        assert all(p.poll() is None for p in procs)
    outputs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    assert len(storage.read(project.id, ("request",), model="support-race")) == 150


def test_an_import_killed_with_kill_9_while_writing_is_not_imported_and_imports_whole_again(deployed, module_ws,
                                                                                            tmp_path):
    """`kill -9` of the importing process once its first day file is written, before its record is committed: the
    monitor reads none of its rows (no import owns them), the file is not marked imported, and importing it again
    stores every row once; the killed writer's temporary files are gone after that import."""
    import signal

    from conftest import ROOT, STUDIO

    from engine.store.tables import MonitorImport

    project, _ = deployed
    env = {**os.environ, "STUDIO_HOME": str(module_ws.root)}
    for attempt in range(4):  # a run that finishes before the kill lands is tried again with a fresh log
        model = f"support-killed{attempt}"
        path = _log(tmp_path / f"killed{attempt}.csv", n=12_000, model=model, days=100, seed=50 + attempt,
                    start=datetime(2025, 1, 1, tzinfo=UTC))
        proc = subprocess.Popen([*STUDIO, "monitor", "import", str(path), "--project", project.name], env=env,
                                cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            eventually(lambda p=proc: p.poll() is not None or next(storage.root(project.id).glob(
                "day=2025-*/import-*.parquet"), None), 120, 0.001)
        finally:
            proc.send_signal(signal.SIGKILL)
            code = proc.wait()
        if code == -signal.SIGKILL:
            break
        assert code == 0  # it was quicker than the kill: whole, and counted once
        assert len(storage.read(project.id, ("request",), model=model)) == 12_000
    else:
        pytest.fail("four imports all finished before they could be killed")
    with db.session() as s:
        assert not s.scalars(select(MonitorImport).where(MonitorImport.name == path.name)).first()
    assert len(storage.read(project.id, ("request",), model=model)) == 0  # written but never committed: not read
    again = ingest.import_log(project.id, path)
    assert not again.skipped_file and again.stored == 12_000 and again.already_stored == 0
    assert len(storage.read(project.id, ("request",), model=model)) == 12_000
    assert not list(storage.root(project.id).rglob("*.part-*"))


def test_mixed_time_formats_stray_values_and_a_broken_json_line(deployed, tmp_path):
    project, _ = deployed
    log = tmp_path / "mixed.csv"
    log.write_text("timestamp,prompt,output,latency_ms,rating,thumbs_up\n"
                   "2026-04-02T10:00:00+02:00,a,x,120,5,yes\n"
                   "2026-04-02 09:30,b,x,n/a,4,no\n"
                   "04/02/2026 11:00,c,x,130,excellent,maybe\n"
                   "not a time,d,x,140,3,1\n")
    result = ingest.import_log(project.id, log, model="support-mixed")
    assert (result.stored, result.invalid, result.bad_lines) == (3, 1, ["line 5: time cannot be read"])
    frame = storage.read(project.id, ("request", "latency_ms", "rating", "thumbs"), model="support-mixed") \
        .sort_values("request")
    assert [t.isoformat() for t in frame["ts"]] == ["2026-04-02T08:00:00+00:00", "2026-04-02T09:30:00+00:00",
                                                    "2026-04-02T11:00:00+00:00"]
    assert frame["latency_ms"].isna().tolist() == [False, True, False]  # a stray value empties its field only
    assert frame["rating"].isna().tolist() == [False, False, True]
    assert frame["thumbs"].tolist()[:2] == [1.0, 0.0] and math.isnan(frame["thumbs"].tolist()[2])
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"ts": "2026-04-03T10:00:00Z", "prompt": "a", "output": "b"}\n{"ts": "2026-04-03T1\n')
    with pytest.raises(ingest.LogError, match="line 2 is not valid JSON"):
        ingest.import_log(project.id, broken, model="support-mixed")
    deep = tmp_path / "deep.jsonl"  # hostile nesting: one sentence, not an unexpected RecursionError
    deep.write_text('{"ts": "2026-04-03T10:00:00Z", "prompt": "a", "output": "b"}\n' + '{"a":' * 100_000 + "\n")
    with pytest.raises(ingest.LogError, match="line 2 is nested too deeply to read"):
        ingest.import_log(project.id, deep, model="support-mixed")
    ragged = tmp_path / "ragged.csv"
    ragged.write_text('timestamp,prompt,output\n2026-04-03T10:00:00Z,"a, b",c\n2026-04-03T10:00:01Z,a,b,c,d\n')
    with pytest.raises(ingest.LogError, match="line 3 has 5 fields where the header has 3"):
        ingest.import_log(project.id, ragged, model="support-mixed")
    ragged.write_text('timestamp,prompt,output\n2026-04-03T10:00:00Z,a,b\n2026-04-03T10:00:01Z,"a stray,b\n'
                      '2026-04-03T10:00:02Z,c,d\n')  # the lenient count would blame line 4, where the cell ends
    with pytest.raises(ingest.LogError, match="line 3 opens a quoted field that is not closed properly"):
        ingest.import_log(project.id, ragged, model="support-mixed")
    array = tmp_path / "rows.json"  # one JSON array rather than JSON lines
    array.write_text(json.dumps([{"ts": "2026-04-04T10:00:00Z", "prompt": "an array row", "output": "ok"}]))
    assert ingest.import_log(project.id, array, model="support-mixed").stored == 1
    chat = tmp_path / "chat.jsonl"  # OpenAI-style messages: the last user message is the request
    turns = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "first question"},
             {"role": "assistant", "content": "an answer"}, {"role": "user", "content": "mail bo@example.org"}]
    chat.write_text(json.dumps({"ts": "2026-04-05T10:00:00Z", "messages": turns, "output": "ok"}) + "\n")
    assert ingest.import_log(project.id, chat, model="support-chat").stored == 1
    assert storage.read(project.id, ("request",), model="support-chat")["request"].tolist() == ["mail [EMAIL]"]
    unnamed = tmp_path / "unnamed.csv"  # a model column with a gap, and no --model to fill it
    unnamed.write_text("timestamp,model,prompt,output\n2026-04-06T10:00:00Z,support-unnamed,a,x\n"
                       "2026-04-06T10:01:00Z,,b,x\n")
    assert ingest.import_log(project.id, unnamed).bad_lines == ["line 3: no model version (name it with --model)"]


def test_a_reference_that_cannot_be_fitted_does_not_slow_every_import(deployed, tmp_path):
    """The import fits a version's reference as a side task: when that fails (here a damaged tokenizer) the import
    goes on, and the same process does not try again on every next file; a report still fits it once the cause is
    gone, and says what is wrong until then."""
    project, version = deployed
    facts = version.lineage["facts"]
    tokenizer = tmp_path / "tokenizer"
    shutil.copytree(workspace.current().demo_model, tokenizer, ignore=shutil.ignore_patterns("*.safetensors"))
    good = (tokenizer / "tokenizer.json").read_bytes()
    (tokenizer / "tokenizer.json").write_text("{ not a tokenizer")
    broken = {**facts, "base_model": str(tokenizer)}

    def kept() -> set:
        return set(reference.folder().iterdir()) if reference.folder().is_dir() else set()

    before = kept()
    reference.prepare(broken)  # fails quietly
    (tokenizer / "tokenizer.json").write_bytes(good)
    reference.prepare(broken)  # not tried again in this process
    assert kept() == before
    assert reference.load(facts["config"]["split_id"], str(tokenizer)) is not None  # the report's path fits it
    assert len(kept() - before) == 1


def test_iso_times_read_on_the_fast_path_are_the_instants_pandas_reads():
    """ISO 8601 times (either separator, fractions of 1-9 digits, Z, offsets with and without a colon, naive) are
    read by slicing rather than by Polars' %z parser; every instant equals pandas' reading, and what is not a valid
    time (30 February, an hour offset of 99, a trailing PM) stays unreadable."""
    import random

    import pandas as pd
    import polars as pl

    from engine.monitor import coerce

    rng = random.Random(7)
    values = []
    for _ in range(5000):
        value = (f"{rng.randint(1971, 2037):04d}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
                 f"{rng.choice('T ')}{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}")
        if rng.random() < 0.5:
            value += "." + "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 9)))
        value += rng.choice(["", "Z", f"{rng.choice('+-')}{rng.randint(0, 14):02d}{rng.choice([':', ''])}"
                                       f"{rng.choice([0, 30, 45]):02d}"])
        values.append(value)
    odd = ["2026-02-30T10:00:00Z", "2026-11-01T08:31:54 PM", "2026-11-01T08:31:54+99:99", "not a time", "",
           "2026-11-01", "2026-04-02 09:30", "04/02/2026 11:00"]
    for column in (values + odd, odd + values):  # the first value decides the format Polars would infer
        got = coerce.timestamps(pl.Series("t", column)).to_list()
        want = pd.to_datetime(pd.Series(column), format="mixed", utc=True, errors="coerce").astype("datetime64[us, UTC]")
        assert got == [None if pd.isna(w) else w.to_pydatetime() for w in want]
    assert coerce.timestamps(pl.Series("t", ["2026-11-01T08:31:54.5+05:30"])).to_list()[0].isoformat() == \
        "2026-11-01T03:01:54.500000+00:00"


def test_bad_rows_are_named_by_line_and_personal_data_is_masked_before_storage(deployed, tmp_path):
    project, version = deployed
    log = tmp_path / "messy.jsonl"
    lines = [{"ts": "2026-05-01T10:00:00Z", "prompt": "Call me on +44 20 7946 0958 or ana.lopez@example.com",
              "output": "Sure. My key is sk-proj-abcdefghijklmnopqrstuvwxyz0123456789", "latency": 0.42},
             {"ts": "not a time", "prompt": "hello", "output": "hi", "latency": 0.3},
             {"ts": "2026-05-01T11:00:00Z", "prompt": "", "output": "hi", "latency": 0.3},
             {"ts": "2026-05-01T12:00:00Z", "prompt": "password: hunter2hunter2 please reset", "output": "ok",
              "latency": 0.5, "user_id": "ana.lopez@example.com"},
             {"ts": "2026-05-01T13:00:00Z", "prompt": "my .env has aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxR"
              "fiCYEXAMPLEKEY", "output": "Pay with sk_live_4eC39HqLyjWDarjtT1zdp7dc", "latency": 0.5,
              "user_id": "ana.lopez@example.com"},
             {"ts": "2026-05-01T14:00:00Z", "prompt": "config:\n  AWS_SECRET_ACCESS_KEY: je7MtGbClwBF/2Zp9Utk/h3yCo8n"
              "vbEXAMPLEKEY", "output": "ok", "latency": 0.5, "user_id": "bo@example.org"}]
    log.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    result = ingest.import_log(project.id, log, model="legacy-bot")
    assert (result.stored, result.invalid) == (4, 2)
    assert result.bad_lines == ["line 2: time cannot be read", "line 3: no request"]
    assert result.unknown_versions == ["legacy-bot"] and "the registry has no model version 'legacy-bot'" in \
        result.summary()
    tables = [pq.read_table(f).to_pandas() for f in storage.root(project.id).glob("day=2026-05-01/*.parquet")]
    stored = " ".join(t[["request", "response", "user"]].to_string() for t in tables)
    for secret in ("7946", "ana.lopez@example.com", "sk-proj-abc", "hunter2hunter2", "wJalrXUtnFEMI", "je7MtGb",
                   "4eC39HqLyjWDarjtT1zdp7dc", "bo@example.org"):
        assert secret not in stored
    assert "[NUMBER]" in stored and "[EMAIL]" in stored and "[SECRET]" in stored
    assert "aws_secret_access_key=[SECRET]" in stored and "AWS_SECRET_ACCESS_KEY: [SECRET]" in stored
    users_seen = [u for t in tables for u in t["user"].dropna()]
    assert len(users_seen) == 3 and len(set(users_seen)) == 2 and all(u.startswith("u-") for u in users_seen)
    again = tmp_path / "again.jsonl"  # the same user in another import: the same pseudonym (counts per user work)
    again.write_text(json.dumps({"ts": "2026-05-02T10:00:00Z", "prompt": "hi", "output": "hello", "latency": 0.5,
                                 "user_id": "bo@example.org", "model": version.label}) + "\n")
    assert ingest.import_log(project.id, again).unknown_versions == []
    import polars as pl

    from engine.monitor import masking

    bo = masking.pseudonymise(pl.Series(["bo@example.org"]))[0]
    ana = masking.pseudonymise(pl.Series(["ana.lopez@example.com"]))[0]
    assert set(users_seen) == {bo, ana}
    stored_again = storage.read(project.id, ("user", "request"), model=version.label)
    assert list(stored_again[stored_again["request"] == "hi"]["user"]) == [bo]
    frame = storage.read(project.id, ("latency_ms",), model="legacy-bot")
    assert sorted(frame["latency_ms"]) == [420.0, 500.0, 500.0, 500.0]  # a plain "latency" under 30 is seconds
    with pytest.raises(ingest.LogError, match="needs a time"):
        (tmp_path / "nocol.csv").write_text("a,b\n1,2\n")
        ingest.import_log(project.id, tmp_path / "nocol.csv", model="x")


def test_a_watched_folder_imports_files_as_they_arrive(deployed, tmp_path):
    project, version = deployed
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    sizes: dict = {}
    _log(inbox / "day1.csv", n=50, model="support-old", seed=5, start=datetime(2026, 4, 1, tzinfo=UTC))
    assert watch.scan_once(project.id, inbox, sizes) == []  # first look: size noted, not yet taken
    done = watch.scan_once(project.id, inbox, sizes)
    assert len(done) == 1 and done[0].stored == 50
    assert watch.scan_once(project.id, inbox, sizes) == []  # never again


def test_the_retraining_candidate_keeps_the_locked_test_set_and_registers_the_next_minor(deployed, traffic_reports):
    project, version = deployed
    assert report.report(project.id, version.label)["retrain_recommended"]
    with pytest.raises(retrain.RetrainError, match="confirm"):
        retrain.build(users.SYSTEM, project.id, version.label)
    # Low-rated answers of the drifted bins go to a reviewer, whose corrections join the candidate.
    reviewer = user_of("reviewer")
    campaign = feedback.send_for_correction(users.SYSTEM, project.id, version.label, [reviewer.id], limit=3)
    queue = campaigns.queue(reviewer, campaign.id)
    assert len(queue) == 3
    sent = [campaigns.task(reviewer, e.assignment_id) for e in queue]
    low = {(r, a) for r, a in feedback.low_rated(project.id, version.label)}
    assert all((v["prompt"][-1]["content"], v["answers"]["answer"]) in low for v in sent)
    with pytest.raises(campaigns.ReviewError, match="corrected answer"):
        campaigns.submit(reviewer, queue[0].assignment_id, correction="  ")
    fixes = [f"Corrected answer {i}: open Settings, then Payments, and choose the new method." for i in range(2)]
    for entry, text in zip(queue, fixes):
        campaigns.submit(reviewer, entry.assignment_id, correction=text)
        campaigns.submit(reviewer, entry.assignment_id, correction=text)  # a double click: still one correction
    at = app_as("reviewer")  # the third through the reviewer's form, which opens at it with the model's answer
    at.switch_page("pages/my_reviews.py")
    at.run()
    box = next(t for t in at.text_area if t.label == "Corrected answer")
    assert box.value == sent[2]["answers"]["answer"]
    by_page = "Corrected on the page: the subscription can be cancelled any time under Account."
    box.set_value(by_page)
    next(b for b in at.button if b.label == "Save and next").click().run()
    assert not at.exception
    made = retrain.build(users.SYSTEM, project.id, version.label, confirmed=True)
    assert made["added_examples"] > 0 and made["parent_version"] == version.lineage["facts"]["dataset_version_id"]
    assert made["corrected_examples"] == 3
    child = versions.get_version(made["dataset_version"])
    assert child.parent_id == made["parent_version"] and child.fixes[-1]["id"] == "retrain_from_production"
    answers = [r.messages[-1]["content"] for r in versions.load_version(child).records if r.messages]
    assert all(answers.count(text) == 1 for text in fixes + [by_page])
    old = [r for r in versions.load_version(versions.get_version(made["parent_version"])).records if r.messages]
    added = [(r.messages[-2]["content"], r.messages[-1]["content"])
             for r in versions.load_version(child).records if r.messages][len(old):]
    assert len(added) == made["added_examples"] and len(set(added)) == len(added)  # distinct pairs only
    assert made["added_examples"] - 3 <= max(retrain.MIN_ADDED, len(old))  # at most as many as the old data
    home = workspace.current().root
    proc = run_studio("review", "results", str(campaign.id), "--json", env_home=home)
    assert proc.returncode == 0 and json.loads(proc.stdout)["corrected"] == 3, proc.stderr
    proc = run_studio("monitor", "corrections", "--reviewers", "nobody", "--project", project.name, env_home=home)
    assert proc.returncode == 2 and "No such user: nobody" in proc.stderr
    with db.session() as s:
        locked = set(s.scalars(select(LockedRecord.content_key).where(LockedRecord.content_key.is_not(None))))
    new_split = next(x for x in split.list_splits(child.id) if x.id == made["split"])
    train = load_records(split.split_path(new_split, "train")).records
    assert locked and not {test_lock.content_key(r) for r in train} & locked  # no locked record trains
    old_test = load_records(split.split_path(split.list_splits(made["parent_version"])[-1], "test")).records
    assert {test_lock.content_key(r) for r in old_test} <= _keys(new_split, "test")  # the old test set stays test
    run = supervisor.wait(made["run"], timeout=300)
    assert run.status == "succeeded"
    # the run hands over to its registration, with nobody watching
    eventually(lambda: any(v.run_id == run.id for v in registry.list_versions(project.id)), 60, 0.5)
    newer = next(v for v in registry.list_versions(project.id) if v.run_id == run.id)
    assert (newer.major, newer.minor, newer.patch) == (version.major, version.minor + 1, 0)
    assert newer.bump_reason.startswith("minor: the training data changed")


def _keys(made, part: str) -> set[str]:
    return {test_lock.content_key(r) for r in load_records(split.split_path(made, part)).records}


def test_the_monitor_page_shows_figures_drift_and_the_recommendation(deployed, traffic_reports, module_ws):
    at = app_as("analyst")
    at.switch_page("pages/monitor.py")
    at.run()
    assert not at.exception
    text = " ".join(shown(m.value) for m in [*at.markdown, *at.error, *at.success, *at.caption])
    assert "Retraining is recommended" in text and "significant" in text
    assert [m.label for m in at.metric][:4] == ["Requests", "Latency", "Error rate", "Satisfaction"]
    assert str(module_ws.root) not in text


def test_a_log_import_onto_a_full_disk_is_one_sentence_and_stores_nothing(tmp_path, monkeypatch):
    """The workspace on a small tmpfs (as root in CI): a log too big for it is refused with one sentence, no import
    is recorded, and no Parquet file (whole or partial) stays."""
    import secrets as random_secrets

    from conftest import small_workspace

    from engine.store import projects, tables

    with small_workspace(tmp_path / "small", "2m", monkeypatch):
        project = projects.create_project("Full disk log")
        log = tmp_path / "big.jsonl"  # random text: it cannot compress below the disk's size
        log.write_text("".join(json.dumps({"ts": f"2026-05-0{1 + i % 3}T10:00:00Z", "prompt": random_secrets.token_hex(
            40), "output": random_secrets.token_hex(40), "model": "m-v1.0.0"}) + "\n" for i in range(40_000)))
        with pytest.raises(ingest.LogError, match=r"^The disk is full: big.jsonl was not imported"):
            ingest.import_log(project.id, log)
        with db.session() as s:
            assert s.query(tables.MonitorImport).count() == 0
        assert not list(storage.root(project.id).rglob("*.parquet")) and not list(storage.root(project.id).rglob(
            "*.part"))


def test_production_feedback_on_one_request_becomes_a_preference_pair(deployed, module_ws, tmp_path):
    """Good and bad feedback to the same request make a pair (the good answer chosen); a request rated one way only
    is unpaired and counted, or kept with its label in an unpaired (KTO) build."""
    from engine.monitor import preference_pairs
    from engine.store import projects, users

    _, version = deployed
    project = projects.create_project(f"Feedback {time.time_ns()}")
    rows = [("Where is my order?", "It ships today; here is the tracking link.", {"thumbs_up": 1}),
            ("Where is my order?", "I do not know.", {"thumbs_up": 0}),
            ("Can I return a mug?", "Yes, within 30 days.", {"rating": 5}),
            ("Can I return a mug?", "No.", {"rating": 1}),
            ("Do you ship to Spain?", "Yes, in five working days.", {"thumbs_up": 1})]
    log = tmp_path / "feedback.jsonl"
    log.write_text("".join(json.dumps({"timestamp": f"2026-11-0{i + 1}T10:00:00Z", "model_version": version.label,
                                       "request": q, "response": a, **f}) + "\n" for i, (q, a, f) in enumerate(rows)))
    assert ingest.import_log(project.id, log).stored == 5
    proc = run_studio("prefs", "build", "--from", f"monitor:{version.label}", "--project", project.name, "--json",
                      env_home=module_ws.root)
    assert proc.returncode == 0, proc.stderr
    built = json.loads(proc.stdout)
    assert built["pairs"] == 2 and built["dropped"] == {"unpaired_feedback": 1}
    records = load_records(versions.path_of(versions.get_version(built["version_id"]))).records
    chosen = {r.turns[-2]["content"]: (r.turns[-1]["content"], r.extra["rejected"]) for r in records}
    assert chosen == {"Where is my order?": ("It ships today; here is the tracking link.", "I do not know."),
                      "Can I return a mug?": ("Yes, within 30 days.", "No.")}
    assert all(r.extra["provenance"]["source"] == "monitor" for r in records)
    # unpaired (KTO): both pairs' answers labelled, and the answer rated one way only kept with its label
    proc = run_studio("prefs", "build", "--unpaired", "--from", f"monitor:{version.label}", "--project", project.name,
                      env_home=module_ws.root)
    assert proc.returncode == 0 and "5 feedback records for KTO (3 good, 2 bad;" in proc.stdout, proc.stderr
    unpaired = preference_pairs.build(users.SYSTEM, project.id, [f"monitor:{version.label}"], unpaired=True)
    assert unpaired.feedback == {"good": 3, "bad": 2}
    loaded = load_records(versions.path_of(versions.get_version(unpaired.version_id)))
    assert loaded.shape == "feedback"
    labelled = {(r.turns[-2]["content"], r.turns[-1]["content"]): r.extra["label"] for r in loaded.records}
    assert labelled[("Do you ship to Spain?", "Yes, in five working days.")] is True
    assert labelled[("Where is my order?", "I do not know.")] is False
    proc = run_studio("prefs", "build", "--from", "monitor:nobody-v9.9.9", "--project", project.name,
                      env_home=module_ws.root)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr and proc.stderr.startswith("studio: ")
