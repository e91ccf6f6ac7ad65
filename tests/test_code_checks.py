"""Code answers: compile checks per language and the sandboxed test runner (real compilers, real processes)."""

from __future__ import annotations

import shutil

import pytest

from engine import code_checks, evaluate


def test_python_compiles_through_its_own_parser(tmp_path):
    assert code_checks.compiles("```python\ndef f(x):\n    return x + 1\n```", tmp_path) == 1.0
    assert code_checks.compiles("def f(x:\n    return", tmp_path) == 0.0
    assert code_checks.compiles("Here you go:\n```py\nprint('hi')\n```\nDone.", tmp_path) == 1.0


@pytest.mark.parametrize("language,good,bad", [
    ("c", "int main(void) { return 0; }", "int main(void) { return 0 }"),
    ("cpp", "#include <vector>\nint main() { std::vector<int> v; return 0; }", "int main() { std::vector<int> v; }"),
    ("javascript", "const f = (x) => x * 2;", "const f = (x) => ;"),
    ("rust", "pub fn f() -> i32 { 1 }", "pub fn f() -> i32 { 1 "),
    ("java", "public class Hello { }", "public class Hello { void f( }"),
])
def test_other_languages_compile_where_their_compiler_is_installed(language, good, bad, tmp_path):
    if not shutil.which(code_checks.TOOLS[language]):
        assert code_checks.compiles(f"```{language}\n{good}\n```", tmp_path) is None  # not checkable, not failed
        pytest.skip(f"{code_checks.TOOLS[language]} is not installed here")
    assert code_checks.compiles(f"```{language}\n{good}\n```", tmp_path) == 1.0
    assert code_checks.compiles(f"```{language}\n{bad}\n```", tmp_path) == 0.0


def test_tests_pass_and_fail_in_a_separate_process(tmp_path):
    tests = "assert add(2, 3) == 5\nassert add(-1, 1) == 0"
    assert code_checks.run_tests("```python\ndef add(a, b):\n    return a + b\n```", tests, tmp_path)["passed"]
    failed = code_checks.run_tests("def add(a, b):\n    return a - b", tests, tmp_path)
    assert not failed["passed"] and "AssertionError" in failed["reason"]
    assert list(tmp_path.iterdir()) == []  # the throw-away folder is gone


def test_the_sandbox_stops_endless_loops_memory_hogs_and_network(tmp_path):
    looped = code_checks.run_tests("while True:\n    pass", "", tmp_path, timeout=2)
    assert not looped["passed"] and "Timed out" in looped["reason"]
    hog = code_checks.run_tests("x = bytearray(4 * 1024 ** 3)", "", tmp_path)
    assert not hog["passed"] and "MemoryError" in hog["reason"]
    net = code_checks.run_tests("import socket\nsocket.create_connection(('127.0.0.1', 9), timeout=2)", "", tmp_path)
    assert not net["passed"]
    harmless = "{'PATH', 'HOME', 'PWD', 'OLDPWD', 'SHLVL', '_', 'LC_CTYPE'}"  # set by sh and Python themselves
    env = code_checks.run_tests(f"import os\nassert set(os.environ) <= {harmless}", "", tmp_path)
    assert env["passed"], env  # the test process gets an empty environment (no keys, no tokens)


def test_code_report_compares_compile_and_test_pass_rates(ws):
    base = ["def add(a, b) return a + b", "def mul(a, b):\n    return a + b", "def neg(a):\n    return a"]
    tuned = ["def add(a, b):\n    return a + b", "def mul(a, b):\n    return a * b", "def neg(a):\n    return -a"]
    extras = [{"tests": "assert add(1, 2) == 3"}, {"tests": "assert mul(2, 3) == 6"}, {}]
    report = evaluate.code_report(base, tuned, extras, lambda f, label: None)
    m = report["metrics"]
    assert m["compiles"]["base"] == pytest.approx(2 / 3) and m["compiles"]["finetuned"] == 1.0
    assert m["tests_pass"]["base"] == 0.0 and m["tests_pass"]["finetuned"] == 1.0
    assert report["with_tests"] == 2 and len(report["test_failures"]["base"]) == 2


def test_the_sandbox_writes_only_in_its_own_folder(tmp_path):
    level = code_checks.isolation()
    assert level in ("namespace+read-only", "namespace", "python-level")
    work = tmp_path / "work"
    inside = code_checks.run_tests("open('here.txt', 'w').write('x')\nassert open('here.txt').read() == 'x'", "",
                                   work)
    assert inside["passed"], inside
    outside = tmp_path / "escaped.txt"
    result = code_checks.run_tests(f"open({str(outside)!r}, 'w').write('x')", "", work)
    if level == "namespace+read-only":  # the level this machine and CI have; the README documents the others
        assert not result["passed"] and "Read-only file system" in result["reason"]
        assert not outside.exists()
