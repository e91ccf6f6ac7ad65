"""The report on real public datasets (../shared/realdata, see its README for sources and licenses).

openai_cookbook/toy_chat_fine_tuning.jsonl: openai/openai-cookbook (MIT).
llama_factory/*.json: hiyouga/LLaMA-Factory (Apache-2.0).
The expectations are the issue's: at least what the OpenAI cookbook finds, with the line it is on.
"""

from __future__ import annotations

import pytest

from engine.data.quality import CheckOptions, check_file


def check(realdata, name, **opts):
    return check_file(realdata / name, CheckOptions(**opts))


def test_cookbook_toy_chat(ws, realdata):
    report = check(realdata, "openai_cookbook/toy_chat_fine_tuning.jsonl", max_length=4096)
    assert report.format == "openai" and report.records == 5
    # The cookbook's format checks find no errors; ours add only "too few examples" (5 < 10).
    assert [f.code for f in report.errors] == ["too_few_examples"]
    assert report.finding("missing_system").locations == [3]
    assert report.finding("missing_user").locations == [4]
    assert report.finding("repetitive").locations == [5]
    assert report.finding("too_long").locations == [5]
    # The cookbook's message-count distribution: min 2, max 9, median 3.
    m = report.stats["messages_per_example"]
    assert (m["min"], m["max"], m["median"]) == (2, 9, 3)


def test_alpaca_demo(ws, realdata):
    report = check(realdata, "llama_factory/alpaca_en_demo.json")
    assert report.format == "alpaca" and report.records == 999 and not report.errors
    exact = report.finding("exact_duplicate")
    assert exact.count == 14 and (611, 93) in exact.pairs  # indices 92 and 610 (0-based) are copies
    assert {30, 36, 38, 159} <= set(report.finding("short_output").locations)
    assert 761 in report.finding("output_copies_input").locations
    assert report.finding("ai_boilerplate").count >= 21


def test_identity_placeholders(ws, realdata):
    report = check(realdata, "llama_factory/identity.json")
    assert report.finding("template_placeholder").count >= 77
    assert report.finding("language_mix") is not None  # English and Chinese records


def test_glaive_toolcall_sharegpt(ws, realdata):
    report = check(realdata, "llama_factory/glaive_toolcall_en_demo.json")
    assert report.format == "sharegpt" and report.records == 300
    assert not report.errors
    assert report.finding("exact_duplicate").count == 35


def test_dpo_preference(ws, realdata):
    report = check(realdata, "llama_factory/dpo_en_demo.json")
    assert report.format == "sharegpt_preference" and not report.errors
    assert report.finding("exact_duplicate").count == 5
    from engine.data.loading import load_records

    rec = load_records(realdata / "llama_factory/dpo_en_demo.json").records[281]
    assert rec.messages[-1] == {"role": "assistant", "content": "63"}  # chosen is the answer
    assert isinstance(rec.extra["rejected"], str) and rec.extra["rejected"]  # rejected kept


@pytest.mark.parametrize("name", ["llama_factory/alpaca_en_demo.json", "openai_cookbook/toy_chat_fine_tuning.jsonl"])
def test_report_json_is_complete(ws, realdata, name):
    data = check(realdata, name).to_json()
    assert set(data) >= {"file", "format", "records", "errors", "warnings", "stats"}
    for f in data["errors"] + data["warnings"]:
        assert set(f) >= {"code", "severity", "count", "message", "locations", "fix"}
        assert f["count"] == len(f["locations"])
