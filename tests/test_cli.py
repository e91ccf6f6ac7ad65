"""The `studio` command as users run it: real subprocesses, exit codes, stable JSON, never a traceback."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from conftest import chat, eventually, run_studio, write_jsonl


def assert_one_sentence(proc):
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("studio") and lines[0].endswith(".")


def test_console_script_is_installed():
    script = Path(sys.executable).parent / "studio"
    assert script.is_file()


def test_check_clean_file_exits_0_with_json(ws, tmp_path):
    path = write_jsonl(tmp_path / "ok.jsonl", [chat(i) for i in range(15)])
    proc = run_studio("check", path, "--json", env_home=ws.root)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["records"] == 15 and data["errors"] == [] and data["format"] == "openai"
    assert data["stats"]["tokens_per_example"]["max"] >= data["stats"]["tokens_per_example"]["min"] > 0


def test_check_blocking_errors_exit_1(ws, tmp_path):
    path = write_jsonl(tmp_path / "bad.jsonl", [chat(i) for i in range(15)], {3: "{nope"})
    proc = run_studio("check", path, env_home=ws.root)
    assert proc.returncode == 1
    assert "unparseable_line" in proc.stdout and "lines: 4" in proc.stdout


def test_check_realdata_toy_reports_lines(ws, realdata):
    proc = run_studio("check", realdata / "openai_cookbook/toy_chat_fine_tuning.jsonl", "--json",
                      "--max-length", "4096", env_home=ws.root)
    data = json.loads(proc.stdout)
    found = {w["code"]: w["locations"] for w in data["warnings"]}
    assert found["missing_system"] == [3] and found["missing_user"] == [4]
    assert found["repetitive"] == [5] and found["too_long"] == [5]


@pytest.mark.parametrize("content,needle", [
    (b"", "empty"),
    (b"\x00\x01\x02binary", "binary"),
    ('{"messages": [{"role": "user", "content": "caf\xe9"}]}\n'.encode("latin-1"), "Line 1 is not valid UTF-8"),
])
def test_unreadable_input_exits_2_with_one_sentence(ws, tmp_path, content, needle):
    path = tmp_path / "in.jsonl"
    path.write_bytes(content)
    proc = run_studio("check", path, env_home=ws.root)
    assert proc.returncode == 2
    assert_one_sentence(proc)
    assert needle in proc.stderr


def test_missing_file_and_bad_mapping(ws, tmp_path):
    proc = run_studio("check", tmp_path / "nope.jsonl", env_home=ws.root)
    assert proc.returncode == 2 and "There is no file" in proc.stderr
    assert_one_sentence(proc)
    csv = tmp_path / "d.csv"
    csv.write_text("q,a\nhello,world\n")
    proc = run_studio("check", csv, "--map", "prompt=q,completion=answer", env_home=ws.root)
    assert proc.returncode == 2 and "'answer' is not in the file" in proc.stderr
    assert_one_sentence(proc)
    proc = run_studio("check", csv, "--map", "question", env_home=ws.root)
    assert proc.returncode == 2
    assert_one_sentence(proc)


def test_csv_with_mapping_and_format_override(ws, tmp_path):
    csv = tmp_path / "d.csv"
    csv.write_text("q,a\n" + "".join(f"question {i} about topic {i * 7},answer {i} with detail {i * 3}\n"
                                     for i in range(12)))
    proc = run_studio("check", csv, "--map", "prompt=q,completion=a", "--json", env_home=ws.root)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["format"] == "columns"
    path = write_jsonl(tmp_path / "io.jsonl", [{"input": f"in {i}", "output": f"out {i}"} for i in range(3)])
    proc = run_studio("check", path, "--format", "alpaca", "--json", env_home=ws.root)
    data = json.loads(proc.stdout)
    assert proc.returncode == 1 and {e["code"] for e in data["errors"]} >= {"no_messages"}


def test_misuse_exits_2_with_one_sentence(ws):
    for args in (["check"], ["frobnicate"], ["split", "x.jsonl"]):
        proc = run_studio(*args, env_home=ws.root)
        assert proc.returncode == 2, args
        assert_one_sentence(proc)


def test_nothing_written_outside_the_workspace(ws, tmp_path):
    path = write_jsonl(tmp_path / "ok.jsonl", [chat(i) for i in range(12)])
    home = tmp_path / "home"
    home.mkdir()
    before = set(tmp_path.iterdir())
    proc = run_studio("check", path, env_home=ws.root, HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"))
    assert proc.returncode == 0
    assert set(tmp_path.iterdir()) - before <= {ws.root}
    assert list(home.iterdir()) == []


def test_versions_and_export_from_the_cli(ws, tmp_path):
    from engine.data import versions
    from engine.store import projects

    project = projects.create_project("Exported")
    src = write_jsonl(tmp_path / "src.jsonl", [chat(i) for i in range(5)])
    version = versions.import_file(project.id, src, "src.jsonl")
    listed = json.loads(run_studio("versions", "--json", env_home=ws.root).stdout)
    assert [(r["id"], r["project"], r["records"]) for r in listed] == [(version.id, "Exported", 5)]
    out = tmp_path / "out.jsonl"
    proc = run_studio("export", version.id, "--out", out, env_home=ws.root)
    assert proc.returncode == 0, proc.stderr
    assert [json.loads(line) for line in out.read_text().splitlines()] == [chat(i) for i in range(5)]
    again = run_studio("export", version.id, "--out", out, env_home=ws.root)
    assert again.returncode == 2 and "already exists" in again.stderr  # never overwritten
    folder = tmp_path / "hf"
    assert run_studio("export", version.id, "--format", "hf", "--out", folder, env_home=ws.root).returncode == 0
    from datasets import load_from_disk

    assert len(load_from_disk(str(folder))) == 5
    missing = run_studio("export", "99", "--out", tmp_path / "x.jsonl", env_home=ws.root)
    assert missing.returncode == 2 and missing.stderr.strip() == "studio: There is no dataset version 99."


def test_the_dashboard_listens_on_this_machine_only_and_prints_a_setup_token(ws):
    """`studio ui` binds 127.0.0.1 unless told otherwise, and on a fresh install prints the one-time token that
    another machine needs to create the administrator."""
    import os
    import socket
    import subprocess

    import psutil
    from conftest import ROOT, STUDIO

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = ws.root / "ui.log"
    with log.open("w") as out:
        proc = subprocess.Popen([*STUDIO, "ui", "--headless", "--port", str(port)], cwd=ROOT, stdout=out,
                                stderr=subprocess.STDOUT, env={**os.environ, "STUDIO_HOME": str(ws.root)},
                                start_new_session=True)
    try:
        listening = eventually(lambda: [c.laddr for c in psutil.net_connections("inet")
                                        if c.status == psutil.CONN_LISTEN and c.laddr.port == port], 60, 0.5)
        assert {a.ip for a in listening} == {"127.0.0.1"}
        assert "one-time setup token: " in log.read_text()
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=20)
