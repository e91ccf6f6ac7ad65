"""Code answers: does the code compile, and do the dataset's tests pass when it runs?

compiles(answer)   1.0 / 0.0, or None when no compiler for the answer's language is installed. Python through its own
                   parser; C and C++ (gcc/g++ -fsyntax-only), JavaScript (node --check), Rust (rustc, metadata only),
                   Java (javac) where those tools are on the PATH.
run_tests(answer, tests)
                   the answer's Python code and the example's tests (plain asserts) in two processes (the tests
                   reach the answer's functions through proxies that carry plain data only: code_wire), in the
                   sandbox of
                   engine.evaluate.sandbox (bubblewrap, or unshare: own PID, mount and network namespaces, only a read-only
                   Python and a scratch tmpfs visible, an unprivileged uid, CPU/memory/file/process limits, an
                   empty environment). Passed = the harness ran every test. With no sandbox here, tests are
                   disabled unless the weak mode is allowed explicitly.

Model output is untrusted code: it never runs in the studio's own process.
"""

from __future__ import annotations

import builtins
import re
import shutil
import signal
import subprocess
from pathlib import Path

from engine.errors import StudioError
from engine.evaluate import sandbox

FENCE = re.compile(r"```[ \t]*([A-Za-z0-9+#_-]*)[ \t]*\n(.*?)```", re.S)
ALIASES = {"py": "python", "python3": "python", "python": "python", "c": "c", "h": "c", "cpp": "cpp", "c++": "cpp",
           "cc": "cpp", "cxx": "cpp", "js": "javascript", "javascript": "javascript", "node": "javascript",
           "rust": "rust", "rs": "rust", "java": "java"}
TOOLS = {"c": "gcc", "cpp": "g++", "javascript": "node", "rust": "rustc", "java": "javac"}
TEST_TIMEOUT_S = 10.0


def extract(answer: str, default: str = "python") -> tuple[str, str]:
    """(language, code): the first fenced block with its language tag, or the whole answer in the default language."""
    m = FENCE.search(answer)
    if not m:
        return default, answer
    return ALIASES.get(m.group(1).lower(), m.group(1).lower() or default), m.group(2)


def checkable_languages() -> list[str]:
    return ["python"] + [lang for lang, tool in TOOLS.items() if shutil.which(tool)]


def compiles(answer: str, workdir: Path | None = None) -> float | None:
    language, code = extract(answer)
    if language == "python":
        try:
            compile(code, "<answer>", "exec")
            return 1.0
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            return 0.0
    tool = TOOLS.get(language)
    if tool is None or not shutil.which(tool):
        return None
    with sandbox.scratch(workdir) as folder:
        src = folder / {"c": "a.c", "cpp": "a.cpp", "javascript": "a.js", "rust": "a.rs"}.get(language, "Main.java")
        if language == "java":
            name = re.search(r"public\s+(?:final\s+|abstract\s+)*(?:class|interface|enum|record)\s+(\w+)", code)
            src = folder / f"{name.group(1) if name else 'Main'}.java"
        src.write_text(code, encoding="utf-8")
        cmd = {"c": ["gcc", "-fsyntax-only", str(src)], "cpp": ["g++", "-fsyntax-only", str(src)],
               "javascript": ["node", "--check", str(src)],
               "rust": ["rustc", "--crate-type", "lib", "--emit=metadata", "-o", str(folder / "out"), str(src)],
               "java": ["javac", "-d", str(folder), str(src)]}[language]
        try:
            done = subprocess.run(cmd, cwd=folder, capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            return 0.0
        return 1.0 if done.returncode == 0 else 0.0


class SandboxUnavailable(StudioError, RuntimeError):
    """No real sandbox here and the weak mode was not allowed: code tests are not run."""


DISABLED = ("Code tests are disabled: this machine has no sandbox for model-written code (install bubblewrap, or "
            "allow user namespaces for unshare); --allow-weak-sandbox runs them with Python-level limits only.")


def tests_enabled(allow_weak: bool = False) -> bool:
    return allow_weak or sandbox.level() != "python-level"


def run_tests(answer: str, tests: str, workdir: Path | None = None, timeout: float = TEST_TIMEOUT_S,
              allow_weak: bool = False) -> dict:
    """{"passed": bool, "reason": one sentence} for the answer's code run with the tests appended, in the sandbox.

    The reason is built here from the tests' own text and a builtin exception name: nothing the answer prints or
    raises reaches the report."""
    language, code = extract(answer)
    if language != "python":
        return {"passed": False, "reason": f"Only Python tests can be run; the answer is {language}."}
    if not tests_enabled(allow_weak):
        raise SandboxUnavailable(DISABLED)
    status, result = sandbox.run_python(code, tests, timeout=timeout, parent=workdir)
    if status == 0 and result == {"status": "passed"}:
        return {"passed": True, "reason": "All tests passed."}
    return {"passed": False, "reason": _reason(status, result, tests, timeout)[:REASON_CHARS]}


REASON_CHARS = 300


def _reason(status: int | None, result: dict | None, tests: str, timeout: float) -> str:
    if result and result.get("status") == "failed":
        kind, line = str(result.get("type")), result.get("line")
        known = getattr(builtins, kind, None)
        if not (isinstance(known, type) and issubclass(known, BaseException)):
            kind = "Exception"  # the result line comes from the sandbox: only a builtin name is believed
        if not isinstance(line, int):
            line = 0
        if result.get("where") == "tests":
            lines = tests.splitlines()
            text = lines[line - 1].strip() if 0 < line <= len(lines) else ""
            return f"{kind} on line {line} of the tests: {text}"
        return f"The answer's code raised {kind} (line {line})."
    if status is None:
        return f"Timed out after {timeout:g} s."
    if status < 0:
        name = signal.Signals(-status).name if -status in signal.Signals._value2member_map_ else f"signal {-status}"
        return f"Killed by {name} (a CPU, memory or process limit)."
    return f"The process ended (exit status {status}) before the tests finished."
