"""Reading files: every container, every shape, and every kind of bad input the issue lists."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import chat, write_jsonl

from engine.data.loading import load_records, parse_mapping
from engine.data.quality import CheckOptions
from engine.data.readers import InputError
from engine.data.uploads import stage_upload


def codes(loaded):
    return {(r.location, c) for r in loaded.records for c, _ in r.problems}


def test_jsonl_blank_lines_keep_their_place(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text("\n".join([json.dumps(chat(1)), "", "   ", json.dumps(chat(2))]) + "\n")
    loaded = load_records(path)
    assert loaded.container == "jsonl" and loaded.shape == "openai"
    assert [r.location for r in loaded.records] == [1, 4]


def test_utf8_bom_loads(tmp_path):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(chat(1)).encode() + b"\n")
    loaded = load_records(path)
    assert len(loaded.records) == 1 and not loaded.records[0].problems


def test_latin1_names_line_and_byte_offset(tmp_path):
    path = tmp_path / "latin.jsonl"
    good = json.dumps(chat(1)).encode() + b"\n"
    path.write_bytes(good + '{"messages": [{"role": "user", "content": "caf\xe9"}]}\n'.encode("latin-1"))
    with pytest.raises(InputError) as err:
        load_records(path)
    offset = len(good) + len('{"messages": [{"role": "user", "content": "caf')
    assert f"Line 2 is not valid UTF-8 (byte offset {offset})" in str(err.value)


def test_binary_file_renamed_jsonl(tmp_path):
    path = tmp_path / "model.jsonl"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    with pytest.raises(InputError, match="binary"):
        load_records(path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        load_records(path)


def test_truncated_last_line(tmp_path):
    path = tmp_path / "cut.jsonl"
    path.write_text(json.dumps(chat(1)) + "\n" + json.dumps(chat(2))[:40])
    loaded = load_records(path)
    bad = [r for r in loaded.records if r.problems]
    assert [(r.location, r.problems[0][0]) for r in bad] == [(2, "unparseable_line")]
    assert "cut off" in bad[0].problems[0][1]


@pytest.mark.parametrize("line,kind", [("[1, 2]", "an array"), ('"hello"', "a string"), ("42", "a number")])
def test_line_that_is_not_an_object(tmp_path, line, kind):
    path = write_jsonl(tmp_path / "x.jsonl", [chat(1), chat(2)], {1: line})
    loaded = load_records(path)
    assert codes(loaded) == {(2, "not_an_object")}
    assert f"Line 2 is {kind}" in loaded.records[1].problems[0][1]


def test_mixed_shapes_are_named(tmp_path):
    rows = [chat(i) for i in range(5)] + [{"instruction": "Say hi", "input": "", "output": "Hi"}]
    loaded = load_records(write_jsonl(tmp_path / "mixed.jsonl", rows))
    assert loaded.shape == "openai"
    assert codes(loaded) == {(6, "no_messages")}
    assert "Alpaca" in loaded.records[5].problems[0][1]


def test_ten_megabyte_single_line(tmp_path):
    big = "word " * (2 * 1024 * 1024)
    path = write_jsonl(tmp_path / "big.jsonl", [chat(1, answer=big)])
    loaded = load_records(path)
    assert path.stat().st_size > 10_000_000
    assert len(loaded.records[0].messages[-1]["content"]) == len(big)


def test_file_over_the_limit_is_refused_before_parsing(tmp_path, monkeypatch):
    path = tmp_path / "big.jsonl"
    path.write_text("this is not json at all\n" * 100_000)
    monkeypatch.setenv("STUDIO_MAX_FILE_MB", "1")
    with pytest.raises(InputError, match="over the 1 MB limit"):
        load_records(path)


def test_deeply_nested_json(tmp_path):
    path = write_jsonl(tmp_path / "deep.jsonl", [chat(1)], {1: "[" * 100_000 + "]" * 100_000})
    loaded = load_records(path)
    assert codes(loaded) == {(2, "unparseable_line")}
    assert "nested too deeply" in loaded.records[1].problems[0][1]


def test_a_deeply_nested_record_in_a_json_array_stops_the_reading_before_the_parser_holds_it(tmp_path):
    """ijson keeps the path of every open container: 100,000 `[` made it hold about 25 GB (the machine killed the
    studio). Nesting is measured first; the records before a too-deep one are read, that one is named, and brackets
    inside strings do not count."""
    from engine.data import nesting

    def nested(depth: int) -> str:  # a record whose "meta" field makes the whole nest `depth` levels deep
        return '{"meta": ' + "[" * (depth - 2) + "]" * (depth - 2) + "}"

    ok = json.dumps(chat(1))[:-1] + ', "note": "' + "[" * 5000 + '"}'
    path = tmp_path / "deep.json"
    path.write_text("[" + ",".join([ok, json.dumps(chat(2)), nested(20_000), json.dumps(chat(4))]) + "]")
    loaded = load_records(path)
    assert [r.location for r in loaded.records] == [1, 2, 3]
    assert not loaded.records[0].problems and not loaded.records[1].problems
    assert codes(loaded) == {(3, "unparseable_line")}
    assert "Record 3 is nested more than 1,000 levels deep" in loaded.records[2].problems[0][1]
    # the limit counts the array itself: a record that reaches level 1,000 is read, one level more is not
    path.write_bytes(b"\xef\xbb\xbf[" + nested(nesting.MAX_DEPTH).encode() + b"]")
    assert nesting.too_deep_record(path) is None
    path.write_bytes(b"\xef\xbb\xbf[" + json.dumps(chat(1)).encode() + b"," + nested(nesting.MAX_DEPTH + 1).encode() + b"]")
    assert nesting.too_deep_record(path) == 2
    path.write_text("[" * 100_000)  # nothing but nesting, cut off: one sentence, not the machine's memory
    with pytest.raises(InputError, match="Record 1 is nested more than"):
        load_records(path)


def test_a_lone_surrogate_escape_is_named_on_its_line_not_a_crash_later(tmp_path):
    """json.loads reads `"\\ud800"` as a str that cannot be written as UTF-8: the check crashed in the tokenizer and
    the split while writing. It is an error on its line; an escaped pair (an emoji) is text as usual."""
    def turns(user: str, answer: str) -> str:  # escapes written by hand, as another program would
        return ('{"messages": [{"role": "user", "content": "' + user + '"}, {"role": "assistant", "content": "'
                + answer + '"}]}')

    path = write_jsonl(tmp_path / "s.jsonl", [chat(i) for i in range(1, 4)],
                       {1: turns("bad \\ud800 here", "x"),
                        2: turns("a smile \\ud83d\\ude00", "\\\\ud800 is only a backslash")})
    loaded = load_records(path)
    assert codes(loaded) - {(3, "missing_system")} == {(2, "unparseable_line")}
    assert loaded.records[1].problems[0][1].startswith("Line 2 holds a lone surrogate escape")
    assert [m["content"] for m in loaded.records[2].messages] == ["a smile \U0001f600", "\\ud800 is only a backslash"]
    wrapped = tmp_path / "w.json"  # one JSON object whose list holds the records, written over several lines
    wrapped.write_text(json.dumps({"data": [chat(1), {"prompt": "q \udc80", "completion": "a"}]}, indent=1))
    assert codes(load_records(wrapped)) == {(2, "unparseable_line")}


def test_json_array_record_numbers_and_truncation(tmp_path):
    path = tmp_path / "a.json"
    path.write_text(json.dumps([chat(1), [1], chat(3)]))
    loaded = load_records(path)
    assert loaded.container == "json" and codes(loaded) == {(2, "not_an_object")}
    path.write_text(json.dumps([chat(1), chat(2)])[:-30])
    loaded = load_records(path)
    assert codes(loaded) == {(2, "unparseable_line")}
    assert "cut off" in loaded.records[-1].problems[0][1]


def test_csv_rows_with_mapping_and_multiline_cells(tmp_path):
    path = tmp_path / "faq.csv"
    path.write_text('question,answer,notes\n"How do I\nreset it?","Hold the button for 5 seconds.",x\n'
                    'Is it free?,Yes it is free of charge.,y\n', encoding="utf-8")
    loaded = load_records(path, mapping=parse_mapping("prompt=question,completion=answer"))
    assert loaded.shape == "columns" and [r.location for r in loaded.records] == [1, 2]
    assert loaded.records[0].messages == [{"role": "user", "content": "How do I\nreset it?"},
                                          {"role": "assistant", "content": "Hold the button for 5 seconds."}]
    assert loaded.records[0].extra == {"notes": "x"}


def test_a_stray_quote_in_a_csv_is_named_and_the_rows_after_it_are_still_read(tmp_path):
    """A lenient CSV reader makes every line after an unclosed quote part of one cell, up to the next quote or the
    end of the file: 19,995 rows vanished into row 5 and the report said "5 records". Now the row is named and the
    reading goes on from its next line; a real multi-line cell and a quote inside one line stay as they were."""
    rows = [f"q{i},a{i}" for i in range(1, 21)]
    rows[2] = 'q3,"a3 oops'  # closed, wrongly, by the stray quote of row 8
    rows[7] = 'q8,"a8 oops'  # and once row 3 is skipped, this one runs to the quote that opens row 12's cell
    rows[11] = 'q12,"a multi-line\nanswer, with a comma"'
    rows[14] = 'q15,a "5" inch screen'
    path = tmp_path / "stray.csv"
    path.write_text("prompt,completion\n" + "\n".join(rows) + "\n", encoding="utf-8")
    loaded = load_records(path)
    assert len(loaded.records) == 20 and codes(loaded) == {(3, "unparseable_line"), (8, "unparseable_line")}
    problems = {r.location: r.problems[0][1] for r in loaded.records if r.problems}
    assert problems[3] == ("Row 3 (line 4) opens a quoted field that runs to line 9; it was skipped and reading went "
                           "on from the next line.")
    assert problems[8].startswith("Row 8 (line 9) opens a quoted field that runs to line 13;")
    by_row = {r.location: r.messages[-1]["content"] for r in loaded.records if not r.problems}
    assert by_row[12] == "a multi-line\nanswer, with a comma" and by_row[15] == 'a "5" inch screen'
    assert by_row[20] == "a20" and len(by_row) == 18
    path.write_text('prompt,"completion\nq,a\n', encoding="utf-8")
    with pytest.raises(InputError, match="header row opens a quoted field"):
        load_records(path)
    # every line a stray quote: each row is named, and every line is read at most about twice
    path.write_text("prompt,completion\n" + "".join(f'q{i},"a{i}\n' for i in range(5000)), encoding="utf-8")
    with pytest.raises(InputError, match="Row 1 \\(line 2\\) opens a quoted field"):
        load_records(path)


def test_csv_missing_mapped_column(tmp_path):
    path = tmp_path / "faq.csv"
    path.write_text("q,a\nhi,hello\n")
    with pytest.raises(InputError, match="'answer' is not in the file .*q, a"):
        load_records(path, mapping={"prompt": "q", "completion": "answer"})


def test_csv_with_known_columns_is_detected(tmp_path):
    path = tmp_path / "io.csv"
    path.write_text("instruction,input,output\nTranslate,chat,cat\n")
    loaded = load_records(path)
    assert loaded.shape == "alpaca" and loaded.records[0].messages[0]["content"] == "Translate\n\nchat"


def test_parquet_rows(tmp_path):
    path = tmp_path / "d.parquet"
    pq.write_table(pa.Table.from_pylist([{"prompt": f"p{i}", "completion": f"c{i}"} for i in range(5)]), path)
    loaded = load_records(path)
    assert loaded.container == "parquet" and loaded.shape == "prompt_completion"
    assert [r.location for r in loaded.records] == [1, 2, 3, 4, 5]


def test_damaged_parquet(tmp_path):
    path = tmp_path / "d.parquet"
    path.write_bytes(b"PAR1" + b"garbage" * 50)
    with pytest.raises(InputError, match="Parquet"):
        load_records(path)


def test_unknown_shape_asks_for_a_mapping(tmp_path):
    path = write_jsonl(tmp_path / "u.jsonl", [{"q": "a", "a": "b"}])
    with pytest.raises(InputError, match="map the columns"):
        load_records(path)


@pytest.mark.parametrize("name", ["../../etc/passwd.jsonl", "a\x00b.jsonl", "..\\..\\x.json", "/abs/path.csv"])
def test_upload_names_never_become_paths(ws, name):
    staged = stage_upload(json.dumps(chat(1)).encode() + b"\n", name)
    assert staged.parent == ws.uploads
    assert ".." not in staged.name and "\x00" not in staged.name and "/" not in staged.name


def test_shapes_normalize(tmp_path):
    rows = {
        "sharegpt": {"system": "S", "conversations": [{"from": "human", "value": "q"}, {"from": "function_call",
                     "value": "{}"}, {"from": "observation", "value": "r"}, {"from": "gpt", "value": "a"}],
                     "tools": "[]"},
        "alpaca": {"instruction": "i", "input": "x", "output": "o", "history": [["h1", "h2"]], "system": "S"},
        "prompt_completion": {"prompt": "p", "completion": "c"},
        "input_output": {"input": "p", "output": "c"},
        "preference": {"prompt": "p", "chosen": "good", "rejected": "bad"},
    }
    expected_roles = {
        "sharegpt": ["system", "user", "assistant", "tool", "assistant"],
        "alpaca": ["system", "user", "assistant", "user", "assistant"],
        "prompt_completion": ["user", "assistant"], "input_output": ["user", "assistant"],
        "preference": ["user", "assistant"],
    }
    for shape, row in rows.items():
        loaded = load_records(write_jsonl(tmp_path / f"{shape}.jsonl", [row]))
        rec = loaded.records[0]
        assert loaded.shape == shape and not rec.problems, shape
        assert [m["role"] for m in rec.messages] == expected_roles[shape], shape
    pref = load_records(tmp_path / "preference.jsonl").records[0]
    assert pref.messages[-1]["content"] == "good" and pref.extra["rejected"] == "bad"


def test_openai_keeps_tool_calls_weight_and_flags_bad_roles(tmp_path):
    row = {"messages": [{"role": "user", "content": "q"},
                        {"role": "assistant", "content": None, "tool_calls": [{"id": "1"}]},
                        {"role": "tool", "content": "r", "tool_call_id": "1"},
                        {"role": "assistant", "content": "a", "weight": 0},
                        {"role": "robot", "content": "x"}, {"role": "user"}]}
    rec = load_records(write_jsonl(tmp_path / "t.jsonl", [row])).records[0]
    assert rec.messages[1]["tool_calls"] == [{"id": "1"}] and rec.messages[3]["weight"] == 0
    assert [c for c, _ in rec.problems] == ["bad_role", "missing_content"]
    assert "message 5 has the unknown role 'robot'" in rec.problems[0][1]


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be"])
def test_utf16_with_or_without_a_byte_order_mark_is_read(ws, tmp_path, encoding):
    rows = [chat(i, answer=f"Antwort {i}: schön, danke – ça va.") for i in range(12)]
    text = "\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n"
    path = tmp_path / "windows-export.jsonl"
    path.write_bytes(text.encode(encoding))
    loaded = load_records(path)
    assert loaded.container == "jsonl" and loaded.shape == "openai" and len(loaded.records) == 12
    assert loaded.encoding == encoding and loaded.records[3].messages[-1]["content"].startswith("Antwort 3: schön")
    csv_path = tmp_path / "faq.csv"
    csv_path.write_bytes("question,answer\nWie geht's?,Gut – danke.\n".encode(encoding))
    faq = load_records(csv_path, mapping={"prompt": "question", "completion": "answer"})
    assert faq.records[0].messages[-1]["content"] == "Gut – danke." and faq.encoding == encoding
    assert list(ws.tmp.iterdir()) == []  # the UTF-8 copy is gone


def test_a_5000_digit_number_is_one_line_error(tmp_path):
    path = write_jsonl(tmp_path / "big.jsonl", [chat(i) for i in range(12)],
                       raw_lines={5: '{"messages": [], "id": ' + "9" * 5000 + "}"})
    loaded = load_records(path)
    assert len(loaded.records) == 13 and codes(loaded) == {(6, "unparseable_line")}
    assert "over 4,300 digits" in loaded.records[5].problems[0][1]
    array = tmp_path / "big.json"
    array.write_text("[" + json.dumps(chat(1)) + ', {"n": ' + "9" * 5000 + "}]")
    assert (2, "unparseable_line") in codes(load_records(array))


def test_columns_are_mapped_by_name_not_by_position(tmp_path):
    from engine.data.shapes import propose_mapping, suggest_column

    assert propose_mapping(["id", "answer", "question"]) == {"prompt": "question", "completion": "answer"}
    assert propose_mapping(["Instruction", "Response", "Context"]) == {"prompt": "Instruction",
                                                                       "completion": "Response", "system": "Context"}
    assert propose_mapping(["query", "target", "system_prompt"]) == {"prompt": "query", "completion": "target"}
    assert propose_mapping(["a", "b"]) is None and propose_mapping(["text"]) is None
    assert suggest_column(["zzz", "Output"], "completion") == "Output" and suggest_column(["a"], "prompt") is None
    csv_path = tmp_path / "faq.csv"
    csv_path.write_text("id,answer,question\n1,Thirty days.,How long is the return window?\n"
                        "2,Use the link in the e-mail.,How do I track my parcel?\n")
    loaded = load_records(csv_path)  # no --map: the pair is recognized by name
    assert loaded.mapping == {"prompt": "question", "completion": "answer"} and loaded.mapping_detected
    assert loaded.records[0].messages == [{"role": "user", "content": "How long is the return window?"},
                                          {"role": "assistant", "content": "Thirty days."}]
    mapped = load_records(csv_path, mapping={"prompt": "answer", "completion": "question"})  # --map still wins
    assert mapped.records[0].messages[0]["content"] == "Thirty days." and not mapped.mapping_detected
    jsonl = write_jsonl(tmp_path / "qa.jsonl", [{"question": f"Q{i} about returns?", "answer": f"A{i}."}
                                               for i in range(3)])
    assert load_records(jsonl).mapping == {"prompt": "question", "completion": "answer"}


def test_a_mapped_column_of_ids_or_timestamps_is_not_text(ws, tmp_path):
    from engine.data.quality import check_file

    log = tmp_path / "traffic.csv"
    log.write_text("timestamp,user_id,variant,latency_ms\n" + "".join(
        f"2026-11-0{1 + i % 9}T10:{i % 60:02d}:00Z,u_{1000 + i},control,{700 + i}\n" for i in range(40)))
    report = check_file(log, CheckOptions(mapping={"prompt": "user_id", "completion": "timestamp"}))
    errors = {f.code: f for f in report.errors}
    assert "not_text" in errors and report.blocking
    assert "'user_id', mapped as the prompt" in errors["not_text"].message
    assert errors["not_text"].count == 40
    # numbers are fine as answers (arithmetic, ratings, labels), never as prompts
    math = write_jsonl(tmp_path / "math.jsonl", [{"question": f"What is {i} + {i}?", "answer": str(2 * i)}
                                                 for i in range(12)])
    assert "not_text" not in {f.code for f in check_file(math).errors}


def test_json_failures_are_a_json_object_on_stdout_too(ws, tmp_path):
    from conftest import run_studio

    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    proc = run_studio("check", bad, "--json", env_home=ws.root)
    assert proc.returncode == 2
    sentence = proc.stderr.strip().removeprefix("studio: ")
    assert json.loads(proc.stdout) == {"error": sentence} and sentence.startswith("Cannot tell the shape")
