"""Dataset versions are immutable and content-addressed; every fix makes a child version with its lineage."""

from __future__ import annotations

import json

import pytest
from conftest import chat, write_jsonl

from engine.data import fixes, versions
from engine.data.loading import load_records
from engine.data.quality import CheckOptions, report_for_version
from engine.demo import sample
from engine.store import projects


@pytest.fixture
def project(ws):
    return projects.create_project("Test project", "chat", "You are helpful.")


def test_import_is_content_addressed_and_idempotent(project, tmp_path, ws):
    path = write_jsonl(tmp_path / "upload.jsonl", [chat(i) for i in range(12)])
    v1 = versions.import_file(project.id, path, "../../evil name.jsonl")
    again = versions.import_file(project.id, path, "other.jsonl")
    assert again.id == v1.id
    stored = versions.path_of(v1)
    assert stored.parent == ws.datasets and stored.name == f"{v1.sha256}.jsonl"
    assert v1.name == "evil name.jsonl" and v1.version == 1 and v1.parent_id is None


def test_fixes_make_children_with_lineage(project, tmp_path):
    rows = [chat(i) for i in range(12)] + [chat(2), chat(3)]           # lines 13, 14: exact copies
    rows[5] = chat(5, system=None)                                      # line 6: no system prompt
    rows[6] = chat(6, answer="ok")                                      # line 7: short
    path = write_jsonl(tmp_path / "d.jsonl", rows, {4: "{broken"})      # line 5: unparseable
    v1 = versions.import_file(project.id, path, "d.jsonl")
    r1 = report_for_version(v1)
    assert r1.finding("exact_duplicate").locations == [14, 15]

    v2 = fixes.apply_fix(v1, r1, "drop_exact_duplicates")
    assert (v2.parent_id, v2.version, v2.records) == (v1.id, 2, 12)
    assert v2.fixes[-1]["id"] == "drop_exact_duplicates" and v2.fixes[-1]["left_out_unreadable"] == 1
    r2 = report_for_version(v2)
    assert r2.finding("exact_duplicate") is None and not r2.errors  # the unreadable line was left out

    v3 = fixes.apply_fix(v2, r2, "set_system_prompt", prompt="Be brief.")
    recs = load_records(versions.path_of(v3)).records
    assert all(r.messages[0] == {"role": "system", "content": "Be brief."} for r in recs)
    assert sum(1 for r in recs for m in r.messages if m["role"] == "system") == len(recs)

    r3 = report_for_version(v3)
    short = r3.finding("short_output")
    v4 = fixes.apply_fix(v3, r3, "drop:short_output")
    assert v4.records == v3.records - short.count
    assert [f["id"] for f in v4.fixes] == ["drop_exact_duplicates", "set_system_prompt", "drop:short_output"]
    # the parents are untouched
    assert len(load_records(versions.path_of(v1)).records) == 15


def test_fix_for_a_missing_finding_is_refused(project, tmp_path):
    v1 = versions.import_file(project.id, write_jsonl(tmp_path / "d.jsonl", [chat(i) for i in range(12)]), "d")
    with pytest.raises(fixes.FixError, match="no exact_duplicate"):
        fixes.apply_fix(v1, report_for_version(v1), "drop_exact_duplicates")
    with pytest.raises(fixes.FixError, match="Type the system prompt"):
        fixes.apply_fix(v1, report_for_version(v1), "set_system_prompt", prompt="  ")


def test_truncate_too_long_fits_max_length(project, tmp_path):
    rows = [chat(i) for i in range(12)]
    rows[3] = chat(3, answer=" ".join(f"word{i}" for i in range(2000)))
    v1 = versions.import_file(project.id, write_jsonl(tmp_path / "d.jsonl", rows), "d")
    opts = CheckOptions(max_length=300)
    r1 = report_for_version(v1, opts)
    assert r1.finding("too_long").locations == [4]
    v2 = fixes.apply_fix(v1, r1, "truncate_too_long", max_length=300)
    assert v2.records == 12
    assert report_for_version(v2, opts).finding("too_long") is None
    assert load_records(versions.path_of(v2)).records[3].messages[-1]["content"].startswith("word0 word1")


def test_redact_pii_and_secrets(project, tmp_path):
    rows = [chat(i) for i in range(12)]
    rows[1] = chat(1, answer="Write to jane.doe@example.org or call +44 20 7946 0958.")
    rows[2] = chat(2, answer="The key is AKIAIOSFODNN7EXAMPLE.")
    v1 = versions.import_file(project.id, write_jsonl(tmp_path / "d.jsonl", rows), "d")
    r1 = report_for_version(v1)
    v2 = fixes.apply_fix(v1, r1, "redact_pii")
    v3 = fixes.apply_fix(v2, report_for_version(v2), "redact_secrets")
    text = versions.path_of(v3).read_text()
    assert "jane.doe" not in text and "7946" not in text and "AKIAIOSFODNN7EXAMPLE" not in text
    assert "[EMAIL]" in text and "[PHONE]" in text and "[SECRET]" in text
    r3 = report_for_version(v3)
    assert r3.finding("pii") is None and r3.finding("secret") is None


def test_exports(project, tmp_path):
    rows = [{"instruction": f"Say {i}", "input": "", "output": f"It is number {i}."} for i in range(12)]
    v1 = versions.import_file(project.id, write_jsonl(tmp_path / "a.jsonl", rows), "alpaca")
    out = versions.export_jsonl(v1, tmp_path / "out.jsonl")
    first = json.loads(out.read_text().splitlines()[0])
    assert first == {"messages": [{"role": "user", "content": "Say 0"},
                                  {"role": "assistant", "content": "It is number 0."}]}
    folder = versions.export_hf_dataset(v1, tmp_path / "hf")
    from datasets import load_from_disk

    ds = load_from_disk(str(folder))
    assert len(ds) == 12 and ds[0]["messages"][1]["content"] == "It is number 0."


def test_sample_dataset_has_its_planted_flaws(ws, tmp_path):
    path = sample.write_sample(tmp_path / "s.jsonl")
    assert len(path.read_text().splitlines()) == 600
    from engine.data.quality import check_file

    report = check_file(path)
    assert not report.errors
    for code, lines in sample.PLANTED_FLAWS.items():
        found = report.finding(code)
        assert found is not None and set(lines) <= set(found.locations), code
    assert path.read_bytes() == sample.write_sample(tmp_path / "again.jsonl").read_bytes()
