"""Code answers: compile checks per language and the sandboxed test runner (real compilers, real processes)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from conftest import eventually

from engine.evaluate import code_checks, comparison, sandbox


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


LEVELS = ["bubblewrap", "unshare"]


@pytest.fixture(params=LEVELS)
def level(request, monkeypatch):
    """Each real sandbox in turn (bubblewrap, then the unshare fallback), skipped with the reason where it cannot
    work on this machine."""
    if not sandbox._probe(request.param):
        pytest.skip(f"{request.param} cannot build a sandbox on this machine")
    monkeypatch.setenv("STUDIO_SANDBOX", request.param)
    return request.param


def test_tests_pass_and_fail_in_the_sandbox(level, tmp_path):
    tests = "assert add(2, 3) == 5\nassert add(-1, 1) == 0"
    assert code_checks.run_tests("```python\ndef add(a, b):\n    return a + b\n```", tests, tmp_path)["passed"]
    failed = code_checks.run_tests("def add(a, b):\n    return a - b", tests, tmp_path)
    assert not failed["passed"]
    assert failed["reason"] == "AssertionError on line 1 of the tests: assert add(2, 3) == 5"
    assert list(tmp_path.iterdir()) == []  # the throw-away folder is gone


def test_the_sandbox_stops_endless_loops_memory_hogs_and_exits(level, tmp_path):
    looped = code_checks.run_tests("while True:\n    pass", "", tmp_path, timeout=2)
    assert not looped["passed"] and "Timed out" in looped["reason"]
    hog = code_checks.run_tests("x = bytearray(4 * 1024 ** 3)", "", tmp_path)
    assert not hog["passed"] and "MemoryError" in hog["reason"]
    early = code_checks.run_tests("import os\nos._exit(0)", "assert False", tmp_path)
    assert not early["passed"], early  # leaving before the tests ran is not a pass
    env = code_checks.run_tests("import os\nassert set(os.environ) <= {'PATH', 'HOME'}", "", tmp_path)
    assert env["passed"], env  # no keys, no tokens, nothing of the studio's environment


def test_hostile_code_is_refused_everything_and_leaks_nothing(level, ws, tmp_path):
    """The attacks a model answer could make on the machine that evaluates it. Each answer succeeds only if the
    attack works (its test asserts the stolen value), so a pass would be a hole."""
    secret = f"studio-secret-{uuid.uuid4().hex}"
    database = ws.root / "studio.db"
    database.write_text(secret)
    home_file = Path.home() / f".studio-sandbox-probe-{uuid.uuid4().hex[:8]}"
    home_file.write_text(secret)
    victim = subprocess.Popen(["sleep", "120"], start_new_session=True)  # stands for the dashboard
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(0.5)
    port = listener.getsockname()[1]
    outside = [ws.root / "escaped.txt", tmp_path / "escaped.txt", Path("/tmp") / f"escaped-{uuid.uuid4().hex[:8]}"]
    steal = "data = open({!r}).read()"
    attacks = {
        "studio database": (steal.format(str(database)), f"assert {secret!r} in data"),
        "/etc/shadow": (steal.format("/etc/shadow"), "assert data"),
        "a file in $HOME": (steal.format(str(home_file)), f"assert {secret!r} in data"),
        "other processes in /proc": ("import os\npids = [p for p in os.listdir('/proc') if p.isdigit()]",
                                     f"assert {str(victim.pid)!r} in pids or len(pids) > 3"),
        "kill the parent": (f"import os, signal\nos.kill({victim.pid}, signal.SIGKILL)", ""),
        "kill every process": ("import os, signal\nos.kill(-1, signal.SIGKILL)", "assert False"),
        "fork bomb": ("import os\nwhile True:\n    os.fork()", ""),
        "a socket": (f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)", ""),
        "write outside": ("\n".join(f"open({str(p)!r}, 'w').write('x')" for p in outside), ""),
        "secrets in the error": (steal.format(str(database)) + "\nraise ValueError(data)", ""),
        "printed secrets": (f"print({secret!r})\nraise SystemExit(1)", ""),
    }
    try:
        for name, (code, tests) in attacks.items():
            started = time.monotonic()
            result = code_checks.run_tests(code, tests, tmp_path / "work", timeout=10)
            assert not result["passed"], f"{name}: {result}"
            assert secret not in result["reason"], name
            assert time.monotonic() - started < 15, name
            assert victim.poll() is None, f"{name} killed a process outside the sandbox"
        with pytest.raises(OSError):
            listener.accept()  # nothing ever connected
        assert not any(p.exists() for p in outside)
        assert "studio-secret" not in subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
        # the kernel kills a PID namespace's processes when its first one ends
        eventually(lambda: not subprocess.run(["pgrep", "-u", "65534"], capture_output=True, text=True).stdout.split(),
                   5)
    finally:
        victim.kill()
        listener.close()
        home_file.unlink()


CHEATS = {  # each answer is wrong (f(1) should be 1); each tries to be scored as passing anyway
    "a forged result on every descriptor": (
        "import os, sys\nfor fd in [*range(3, 256), *(int(a) for a in sys.argv[1:] if a.isdigit())]:\n"
        "    try:\n        os.write(fd, b'{\"status\": \"passed\"}\\n')\n    except OSError:\n        pass\n"
        "def f(x):\n    return 0\n"),
    "a forged result through /proc": (
        "import os\nfor n in range(3, 64):\n    try:\n"
        "        w = os.open('/proc/%d/fd/%d' % (os.getppid(), n), os.O_WRONLY)\n"
        "        os.write(w, b'{\"status\": \"passed\"}\\n')\n    except OSError:\n        pass\n"
        "def f(x):\n    return 0\n"),
    "an object equal to everything": (
        "class Any:\n    def __eq__(self, other):\n        return True\n    def __ne__(self, other):\n"
        "        return False\n    def __hash__(self):\n        return 0\n    def __bool__(self):\n        return True\n"
        "def f(x):\n    return Any()\n"),
    "an int that equals everything": ("class I(int):\n    def __eq__(self, o):\n        return True\n"
                                      "def f(x):\n    return I(0)\n"),
    "patched builtins and modules": ("import builtins, json\nbuiltins.AssertionError = type('Q', (Exception,), {})\n"
                                     "json.dumps = lambda *a, **k: '{\"status\": \"passed\"}'\n"
                                     "builtins.len = lambda x: 1\ndef f(x):\n    return 0\n"),
    "an early exit with status 0": ("import os\nos._exit(0)\ndef f(x):\n    return 1\n"),
    "an exit with status 0 inside the call": ("import sys\ndef f(x):\n    sys.exit(0)\n"),
    "the tests read and answered": ("def f(x):\n    return int(open('/input/tests.py').read().split('== ')[1][0])\n"),
    "an object that is always true": ("class T:\n    def __bool__(self):\n        return True\n"
                                      "def f(x):\n    return T()\n"),
}
CHEAT_TESTS = {"an object that is always true": "assert f(1)\n"}  # the others: f(1) should be 1


@pytest.mark.parametrize("cheat", CHEATS)
def test_an_answer_cannot_forge_its_verdict(level, cheat, tmp_path):
    """Values cross from the answer's process to the tests' process as plain data only; the result descriptor is
    the tests' process's alone."""
    result = code_checks.run_tests(CHEATS[cheat], CHEAT_TESTS.get(cheat, "assert f(1) == 1\n"), tmp_path)
    assert not result["passed"], f"{cheat}: {result}"


def test_plain_data_objects_and_errors_cross_as_the_tests_expect(level, tmp_path):
    answer = ("import math\nclass Stack:\n    def __init__(self):\n        self.items = []\n"
              "    def push(self, v):\n        self.items.append(v)\n    def pop(self):\n        return self.items.pop()\n"
              "    def __len__(self):\n        return len(self.items)\n"
              "def pair(x):\n    return (x, {x: {x}}, [x / 2], b'x', float('nan'))\n"
              "def gen(n):\n    yield from range(n)\n"
              "def root(x):\n    if x < 0:\n        raise ValueError('negative')\n    return math.sqrt(x)\n"
              "LIMIT = 10\n")
    tests = ("s = Stack()\ns.push(3)\ns.push((1, 2))\nassert len(s) == 2 and s.pop() == (1, 2) and s.items == [3]\n"
             "p = pair(3)\nassert p[:4] == (3, {3: {3}}, [1.5], b'x') and math.isnan(p[4])\n"
             "assert list(gen(3)) == [0, 1, 2] and LIMIT == 10\n"
             "try:\n    root(-1)\nexcept ValueError:\n    pass\nelse:\n    raise AssertionError('no error')\n"
             "assert math.isclose(root(2), 2 ** 0.5)\n")
    result = code_checks.run_tests(answer, tests, tmp_path)
    assert result["passed"], result


def test_without_a_sandbox_code_tests_are_disabled_unless_allowed(ws, monkeypatch):
    monkeypatch.setenv("STUDIO_SANDBOX", "python-level")
    with pytest.raises(code_checks.SandboxUnavailable, match="bubblewrap"):
        code_checks.run_tests("def f():\n    return 1", "assert f() == 1")
    weak = code_checks.run_tests("def f():\n    return 1", "assert f() == 1", allow_weak=True)
    assert weak["passed"]
    metrics, report = comparison.code_report(["def f(): return 2"], ["def f(): return 1"],
                                             [{"tests": "assert f() == 1"}], lambda f, label: None)
    assert report["tests_disabled"] == code_checks.DISABLED and "tests_pass" not in metrics
    assert report["isolation"] == "python-level"
    allowed, _ = comparison.code_report(["def f(): return 2"], ["def f(): return 1"], [{"tests": "assert f() == 1"}],
                                        lambda f, label: None, allow_weak_sandbox=True)
    assert allowed["tests_pass"]["finetuned"] == 1.0


def test_code_report_compares_compile_and_test_pass_rates(ws):
    base = ["def add(a, b) return a + b", "def mul(a, b):\n    return a + b", "def neg(a):\n    return a"]
    tuned = ["def add(a, b):\n    return a + b", "def mul(a, b):\n    return a * b", "def neg(a):\n    return -a"]
    extras = [{"tests": "assert add(1, 2) == 3"}, {"tests": "assert mul(2, 3) == 6"}, {}]
    m, report = comparison.code_report(base, tuned, extras, lambda f, label: None)
    assert m["compiles"]["base"] == pytest.approx(2 / 3) and m["compiles"]["finetuned"] == 1.0
    assert m["tests_pass"]["base"] == 0.0 and m["tests_pass"]["finetuned"] == 1.0
    assert report["with_tests"] == 2 and len(report["test_failures"]["base"]) == 2
