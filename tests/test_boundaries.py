"""House rules that keep the architecture honest: the engine is UI-free, heavy ML stays out of pages and of the
data CLI."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

from conftest import ROOT

import engine

HEAVY = ("torch", "transformers", "trl", "peft")


def _run(code: str, home) -> dict:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120,
                          env={"STUDIO_HOME": str(home), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_every_engine_module_imports_without_streamlit(ws):
    names = [m.name for m in pkgutil.walk_packages(engine.__path__, "engine.")
             if "migrations" not in m.name and not m.name.endswith("__main__")]
    code = ("import importlib, json, sys\n"
            f"for n in {names!r}: importlib.import_module(n)\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('streamlit',) + "
            f"{HEAVY!r})))")
    assert len(names) > 15
    assert _run(code, ws.root) == []


def test_quality_check_imports_no_heavy_ml(ws, tmp_path):
    from conftest import chat, write_jsonl

    path = write_jsonl(tmp_path / "d.jsonl", [chat(i) for i in range(12)])
    code = ("import json, sys\nfrom engine.cli import main\n"
            f"main(['check', {str(path)!r}, '--json'])\n"
            f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})))")
    assert _run(code, ws.root) == []


def test_pages_load_without_heavy_ml(ws):
    code = ("import json, sys\nfrom streamlit.testing.v1 import AppTest\nfrom engine.data import demo_project\n"
            "demo_project.ensure_demo(build_model=False)\n"
            "from engine.store import users\n"
            "at = AppTest.from_file('app.py', default_timeout=60)\n"
            "at.session_state['user_id'] = users.add_user('a', 'admin', 'password123').id\n"
            "at.run()\n"
            "for p in ('pages/data.py', 'pages/quality.py', 'pages/train.py', 'pages/runs.py',\n"
            "          'pages/evaluate.py', 'pages/playground.py', 'pages/review.py', 'pages/ab.py',\n"
            "          'pages/my_reviews.py', 'pages/users.py'):\n"
            "    at.switch_page(p).run()\n"
            "    assert not at.exception, (p, at.exception)\n"
            f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})))")
    assert _run(code, ws.root) == []
