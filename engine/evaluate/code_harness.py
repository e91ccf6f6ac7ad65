"""The first code that runs inside the code-test sandbox (engine.evaluate.sandbox copies this file in, read-only).

    python -I -S /input/harness.py RESULT_FD /input /work

It sets the resource limits, gives up root (a real unprivileged uid when it can, otherwise every capability), then
runs answer.py and tests.py (from the input folder, in the work folder) in one namespace and writes one JSON line to RESULT_FD:
{"status": "passed"} or {"status": "failed", "where": "tests"|"answer", "line": N, "type": NAME}.
Nothing else leaves the sandbox: the studio builds the failure reason from the tests' own text and a builtin
exception name, never from what the answer prints or puts in an exception message.

Standard library only, no site-packages: it runs before anything untrusted, with Python started isolated.
"""

import builtins
import json
import os
import resource
import sys

NOBODY = 65534
LIMITS = {  # seconds, bytes, counts: the same for every answer
    "RLIMIT_CPU": 11,
    "RLIMIT_AS": 1 << 30,
    "RLIMIT_FSIZE": 16 << 20,
    "RLIMIT_NOFILE": 64,
    "RLIMIT_NPROC": 64,
    "RLIMIT_CORE": 0,
}


def set_limits() -> None:
    for name, value in LIMITS.items():
        resource.setrlimit(getattr(resource, name), (value, value))


def drop_root(weak: bool) -> str:
    """Give up every privilege before untrusted code runs; returns how. The weak mode (no sandbox, opt-in) keeps the
    studio's own user: uid 65534 could not even read a Python installed in root's home."""
    if os.getuid() != 0 or weak:
        return "user"
    try:  # real root (bubblewrap started by root): become nobody for good
        os.setgroups([])
        os.setresgid(NOBODY, NOBODY, NOBODY)
        os.setresuid(NOBODY, NOBODY, NOBODY)
        return "nobody"
    except OSError:
        pass
    # root only inside a user namespace (unshare --map-root-user): nobody is not mapped, so drop every capability
    # instead; without them the process cannot undo its mounts or leave its root.
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    pr_capbset_drop, pr_set_no_new_privs = 24, 38
    for cap in range(64):
        libc.prctl(pr_capbset_drop, cap, 0, 0, 0)

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]

    header, data = Header(0x20080522, 0), (Data * 2)()
    if libc.capset(ctypes.byref(header), data) != 0 or libc.prctl(pr_set_no_new_privs, 1, 0, 0, 0) != 0:
        raise SystemExit(97)
    return "no-capabilities"


def report(fd: int, result: dict) -> None:
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(result) + "\n")


def failure(err: BaseException) -> dict:
    """Where the error was raised (the last frame in the tests, else in the answer) and its builtin type name."""
    where, line = "answer", 0
    tb = err.__traceback__
    while tb is not None:
        name = tb.tb_frame.f_code.co_filename
        if name in ("<tests>", "<answer>"):
            where, line = name.strip("<>"), tb.tb_lineno
        tb = tb.tb_next
    kind = type(err).__name__ if getattr(builtins, type(err).__name__, None) is type(err) else "Exception"
    return {"status": "failed", "where": where, "line": line, "type": kind}


def main() -> None:
    fd, inputs, work, weak = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4:] == ["--weak"]
    os.set_inheritable(fd, False)
    os.chdir(work)
    os.environ.clear()
    os.environ.update(PATH="/usr/bin:/bin", HOME=work)
    with open(os.path.join(inputs, "answer.py"), encoding="utf-8") as f:
        answer = f.read()
    with open(os.path.join(inputs, "tests.py"), encoding="utf-8") as f:
        tests = f.read()
    set_limits()
    drop_root(weak)
    scope = {"__name__": "__main__", "__builtins__": builtins}
    try:
        exec(compile(answer, "<answer>", "exec"), scope)
        exec(compile(tests, "<tests>", "exec"), scope)
    except BaseException as err:  # noqa: BLE001 - every outcome of untrusted code is a result, including SystemExit
        report(fd, failure(err))
        return
    report(fd, {"status": "passed"})


if __name__ == "__main__":
    main()
