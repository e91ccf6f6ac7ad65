"""The sandbox for model-written code: a process that sees only its inputs, a scratch tmpfs and a read-only Python.

    level()                      "bubblewrap", "unshare" or "python-level" (what this machine allows)
    run_python(answer, tests)    (exit status, the harness's JSON result or None) for one answer and its tests

bubblewrap (Debian's `bubblewrap`) is the tool: new PID, network, IPC and UTS namespaces, a mount namespace whose
root holds only /input (the answer, engine/code_harness.py and code_wire.py, read-only; the tests come in on a
descriptor, so the answer cannot read them), /work (a 64 MB tmpfs, the only
writable place), the Python runtime and the system libraries (read-only), a private /proc and a minimal /dev; no
environment. Where bwrap is missing, `unshare` builds the same tree by hand and chroots into it. The harness then sets
the resource limits and drops root (to uid 65534 when the studio runs as root, else every capability) before the
answer runs. Limits are set inside the sandbox, never by a preexec_fn: the checks run from a thread pool, and
preexec_fn is unsafe with threads.

"python-level" means neither works here: code tests are then disabled unless the user opts in to the weak mode
(Python's socket functions switched off, nothing more), and the report says so.

STUDIO_SANDBOX=bubblewrap|unshare|python-level forces a level (the tests use it to exercise each).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from functools import lru_cache
from pathlib import Path

from engine import settings
from engine.store import workspace

LEVELS = ("bubblewrap", "unshare", "python-level")
WORK_TMPFS_BYTES = 64 << 20
HARNESS = Path(__file__).with_name("code_harness.py")
WIRE = Path(__file__).with_name("code_wire.py")  # imported by the harness, next to it
# Weak mode only: Python's network switched off inside the test process.
NO_NETWORK = ("import socket as _s\n"
              "def _refuse(*a, **k):\n    raise OSError('network access is disabled in the test sandbox')\n"
              "_s.socket = _refuse; _s.create_connection = _refuse; _s.getaddrinfo = _refuse\n")


def _runtime() -> tuple[str, str]:
    """(the real Python executable, the installation prefix it needs) — the venv's python is only a link."""
    return os.path.realpath(sys.executable), os.path.realpath(sys.base_prefix)


def _system_libraries() -> list[tuple[str, str | None]]:
    """(path, symlink target or None) for the library folders the interpreter loads from."""
    out: list[tuple[str, str | None]] = []
    for path in ("/usr/lib", "/usr/lib64", "/lib", "/lib64", "/lib32", "/usr/lib32"):
        if os.path.islink(path):
            out.append((path, os.readlink(path)))
        elif os.path.isdir(path):
            out.append((path, None))
    return out


def _parents(path: str) -> list[str]:
    parts = Path(path).parts[1:-1]
    return ["/" + "/".join(parts[:i + 1]) for i in range(len(parts))]


def bwrap_command(inputs: Path, fd: int, tests_fd: int) -> list[str]:
    exe, prefix = _runtime()
    cmd = ["bwrap", "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try",
           "--die-with-parent", "--new-session", "--clearenv", "--setenv", "PATH", "/usr/bin:/bin",
           "--setenv", "HOME", "/work"]
    if os.getuid() == 0:
        # Real root sets up the mounts; the harness then becomes uid 65534. Only the two capabilities it needs for
        # that survive into the sandbox.
        cmd += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:
        cmd += ["--unshare-user"]
    made: set[str] = set()
    mounts = [(prefix, None)] + [lib for lib in _system_libraries() if not prefix.startswith(lib[0] + "/")]
    for path, link in mounts:
        for parent in _parents(path):
            if parent not in made:
                cmd += ["--perms", "0755", "--dir", parent]
                made.add(parent)
        cmd += ["--symlink", link, path] if link else ["--ro-bind", path, path]
    cmd += ["--ro-bind", str(inputs), "/input", "--perms", "0777", "--size", str(WORK_TMPFS_BYTES), "--tmpfs", "/work",
            "--proc", "/proc", "--dev", "/dev", "--chdir", "/work", exe, "-I", "-S", "/input/harness.py", str(fd),
            str(tests_fd), "/input", "/work"]
    return cmd


# `unshare` does by hand what bwrap does: a tmpfs root holding only the runtime (read-only), the inputs (read-only),
# /work and a private /proc, then chroot. The harness drops every capability first thing, so the chroot and the
# mounts cannot be undone.
_UNSHARE_SETUP = r"""
set -e
R="$1"; shift; IN="$1"; shift; SIZE="$1"; shift; EXE="$1"; shift
mount -t tmpfs -o size=4m,mode=0755 none "$R"
while [ "$1" != "--" ]; do
  p="$1"; t="$2"; shift 2
  if [ -n "$t" ]; then mkdir -p "$R$(dirname "$p")"; ln -s "$t" "$R$p"
  else mkdir -p "$R$p"; mount --rbind "$p" "$R$p"; mount -o remount,bind,ro "$R$p"; fi
done
shift
mkdir -p "$R/input" "$R/work" "$R/proc" "$R/dev"
mount --bind "$IN" "$R/input"; mount -o remount,bind,ro "$R/input"
mount -t tmpfs -o size="$SIZE",mode=0777 none "$R/work"
mount -t proc proc "$R/proc"
for d in null zero urandom random; do touch "$R/dev/$d"; mount --bind "/dev/$d" "$R/dev/$d"; done
cd /
exec chroot "$R" "$EXE" "$@"
"""


def unshare_command(inputs: Path, root: Path, fd: int, tests_fd: int) -> list[str]:
    exe, prefix = _runtime()
    user = [] if os.getuid() == 0 else ["--user", "--map-root-user"]
    mounts: list[str] = []
    for path, link in [(prefix, None)] + [lib for lib in _system_libraries() if not prefix.startswith(lib[0] + "/")]:
        mounts += [path, link or ""]
    return ["unshare", *user, "--mount", "--pid", "--fork", "--net", "--ipc", "--uts", "--kill-child",
            "sh", "-c", _UNSHARE_SETUP, "sh", str(root), str(inputs), str(WORK_TMPFS_BYTES), exe, *mounts, "--",
            "-I", "-S", "/input/harness.py", str(fd), str(tests_fd), "/input", "/work"]


@lru_cache(maxsize=4)
def _probe(level: str) -> bool:
    """Does this level really isolate here? A harness run that must pass, with a write outside that must fail."""
    code = "import os\nassert os.listdir('/input')\ntry:\n    open('/input/x', 'w')\n    raise SystemExit(3)\n" \
           "except OSError:\n    pass\nassert not os.path.exists('/etc/passwd')\n"
    try:
        status, result = run_python(code, "", timeout=30, level=level)
    except OSError:
        return False
    return status == 0 and result == {"status": "passed"}


def level() -> str:
    """The strongest isolation that works here (STUDIO_SANDBOX forces one)."""
    forced = settings.current().sandbox
    if forced in LEVELS:
        return forced
    if shutil.which("bwrap") and _probe("bubblewrap"):
        return "bubblewrap"
    if shutil.which("unshare") and _probe("unshare"):
        return "unshare"
    return "python-level"


def run_python(answer: str, tests: str, timeout: float = 10.0, level: str | None = None,
               parent: Path | None = None) -> tuple[int | None, dict | None]:
    """Run the answer then its tests in the sandbox. (exit status or None on timeout, the harness's result or None
    when it did not finish: killed, timed out, or exited on its own before the tests ran)."""
    chosen = level or globals()["level"]()
    with scratch(parent) as folder:
        inputs = folder / "input"
        inputs.mkdir()
        (inputs / "answer.py").write_text((NO_NETWORK if chosen == "python-level" else "") + answer, encoding="utf-8")
        (folder / "tests.py").write_text(tests, encoding="utf-8")  # outside the sandbox's tree: only a descriptor
        shutil.copyfile(HARNESS, inputs / "harness.py")
        shutil.copyfile(WIRE, inputs / "code_wire.py")
        for path in (folder, inputs, *inputs.iterdir()):  # readable by the unprivileged uid inside
            os.chmod(path, 0o755 if path.is_dir() else 0o644)
        os.chmod(folder / "tests.py", 0o600)
        tests_fd = os.open(folder / "tests.py", os.O_RDONLY)
        read_fd, write_fd = os.pipe()
        try:
            if chosen == "bubblewrap":
                cmd = bwrap_command(inputs, write_fd, tests_fd)
            elif chosen == "unshare":
                (folder / "root").mkdir()
                cmd = unshare_command(inputs, folder / "root", write_fd, tests_fd)
            else:
                (folder / "work").mkdir(mode=0o777)
                os.chmod(folder / "work", 0o777)
                cmd = [sys.executable, "-I", "-S", str(inputs / "harness.py"), str(write_fd), str(tests_fd),
                       str(inputs), str(folder / "work"), "--weak"]
            proc = subprocess.Popen(cmd, cwd=folder, env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                    pass_fds=(write_fd, tests_fd), start_new_session=True)
        finally:
            os.close(write_fd)
            os.close(tests_fd)
        with os.fdopen(read_fd, "rb") as reader:
            status = _wait(proc, timeout)
            data = reader.read(4096) if status is not None else b""
    try:
        result = json.loads(data.decode("utf-8").splitlines()[0]) if data else None
    except (ValueError, IndexError, UnicodeDecodeError):
        result = None
    return status, result if isinstance(result, dict) else None


def _wait(proc: subprocess.Popen, timeout: float) -> int | None:
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the whole session; the PID namespace dies with its first process
        except (ProcessLookupError, PermissionError):
            pass
        proc.wait()
        return None


class scratch:
    """A throw-away folder inside the workspace (never outside it), removed afterwards."""

    def __init__(self, parent: Path | None):
        if parent is None:
            parent = workspace.current().tmp
        self.parent = Path(parent)

    def __enter__(self) -> Path:
        self.parent.mkdir(parents=True, exist_ok=True)
        self.path = Path(tempfile.mkdtemp(prefix="code-", dir=self.parent))
        return self.path

    def __exit__(self, *exc) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
