"""Code answers: does the code compile, and do the dataset's tests pass when it runs?

compiles(answer)   1.0 / 0.0, or None when no compiler for the answer's language is installed. Python through its own
                   parser; C and C++ (gcc/g++ -fsyntax-only), JavaScript (node --check), Rust (rustc, metadata only),
                   Java (javac) where those tools are on the PATH.
run_tests(answer, tests)
                   the answer's Python code followed by the example's tests (plain asserts) in a separate process:
                   a throw-away folder inside the workspace, a wall-clock timeout, CPU/memory/file-size/open-file
                   limits, an empty environment, and where the kernel allows user namespaces (`unshare`): no
                   network and every mount but that folder read-only; otherwise Python's socket functions are
                   disabled and nothing more. Passed = exit status 0.

Model output is untrusted code: it never runs in the studio's own process.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from functools import lru_cache
from pathlib import Path

FENCE = re.compile(r"```[ \t]*([A-Za-z0-9+#_-]*)[ \t]*\n(.*?)```", re.S)
ALIASES = {"py": "python", "python3": "python", "python": "python", "c": "c", "h": "c", "cpp": "cpp", "c++": "cpp",
           "cc": "cpp", "cxx": "cpp", "js": "javascript", "javascript": "javascript", "node": "javascript",
           "rust": "rust", "rs": "rust", "java": "java"}
TOOLS = {"c": "gcc", "cpp": "g++", "javascript": "node", "rust": "rustc", "java": "javac"}
TEST_TIMEOUT_S = 10.0
MEMORY_BYTES = 1 << 30
# Python's network switched off inside the test process (used when no network namespace can be made).
NO_NETWORK = ("import socket as _s\n"
              "def _refuse(*a, **k):\n    raise OSError('network access is disabled in the test sandbox')\n"
              "_s.socket = _refuse; _s.create_connection = _refuse; _s.getaddrinfo = _refuse\n")


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
    with _scratch(workdir) as folder:
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


# Run inside new user, network and mount namespaces: the throw-away folder stays writable, every other mount is
# remounted read-only (those that refuse, such as /proc, are left as they are), then the test runs.
READ_ONLY_WRAPPER = (
    'mount --bind "$0" "$0" && '
    'while read -r _ target _; do [ "$target" = "$0" ] || mount -o remount,bind,ro "$target" 2>/dev/null; '
    'done < /proc/self/mounts; cd "$0" && exec "$@"')  # cd again: the old working directory is the hidden one


def _namespaced(folder: Path, cmd: list[str], read_only: bool) -> list[str]:
    base = ["unshare", "--user", "--map-root-user", "--net"]
    if read_only:
        return [*base, "--mount", "sh", "-c", READ_ONLY_WRAPPER, str(folder), *cmd]
    return [*base, *cmd]


@lru_cache(maxsize=1)
def isolation() -> str:
    """What this machine allows: "namespace+read-only" (no network, nothing writable but the throw-away folder),
    "namespace" (no network), or "python-level" (Python's socket functions disabled, nothing more)."""
    if not shutil.which("unshare"):
        return "python-level"
    with _scratch(None) as folder:
        outside = folder.parent / f"{folder.name}-probe"
        probe = f"open({str(folder / 'in')!r}, 'w').close()\ntry:\n    open({str(outside)!r}, 'w').close()\n" \
                "except OSError:\n    raise SystemExit(0)\nraise SystemExit(3)\n"
        for read_only in (True, False):
            try:
                done = subprocess.run(_namespaced(folder, [sys.executable, "-I", "-S", "-c", probe], read_only),
                                      capture_output=True, timeout=20)
            except (OSError, subprocess.TimeoutExpired):
                continue
            outside.unlink(missing_ok=True)
            if read_only and done.returncode == 0:
                return "namespace+read-only"
            if not read_only and done.returncode in (0, 3):
                return "namespace"
    return "python-level"


def _limits() -> None:  # runs in the child between fork and exec
    import resource

    os.setsid()
    resource.setrlimit(resource.RLIMIT_CPU, (int(TEST_TIMEOUT_S) + 1, int(TEST_TIMEOUT_S) + 1))
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BYTES, MEMORY_BYTES))
    resource.setrlimit(resource.RLIMIT_FSIZE, (16 << 20, 16 << 20))
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def run_tests(answer: str, tests: str, workdir: Path | None = None, timeout: float = TEST_TIMEOUT_S) -> dict:
    """{"passed": bool, "reason": one sentence} for the answer's code run with the tests appended."""
    language, code = extract(answer)
    if language != "python":
        return {"passed": False, "reason": f"Only Python tests can be run; the answer is {language}."}
    with _scratch(workdir) as folder:
        level = isolation()
        script = ("" if level != "python-level" else NO_NETWORK) + code + "\n\n" + tests + "\n"
        (folder / "check.py").write_text(script, encoding="utf-8")
        cmd = [sys.executable, "-I", "-S", "check.py"]
        if level != "python-level":
            cmd = _namespaced(folder.resolve(), cmd, level == "namespace+read-only")
        proc = subprocess.Popen(cmd, cwd=folder, env={"PATH": "/usr/bin:/bin", "HOME": str(folder)},
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                preexec_fn=_limits)
        try:
            _, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            return {"passed": False, "reason": f"Timed out after {timeout:g} s."}
        if proc.returncode == 0:
            return {"passed": True, "reason": "All tests passed."}
        last = err.decode("utf-8", errors="replace").strip().splitlines()
        return {"passed": False, "reason": (last[-1] if last else f"Exit status {proc.returncode}.")[:300]}


def _kill_group(proc: subprocess.Popen) -> None:
    import signal

    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


class _scratch:
    """A throw-away folder inside the workspace (never outside it), removed afterwards."""

    def __init__(self, parent: Path | None):
        if parent is None:
            from engine import workspace

            parent = workspace.current().tmp
        self.parent = Path(parent)

    def __enter__(self) -> Path:
        self.parent.mkdir(parents=True, exist_ok=True)
        self.path = Path(tempfile.mkdtemp(prefix="code-", dir=self.parent))
        return self.path

    def __exit__(self, *exc) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
